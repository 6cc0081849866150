package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"lrmc/internal/shareddata"
)

// writeRunsRecipe writes a stories260K recipe (dense baseline, one
// perplexity evaluation) whose runs block is runs, into dir/name.
func writeRunsRecipe(t *testing.T, dir, name, runs string) string {
	t.Helper()
	model := shareddata.Path(t, "models", "stories260K", "stories260K.bin")
	text := shareddata.Path(t, "text", "tinystories", "tinystories_val.txt")
	src := fmt.Sprintf(`model: path: %q
calibration: {
	data: {path: %q, format: "text"}
	samples: 8
	seqLen:  64
	seed:    3
}
eval: [{task: "perplexity", data: {path: %q, format: "text"}, samples: 4, seqLen: 64}]
runs: {
%s
}
output: dir: "out"
`, model, text, text, runs)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodRun = `"good": prune: {paradigm: "depth", method: "shortgpt", remove: 1}`

// badRun calibrates on a jsonl file whose second line is broken: the
// recipe vets and plans (the planner only digests the file), and the
// tokenizing node fails in apply.
const badRun = `"bad": {
	prune: {paradigm: "depth", method: "shortgpt", remove: 2}
	calibration: data: {path: "bad.jsonl", format: "jsonl", field: "text"}
}`

func TestApplyKeepsGoingPastAFailedRun(t *testing.T) {
	dir := t.TempDir()
	cacheDir := filepath.Join(dir, "cache")
	if err := os.WriteFile(filepath.Join(dir, "bad.jsonl"), []byte("{\"text\": \"Once upon a time\"}\n{\"text\": broken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	recipe := writeRunsRecipe(t, dir, "r.cue", goodRun+"\n"+badRun)

	// --fail-fast: nothing is written, the failure is the error.
	code, _, errs := lrmc(t, "--cache", cacheDir, "apply", "--fail-fast", "--progress=plain", recipe)
	if code != 1 {
		t.Fatalf("apply --fail-fast: exit %d, want 1: %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
		t.Error("apply --fail-fast wrote outputs")
	}
	if !regexp.MustCompile(`(?m)^lrmc: run bad: tokenize bad\.jsonl \[0, 0\.9\) \(data\.tokens [0-9a-f]{12}\): .*bad\.jsonl:2: invalid JSON`).MatchString(errs) {
		t.Errorf("apply --fail-fast error does not name the run and node:\n%s", errs)
	}

	code, out, errs := lrmc(t, "--cache", cacheDir, "apply", "--progress=plain", recipe)
	if code != 1 {
		t.Fatalf("apply with a bad run: exit %d, want 1\n%s\n%s", code, out, errs)
	}
	// The failure names the run, the op, the node's key and the error.
	failLine := regexp.MustCompile(`(?m)^  bad: data\.tokens [0-9a-f]{12} tokenize bad\.jsonl \[0, 0\.9\): .*bad\.jsonl:2: invalid JSON`)
	if !failLine.MatchString(errs) || !strings.Contains(errs, "1 run(s) failed:") {
		t.Errorf("failure summary does not name run, node and error:\n%s", errs)
	}
	// The plain display names the run of every line.
	if !regexp.MustCompile(`(?m)^FAILED .*data\.tokens .*\[bad\]`).MatchString(errs) {
		t.Errorf("FAILED line does not name the run:\n%s", errs)
	}
	if !strings.Contains(out, "good") || strings.Contains(out, "bad") {
		t.Errorf("results table should hold dense and good, not bad:\n%s", out)
	}
	var res struct {
		Dense map[string]any            `json:"dense"`
		Runs  map[string]map[string]any `json:"runs"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "out", "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if _, ok := res.Runs["bad"]; ok || res.Runs["good"] == nil || res.Dense == nil {
		t.Fatalf("results.json runs %v, dense %v: want good and dense only", res.Runs, res.Dense != nil)
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "bad")); err == nil {
		t.Error("the failed run has an output directory")
	}

	// The good run's outputs are those of a recipe holding it alone.
	alone := filepath.Join(dir, "alone")
	os.Mkdir(alone, 0o755)
	aloneRecipe := writeRunsRecipe(t, alone, "r.cue", goodRun)
	code, _, errs = lrmc(t, "--cache", cacheDir, "apply", "--progress=plain", aloneRecipe)
	if code != 0 {
		t.Fatalf("apply of the good run alone: exit %d: %s", code, errs)
	}
	for _, f := range []string{"results.json", "good/metrics.json", "good/model.bin", "dense/metrics.json"} {
		want, err := os.ReadFile(filepath.Join(alone, "out", f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, "out", f))
		if err != nil {
			t.Errorf("%s not written: %v", f, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the good run applied alone", f)
		}
	}
}

func TestApplyRemovesTheDirectoryOfARemovedRun(t *testing.T) {
	dir := t.TempDir()
	cacheDir := filepath.Join(dir, "cache")
	one := `"one": prune: {paradigm: "depth", method: "shortgpt", remove: 1}`
	two := `"two": prune: {paradigm: "depth", method: "shortgpt", remove: 2}`
	apply := func(runs string) (string, string) {
		t.Helper()
		recipe := writeRunsRecipe(t, dir, "r.cue", runs)
		code, out, errs := lrmc(t, "--cache", cacheDir, "apply", "--progress=plain", recipe)
		if code != 0 {
			t.Fatalf("apply: exit %d\n%s", code, errs)
		}
		return out, errs
	}
	outDir := filepath.Join(dir, "out")
	twoDir := filepath.Join(outDir, "two")
	apply(one + "\n" + two)
	if _, err := os.Stat(filepath.Join(twoDir, "metrics.json")); err != nil {
		t.Fatal(err)
	}

	// Taken out of the recipe: lrmc wrote it and it holds nothing else.
	_, errs := apply(one)
	if _, err := os.Stat(twoDir); err == nil {
		t.Error("the removed run's directory is still there")
	}
	if !strings.Contains(errs, "removed "+twoDir+`: run "two" is no longer in the recipe`) {
		t.Errorf("apply did not say it removed the stale directory:\n%s", errs)
	}
	st, err := os.ReadFile(filepath.Join(outDir, ".lrmc-state.json"))
	if err != nil || strings.Contains(string(st), `"two"`) || !strings.Contains(string(st), `"one"`) {
		t.Errorf("state after the removal (%v):\n%s", err, st)
	}

	// A file lrmc did not write keeps the directory; so does a directory
	// lrmc has no record of.
	apply(one + "\n" + two)
	notes := filepath.Join(twoDir, "notes.txt")
	if err := os.WriteFile(notes, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	legacy := filepath.Join(outDir, "legacy")
	if err := os.MkdirAll(legacy, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(legacy, "metrics.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errs = apply(one)
	for _, p := range []string{notes, filepath.Join(twoDir, "metrics.json"), filepath.Join(legacy, "metrics.json")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	for _, want := range []string{
		"stale: " + twoDir + " is no run of the recipe; left in place because it holds files lrmc did not write: notes.txt",
		"stale: " + legacy + " is no run of the recipe; left in place because lrmc has no record of writing it",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("apply output lacks %q:\n%s", want, errs)
		}
	}
}
