package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lrmc/internal/shareddata"
)

// A task of the recipe's own, defined in CUE, runs end to end: its column
// in the table, its samples file, and a rerun that runs nothing.
func TestApplyRecipeTask(t *testing.T) {
	dir := t.TempDir()
	model := shareddata.Path(t, "models", "stories260K", "stories260K.bin")
	piqa := shareddata.Path(t, "text", "piqa", "piqa_valid_labeled.jsonl")
	src := fmt.Sprintf(`model: path: %q
tasks: plain: {text: "{{goal}}", choices: ["{{sol1}}", "{{sol2}}"], gold: "label", delimiter: "\n"}
eval: plain: {task: "plain", data: path: %q, samples: 6, fewshot: 1, seed: 3}
output: dir: "out"
`, model, piqa)
	p := filepath.Join(dir, "r.cue")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "cache")
	code, out, errs := lrmc(t, "--cache", cache, "apply", "--progress=plain", p)
	if code != 0 {
		t.Fatalf("apply: exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "plain.acc") || !strings.Contains(out, "plain.acc_norm") {
		t.Errorf("the table has no plain.acc column:\n%s", out)
	}
	f, err := os.Open(filepath.Join(dir, "out", "dense", "samples", "plain.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	lines := 0
	for sc.Scan() {
		// One few-shot example, its answer after the "\n" delimiter, then
		// the item.
		if !strings.Contains(sc.Text(), `\n\n`) || !strings.Contains(sc.Text(), `"loglikelihoods":[`) {
			t.Errorf("sample %d: %s", lines, sc.Text())
		}
		lines++
	}
	if lines != 6 {
		t.Errorf("%d samples, want 6", lines)
	}
	code, out, errs = lrmc(t, "--cache", cache, "apply", p)
	if code != 0 || !strings.Contains(out, "Nothing to run") {
		t.Errorf("second apply: exit %d, output:\n%s%s", code, out, errs)
	}
}

// A generation task of the recipe's own, defined in CUE without Go, runs
// end to end: its columns in the table, its samples file with extracted
// answers, report.md's reasoning table, and a rerun that runs nothing.
func TestApplyRecipeGenerationTask(t *testing.T) {
	dir := t.TempDir()
	model := shareddata.Path(t, "models", "stories260K", "stories260K.bin")
	text := shareddata.Path(t, "text", "tinystories", "tinystories_val.txt")
	data := filepath.Join(dir, "openings.jsonl")
	if err := os.WriteFile(data, []byte(`{"q": "Once upon a time, there was a little", "a": "girl"}
{"q": "One day, a little girl named", "a": "Lily"}
{"q": "Tom and his mom went to the", "a": "park"}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf(`model: path: %q
tasks: firstword: {
	kind: "generation", text: "{{q}}", target: "{{a}}", stop: ["."]
	extraction: "regex", regex: "^\\s*(\\w+)", ignoreCase: true
}
eval: words: {task: "firstword", data: path: %q, maxNewTokens: 10, n: 2, temperature: 0.8, seed: 4}
runs: cut: {
	prune: {paradigm: "depth", method: "shortgpt", remove: 1}
	calibration: {data: {path: %q, split: {from: 0, to: 0.9}}, samples: 8, seqLen: 64}
}
output: dir: "out"
`, model, data, text)
	p := filepath.Join(dir, "r.cue")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "cache")
	code, out, errs := lrmc(t, "--cache", cache, "apply", "--progress=plain", p)
	if code != 0 {
		t.Fatalf("apply: exit %d: %s", code, errs)
	}
	for _, col := range []string{"words.exact_match", "words.pass@1", "words.think_tokens_mean", "words.answer_tokens_mean"} {
		if !strings.Contains(out, col) {
			t.Errorf("the table has no %s column:\n%s", col, out)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "out", "dense", "samples", "words.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d samples, want 3", len(lines))
	}
	for i, l := range lines {
		if !strings.Contains(l, `"extracted":{"regex":`) || !strings.Contains(l, `"gold":`) || strings.Count(l, `"text":`) != 2 {
			t.Errorf("sample %d: %s", i, l)
		}
	}
	md, err := os.ReadFile(filepath.Join(dir, "out", "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "## Reasoning length") || !strings.Contains(string(md), "| words | cut |") {
		t.Errorf("report.md has no reasoning row for words/cut:\n%s", md)
	}
	code, out, errs = lrmc(t, "--cache", cache, "apply", p)
	if code != 0 || !strings.Contains(out, "Nothing to run") {
		t.Errorf("second apply: exit %d, output:\n%s%s", code, out, errs)
	}
}
