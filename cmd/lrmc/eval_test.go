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
