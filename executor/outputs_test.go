package executor

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"lrmc/digest"
	"lrmc/internal/atomicfile"
	"lrmc/planner"
)

// deadPID is above any kernel's pid_max: no process has it.
const deadPID = 1 << 30

// outputs builds a graph with two runs and results.json, whose every output
// says which version v wrote it: a/ holds a node's file, a bundle (hf/), a
// copy of a source file and literal provenance; b/ a node's file.
func outputs(t *testing.T, out string, v int) (*planner.Graph, *Result) {
	t.Helper()
	node := func(name string) *planner.Node {
		return &planner.Node{Key: digest.Of([]byte(name)), Op: planner.OpExportLlama2c, Label: name}
	}
	src := filepath.Join(t.TempDir(), "tok.bin")
	tok := fmt.Appendf(nil, "tokenizer v%d", v)
	if err := os.WriteFile(src, tok, 0o644); err != nil {
		t.Fatal(err)
	}
	params, err := json.Marshal(planner.SourceParams{Digest: digest.Of(tok).String()})
	if err != nil {
		t.Fatal(err)
	}
	source := &planner.Node{Key: digest.Of([]byte("tok")), Op: planner.OpSource, Source: src, Params: params}
	am, ab, ah, bm, bb, res := node("a metrics"), node("a model"), node("a hf"), node("b metrics"), node("b model"), node("results")
	dir := t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors"} {
		if err := os.WriteFile(filepath.Join(dir, f), fmt.Appendf(nil, "%s v%d", f, v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bundle, err := PackDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := &Result{bytes: map[*planner.Node][]byte{
		am: fmt.Appendf(nil, "a metrics v%d", v), ab: fmt.Appendf(nil, "a model v%d", v), ah: bundle,
		bm: fmt.Appendf(nil, "b metrics v%d", v), bb: fmt.Appendf(nil, "b model v%d", v),
		res: fmt.Appendf(nil, "results v%d", v),
	}}
	g := &planner.Graph{OutDir: out, Outputs: []planner.Output{
		{Node: am, Path: "a/metrics.json"},
		{Node: ab, Path: "a/model.bin"},
		{Node: source, Path: "a/tok.bin"},
		{Node: ah, Path: "a/hf", Dir: true},
		{Path: "a/provenance.json", Data: fmt.Appendf(nil, "provenance v%d", v)},
		{Node: bm, Path: "b/metrics.json"},
		{Node: bb, Path: "b/model.bin"},
		{Node: res, Path: "results.json"},
	}}
	return g, r
}

// tree maps every path under root (without following links) to its
// content, "dir" or "link -> target".
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			m[rel] = "link -> " + target
			return err
		case d.IsDir():
			m[rel] = "dir"
		default:
			b, err := os.ReadFile(path)
			m[rel] = string(b)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func wantTree(t *testing.T, root string, want map[string]string) {
	t.Helper()
	got := tree(t, root)
	if !maps.Equal(got, want) {
		var diff []string
		for _, k := range slices.Sorted(maps.Keys(got)) {
			if w, ok := want[k]; !ok || w != got[k] {
				diff = append(diff, fmt.Sprintf("  got  %s: %q", k, got[k]))
			}
		}
		for _, k := range slices.Sorted(maps.Keys(want)) {
			if g, ok := got[k]; !ok || g != want[k] {
				diff = append(diff, fmt.Sprintf("  want %s: %q", k, want[k]))
			}
		}
		t.Errorf("%s differs:\n%s", root, strings.Join(diff, "\n"))
	}
}

func v1Tree() map[string]string {
	return map[string]string{
		".":                      "dir",
		"a":                      "dir",
		"a/metrics.json":         "a metrics v1",
		"a/model.bin":            "a model v1",
		"a/tok.bin":              "tokenizer v1",
		"a/hf":                   "dir",
		"a/hf/config.json":       "config.json v1",
		"a/hf/model.safetensors": "model.safetensors v1",
		"a/provenance.json":      "provenance v1",
		"b":                      "dir",
		"b/metrics.json":         "b metrics v1",
		"b/model.bin":            "b model v1",
		"results.json":           "results v1",
	}
}

func write(t *testing.T, g *planner.Graph, r *Result) {
	t.Helper()
	ex := &Executor{}
	if _, err := ex.WriteOutputs(g, r); err != nil {
		t.Fatal(err)
	}
}

// withoutExchange makes swaps take the two-rename fallback.
func withoutExchange(t *testing.T) {
	saved := swapDir
	swapDir = atomicfile.ReplaceDirByRenames
	t.Cleanup(func() { swapDir = saved })
}

func TestWriteOutputsReplaces(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		t.Run(fmt.Sprintf("fallback=%v", fallback), func(t *testing.T) {
			if fallback {
				withoutExchange(t)
			}
			out := filepath.Join(t.TempDir(), "out")
			var events []Event
			ex := &Executor{opts: Options{Events: func(e Event) { events = append(events, e) }}}
			g, r := outputs(t, out, 1)
			paths, err := ex.WriteOutputs(g, r)
			if err != nil {
				t.Fatal(err)
			}
			wantTree(t, out, v1Tree())
			if len(paths) != 8 || len(events) != 8 || events[3].Path != filepath.Join(out, "a", "hf") || events[3].Bytes != int64(len("config.json v1model.safetensors v1")) {
				t.Errorf("paths %v, events %+v", paths, events)
			}
			// A file the previous version wrote and this one does not goes
			// with its run directory: no stale mix.
			g, r = outputs(t, out, 2)
			g.Outputs = slices.DeleteFunc(g.Outputs, func(o planner.Output) bool { return o.Path == "a/tok.bin" })
			write(t, g, r)
			want := map[string]string{}
			for k, v := range v1Tree() {
				want[k] = strings.ReplaceAll(v, "v1", "v2")
			}
			delete(want, "a/tok.bin")
			wantTree(t, out, want)
		})
	}
}

// TestWriteOutputsFailureKeepsPreviousSet: a failure while writing any
// run's outputs leaves every file of the previous set as it was, and no
// staging behind.
func TestWriteOutputsFailureKeepsPreviousSet(t *testing.T) {
	for name, spoil := range map[string]func(g *planner.Graph, r *Result) string{
		// The last run's bytes are missing: the first run is staged already.
		"missing bytes": func(g *planner.Graph, r *Result) string {
			delete(r.bytes, g.Outputs[6].Node)
			return "b/model.bin: node b model (" + g.Outputs[6].Node.Key.Short() + ") has no result"
		},
		"missing source": func(g *planner.Graph, r *Result) string {
			os.Remove(g.Outputs[2].Node.Source)
			return "a/tok.bin: open"
		},
		"bad bundle": func(g *planner.Graph, r *Result) string {
			r.bytes[g.Outputs[3].Node] = []byte("not a tar file, but long enough to be read as a header block")
			return "a/hf: bundle"
		},
		// A directory where the staged file must go: the write fails.
		"unwritable": func(g *planner.Graph, r *Result) string {
			g.Outputs = append(g.Outputs, planner.Output{Path: "b/model.bin/x", Data: []byte("x")})
			return "b/model.bin/x: mkdir"
		},
	} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			g, r := outputs(t, out, 1)
			write(t, g, r)
			g, r = outputs(t, out, 2)
			want := spoil(g, r)
			_, err := (&Executor{}).WriteOutputs(g, r)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("error %v, want one containing %q", err, want)
			}
			wantTree(t, out, v1Tree())
		})
	}
}

