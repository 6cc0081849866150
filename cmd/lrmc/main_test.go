package main

import (
	"bufio"
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

// lrmc runs the command line in-process and returns its exit status and output.
func lrmc(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestGenerateReproducesRunC(t *testing.T) {
	ref := shareddata.Path(t, "reference", "stories260K_greedy.json")
	var r struct {
		Result struct {
			Prompt string `json:"prompt"`
			Stdout string `json:"stdout"`
			Tokens []int  `json:"tokens"`
		} `json:"result"`
	}
	b, err := os.ReadFile(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	model := shareddata.Path(t, "models", "stories260K", "stories260K.bin")
	code, out, errs := lrmc(t, "generate", "--model", model, "--prompt", r.Result.Prompt, "--max-tokens", "200", "--temperature", "0")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if out != r.Result.Stdout {
		t.Errorf("generate output differs from run.c:\n got %q\nwant %q", out, r.Result.Stdout)
	}
}

// writeRecipe writes a small stories260K recipe with absolute data paths
// and one ShortGPT run per number of blocks to remove.
func writeRecipe(t *testing.T, dir string, removes ...int) string {
	t.Helper()
	var runs strings.Builder
	for _, n := range removes {
		fmt.Fprintf(&runs, "\t\"shortgpt-%d\": prune: {paradigm: \"depth\", method: \"shortgpt\", remove: %d}\n", n, n)
	}
	return writeRunsRecipe(t, dir, "r.cue", runs.String())
}

func TestApplyJSONProgressAndCaching(t *testing.T) {
	dir := t.TempDir()
	cacheDir := filepath.Join(dir, "cache")
	recipe := writeRecipe(t, dir, 1, 2)

	code, out, errs := lrmc(t, "--cache", cacheDir, "plan", "--detailed-exitcode", recipe)
	if code != 2 {
		t.Fatalf("plan on an empty cache: exit %d, want 2: %s", code, errs)
	}
	if !regexp.MustCompile(`(?m)^Plan: 0 cached, \d+ to run$`).MatchString(out) {
		t.Errorf("plan summary missing:\n%s", out)
	}

	code, out, errs = lrmc(t, "--cache", cacheDir, "apply", "--progress=json", recipe)
	if code != 0 {
		t.Fatalf("apply: exit %d: %s", code, errs)
	}
	started := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var ev map[string]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("progress line is not JSON: %q", sc.Text())
		}
		for _, k := range []string{"event", "op", "cached"} {
			if _, ok := ev[k]; !ok {
				t.Errorf("event without %q: %s", k, sc.Text())
			}
		}
		if ev["event"] != "output" {
			if node, _ := ev["node"].(string); len(node) != 64 {
				t.Errorf("event without a node key: %s", sc.Text())
			}
		}
		if ev["event"] == "started" {
			started++
		}
	}
	if started == 0 {
		t.Error("first apply started no op")
	}
	var results struct {
		Dense map[string]any            `json:"dense"`
		Runs  map[string]map[string]any `json:"runs"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "out", "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &results); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"shortgpt-1", "shortgpt-2"} {
		m := results.Runs[name]
		for _, k := range []string{"perplexity", "params", "blocks"} {
			if _, ok := m[k]; !ok {
				t.Errorf("results.json: %s lacks %s", name, k)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "out", name, "metrics.json")); err != nil {
			t.Error(err)
		}
	}
	if results.Dense["blocks"] != 5.0 {
		t.Errorf("dense blocks = %v, want 5", results.Dense["blocks"])
	}

	// What a kill while writing outputs leaves behind: temporary files and
	// a staging directory of a process that is gone (no pid is 2^30).
	leftovers := []string{
		filepath.Join(dir, "out", ".results.json.tmp123"),
		filepath.Join(dir, "out", "shortgpt-1", ".model.bin.tmp456"),
		filepath.Join(dir, "out", ".shortgpt-2.staging-1073741824", "model.bin"),
	}
	for _, p := range leftovers {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("half"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Second apply: nothing runs, and the table says so.
	code, out, errs = lrmc(t, "--cache", cacheDir, "apply", "--progress=plain", recipe)
	if code != 0 {
		t.Fatalf("second apply: exit %d: %s", code, errs)
	}
	for _, p := range leftovers {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("second apply left %s", p)
		}
	}
	if !strings.Contains(out, "Nothing to run") {
		t.Errorf("second apply did not say it ran nothing:\n%s", out)
	}
	if strings.Contains(errs, "started") {
		t.Errorf("second apply started ops:\n%s", errs)
	}
	for _, want := range []string{"dense", "shortgpt-1", "shortgpt-2", "perplexity"} {
		if !strings.Contains(out, want) {
			t.Errorf("results table lacks %q:\n%s", want, out)
		}
	}
	code, _, _ = lrmc(t, "--cache", cacheDir, "plan", "--detailed-exitcode", recipe)
	if code != 0 {
		t.Errorf("plan after apply: exit %d, want 0 (nothing to run)", code)
	}

	// The pruned model loads and generates.
	code, out, errs = lrmc(t, "generate", "--model", filepath.Join(dir, "out", "shortgpt-1", "model.bin"), "--prompt", "Once upon a time", "--max-tokens", "20")
	if code != 0 || !strings.HasPrefix(out, "Once upon a time") {
		t.Errorf("generate from the pruned model: exit %d, %q %s", code, out, errs)
	}

	// Cache maintenance commands.
	code, out, _ = lrmc(t, "--cache", cacheDir, "cache", "verify")
	if code != 0 || !strings.Contains(out, "0 corrupt dropped") {
		t.Errorf("cache verify: exit %d: %s", code, out)
	}
	code, out, _ = lrmc(t, "--cache", cacheDir, "cache", "gc", "--max-size", "0")
	if code != 0 || !strings.Contains(out, "0 entries") {
		t.Errorf("cache gc to 0: exit %d: %s", code, out)
	}
}

func TestVetReportsPositions(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.cue")
	src := "model: path: \"nope.bin\"\ncalibration: samples: \"many\"\n"
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := lrmc(t, "vet", p)
	if code != 1 {
		t.Fatalf("vet of a broken recipe: exit %d, want 1", code)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`bad\.cue:1:\d+: model\.path: `),
		regexp.MustCompile(`bad\.cue:2:\d+: calibration\.samples: `),
	} {
		if !want.MatchString(errs) {
			t.Errorf("vet output lacks %s:\n%s", want, errs)
		}
	}
}
