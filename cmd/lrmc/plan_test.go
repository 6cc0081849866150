package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlanExplainsAgainstTheLastApply applies a recipe, edits it, and
// checks that plan --json says why each node runs, groups by run, and
// lists the removed run's directory for removal.
func TestPlanExplainsAgainstTheLastApply(t *testing.T) {
	dir := t.TempDir()
	cacheDir := filepath.Join(dir, "cache")
	one := `"one": prune: {paradigm: "depth", method: "shortgpt", remove: 1}`
	two := `"two": prune: {paradigm: "depth", method: "shortgpt", remove: 2}`
	recipe := writeRunsRecipe(t, dir, "r.cue", one+"\n"+two)
	plan := func() planDoc {
		t.Helper()
		code, out, errs := lrmc(t, "--cache", cacheDir, "plan", "--json", recipe)
		if code != 0 {
			t.Fatalf("plan: exit %d: %s", code, errs)
		}
		var doc planDoc
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("plan --json: %v\n%s", err, out)
		}
		return doc
	}
	doc := plan()
	if doc.Schema != "lrmc.plan/v1" || doc.Cache.Hits != 0 || doc.Summary.Cached != 0 {
		t.Errorf("first plan: schema %q, cache %+v, summary %+v", doc.Schema, doc.Cache, doc.Summary)
	}
	for _, g := range doc.Groups {
		for _, n := range g.Nodes {
			if n.Status == "run" && (n.Reason == nil || (n.Reason.Kind != "new-run" && n.Reason.Kind != "never-cached")) {
				t.Errorf("first plan: %s %s reason %+v, want new-run", n.Op, n.Label, n.Reason)
			}
		}
	}
	// Calibration: 8 × 64 tokens through each of the 5 blocks once
	// (capture), and the perplexity of 3 models (dense, one, two) on
	// 4 × 64 tokens through 5 blocks (the estimate counts the dense
	// model's blocks).
	if want := int64(8*64*5 + 3*4*64*5); doc.Work.TokenBlocks != want {
		t.Errorf("work %d tokens×blocks, want %d", doc.Work.TokenBlocks, want)
	}

	if code, _, errs := lrmc(t, "--cache", cacheDir, "apply", "--progress=plain", recipe); code != 0 {
		t.Fatalf("apply: exit %d: %s", code, errs)
	}
	doc = plan()
	if doc.Summary.Run != 0 || doc.Cache.Hits == 0 || doc.Cache.Hits != doc.Cache.Lookups || doc.Work.CacheBytes == 0 {
		t.Errorf("plan after apply: summary %+v, cache %+v, work %+v", doc.Summary, doc.Cache, doc.Work)
	}

	// More calibration samples, and run "two" out of the recipe.
	src := strings.Replace(strings.Replace(readFile(t, recipe), "samples: 8", "samples: 16", 1), two, "", 1)
	writeFile(t, recipe, src)
	doc = plan()
	reasons := map[string]string{}
	var groups []string
	for _, g := range doc.Groups {
		groups = append(groups, strings.Join(g.Runs, "+"))
		for _, n := range g.Nodes {
			if n.Reason != nil {
				reasons[n.Op+" "+n.Label] = string(n.Reason.Kind) + ": " + n.Reason.Detail
			}
		}
	}
	for node, want := range map[string]string{
		"calib.windows calibration windows 16×64 seed 3": "params-changed: samples 8 → 16",
		"capture.block capture block 2":                  "params-changed: samples 8 → 16",
		"shortgpt.bi block influence 2":                  "input-changed: capture block 1, capture block 2",
		"eval.perplexity perplexity":                     "input-changed: apply depth pruning",
		"prune.depth shortgpt: remove 1 of 5 blocks":     "input-changed: block influence 0, block influence 1, 3 more",
		"report.results results":                         `params-changed: runs ["dense","one","two"] → ["dense","one"]`,
	} {
		if reasons[node] != want {
			t.Errorf("%s: reason %q, want %q", node, reasons[node], want)
		}
	}
	if got := strings.Join(groups, " "); got != "dense+one dense one " {
		t.Errorf("groups %q, want the shared nodes, dense, one and the results", got)
	}
	if len(doc.Stale) != 1 || doc.Stale[0].Run != "two" || doc.Stale[0].Action != "remove" {
		t.Errorf("stale %+v, want two to be removed", doc.Stale)
	}

	// The text plan says the same, grouped.
	code, out, _ := lrmc(t, "--cache", cacheDir, "plan", recipe)
	for _, want := range []string{
		"shared by 2 runs: dense, one",
		"\nrun one  (",
		"calibration windows 16×64 seed 3  (parameters changed: samples 8 → 16)",
		"- " + filepath.Join(dir, "out", "two") + "  will be removed",
		"\nCache: ",
		"\nWork: ≈ ",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("text plan (exit %d) lacks %q:\n%s", code, want, out)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