// TestCleanOutputsAfterKill leaves what a kill during writing leaves behind
// and checks that the next apply cleans it up, puts back a run directory
// that a kill between two renames left aside, and touches nothing else.
func TestCleanOutputsAfterKill(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	g, r := outputs(t, out, 1)
	write(t, g, r)

	mk := func(path, content string) {
		t.Helper()
		path = filepath.Join(out, path)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dead := func(f func(string, int) string, run string) string { return f(run, deadPID) }
	// Temporary files of writes that were cut short.
	mk(".results.json.tmp123456", "half a result")
	mk("a/.model.bin.tmp42", "half a model")
	mk("a/hf/.config.json.tmp7", "half a config")
	mk("a/.hf.tmp99/config.json", "an old-style bundle directory")
	// Run a: killed while staging.
	mk(dead(stagingName, "a")+"/metrics.json", "a metrics v2")
	// Run b: killed between moving the old directory aside and moving the
	// staged one in.
	if err := os.Rename(filepath.Join(out, "b"), filepath.Join(out, dead(oldName, "b"))); err != nil {
		t.Fatal(err)
	}
	mk(dead(stagingName, "b")+"/metrics.json", "b metrics v2")
	// What is not lrmc's, or belongs to a process still running, stays.
	keep := map[string]string{
		".notes.tmp":                          "user file: no number",
		"my.tmp123":                           "user file: no leading dot",
		".c.staging-x/f":                      "user file: no pid",
		stagingName("a", os.Getppid()) + "/f": "a live apply's staging",
		"c/.model.bin.tmp1":                   "not a run directory of this recipe",
	}
	for path, content := range keep {
		mk(path, content)
	}

	if err := CleanOutputs(g); err != nil {
		t.Fatal(err)
	}
	want := v1Tree()
	for path, content := range keep {
		want[path] = content
		for d := filepath.Dir(path); d != "."; d = filepath.Dir(d) {
			want[d] = "dir"
		}
	}
	wantTree(t, out, want)

	// The next write leaves the same, with the new outputs.
	g, r = outputs(t, out, 2)
	write(t, g, r)
	for k, v := range v1Tree() {
		want[k] = strings.ReplaceAll(v, "v1", "v2")
	}
	wantTree(t, out, want)
}

// TestWriteOutputsSymlinkedRunDir: a run directory that is a link to
// another tree is refused before anything is written, and the other tree,
// including a file named like lrmc's temporary files, is untouched.
func TestWriteOutputsSymlinkedRunDir(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	g, r := outputs(t, out, 1)
	write(t, g, r)

	other := t.TempDir()
	for name, content := range map[string]string{"model.bin": "someone else's", ".model.bin.tmp5": "also theirs"} {
		if err := os.WriteFile(filepath.Join(other, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := tree(t, other)
	if err := os.RemoveAll(filepath.Join(out, "b")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(other, filepath.Join(out, "b")); err != nil {
		t.Fatal(err)
	}
	want := v1Tree()
	delete(want, "b/metrics.json")
	delete(want, "b/model.bin")
	want["b"] = "link -> " + other

	g, r = outputs(t, out, 2)
	_, err := (&Executor{}).WriteOutputs(g, r)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(out, "b")+": is a symbolic link (to "+other+")") {
		t.Fatalf("error %v, want the link refused", err)
	}
	wantTree(t, other, before)
	wantTree(t, out, want)

	// A link to a file, or a file, is refused the same way.
	if err := os.Remove(filepath.Join(out, "b")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "b"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = (&Executor{}).WriteOutputs(g, r)
	if err == nil || !strings.Contains(err.Error(), "exists and is not a directory") {
		t.Fatalf("error %v, want the file refused", err)
	}
}

// TestWriteOutputsForeignDir: a directory that holds none of a run's
// outputs was not written by lrmc, and is not replaced; an empty one is.
func TestWriteOutputsForeignDir(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	if err := os.MkdirAll(filepath.Join(out, "a", "photos"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(out, "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	g, r := outputs(t, out, 1)
	_, err := (&Executor{}).WriteOutputs(g, r)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(out, "a")+": exists and holds none of the run's outputs") {
		t.Fatalf("error %v, want the foreign directory refused", err)
	}
	wantTree(t, out, map[string]string{".": "dir", "a": "dir", "a/photos": "dir", "b": "dir"})
	if err := os.Remove(filepath.Join(out, "a", "photos")); err != nil {
		t.Fatal(err)
	}
	write(t, g, r)
	wantTree(t, out, v1Tree())
}
