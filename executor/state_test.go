package executor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lrmc/digest"
	"lrmc/planner"
)

// runGraph is a graph whose outputs write one run directory per name.
func runGraph(out string, runs ...string) *planner.Graph {
	g := &planner.Graph{OutDir: out}
	for _, r := range runs {
		n := &planner.Node{Key: digest.Of([]byte(r)), Op: planner.OpMetrics, Params: []byte("{}"), Label: "metrics", Runs: []string{r}}
		g.Nodes = append(g.Nodes, n)
		g.Outputs = append(g.Outputs, planner.Output{Node: n, Path: filepath.Join(r, "metrics.json")}, planner.Output{Path: filepath.Join(r, "provenance.json"), Data: []byte("{}")})
	}
	return g
}

func TestStaleDirectories(t *testing.T) {
	out := t.TempDir()
	for _, r := range []string{"keep", "gone", "link", "other", "missing"} {
		os.MkdirAll(filepath.Join(out, r), 0o755)
		os.WriteFile(filepath.Join(out, r, "metrics.json"), []byte("{}"), 0o644)
	}
	if err := SaveState(runGraph(out, "keep", "gone", "link", "missing"), "/recipes/r.cue"); err != nil {
		t.Fatal(err)
	}
	if err := SaveState(runGraph(out, "other"), "/recipes/other.cue"); err != nil {
		t.Fatal(err)
	}
	// "link" is now a link to a directory elsewhere; "missing" is gone.
	elsewhere := t.TempDir()
	os.RemoveAll(filepath.Join(out, "link"))
	if err := os.Symlink(elsewhere, filepath.Join(out, "link")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(out, "missing"))

	stale, err := FindStale(runGraph(out, "keep"), "/recipes/r.cue")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, sd := range stale {
		got[sd.Run] = sd.Reason
		if sd.Remove {
			got[sd.Run] = "remove"
		}
	}
	want := map[string]string{
		"gone":    "remove",
		"missing": "remove",
		"link":    "it is not a directory lrmc wrote (a file or a link now)",
		"other":   "it was written by /recipes/other.cue",
	}
	if len(got) != len(want) {
		t.Errorf("stale %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	if err := RemoveStale(out, stale); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"keep/metrics.json", "other/metrics.json", "link"} {
		if _, err := os.Lstat(filepath.Join(out, p)); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "gone")); err == nil {
		t.Error("gone was not removed")
	}
	st, err := ReadState(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range st.Runs {
		names = append(names, n)
	}
	if len(st.Runs) != 3 || st.Runs["gone"].Recipe != "" || st.Runs["missing"].Recipe != "" {
		t.Errorf("records after removal: %v, want keep, link and other", names)
	}
	if files := strings.Join(st.Runs["keep"].Files, ","); files != "metrics.json,provenance.json" {
		t.Errorf("keep's recorded files %q", files)
	}
}
