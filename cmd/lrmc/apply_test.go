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
