package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"lrmc/cache"
	"lrmc/digest"
	"lrmc/internal/shareddata"
	"lrmc/internal/version"
	"lrmc/planner"
)

// cachedValue is the value a cache directory holds for key.
func cachedValue(t *testing.T, dir string, key digest.Digest) []byte {
	t.Helper()
	s, err := cache.Open(dir, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, _, err := s.Get(key)
	if err != nil {
		t.Fatalf("%s: %s: %v", dir, key.Short(), err)
	}
	return b
}

// runNode is the first node of op that run uses.
func runNode(t *testing.T, g *planner.Graph, op, run string) *planner.Node {
	t.Helper()
	for _, n := range g.Nodes {
		if n.Op == op && slices.Contains(n.Runs, run) {
			return n
		}
	}
	t.Fatalf("no %s node for run %s", op, run)
	return nil
}

// A graph emitted from a recipe runs its nodes after the recipe was
// changed, to the same bytes the recipe form gives.
func TestExecGraphRunsWhatWasPlanned(t *testing.T) {
	dir := t.TempDir()
	recipe := writeRecipe(t, dir, 1)
	file := filepath.Join(dir, "graph.json")
	c1 := filepath.Join(dir, "c1")
	code, out, errs := lrmc(t, "--cache", c1, "plan", "--emit", "graph", file, recipe)
	g := graphOf(t, recipe)
	if code != 0 || out != fmt.Sprintf("wrote the graph of %d node(s) to %s\n", len(g.Nodes), file) {
		t.Fatalf("plan --emit graph: exit %d, %q %s", code, out, errs)
	}
	first := mustRead(t, file)
	// Emitting again (here to stdout, with another cache) gives the same
	// bytes: no timestamps, nothing from the cache.
	code, again, errs := lrmc(t, "--cache", filepath.Join(dir, "c0"), "plan", "--emit", "graph", recipe, "-")
	if code != 0 || again != string(first) {
		t.Fatalf("second emit: exit %d, %d bytes, identical %t: %s", code, len(again), again == string(first), errs)
	}
	// RECIPE FILE, with FILE already there, writes FILE: the recipe is
	// the *.cue argument, never overwritten.
	src := mustRead(t, recipe)
	if code, _, errs := lrmc(t, "--cache", c1, "plan", "--emit", "graph", recipe, file); code != 0 ||
		!bytes.Equal(mustRead(t, recipe), src) || !bytes.Equal(mustRead(t, file), first) {
		t.Fatalf("plan --emit graph RECIPE FILE: exit %d: %s", code, errs)
	}
	var f planner.GraphFile
	if err := json.Unmarshal(first, &f); err != nil {
		t.Fatal(err)
	}
	model := shareddata.Path(t, "models", "stories260K", "stories260K.bin")
	st, err := os.Stat(model)
	if err != nil {
		t.Fatal(err)
	}
	want, err := digest.File(model)
	if err != nil {
		t.Fatal(err)
	}
	var files int
	for _, n := range f.Nodes {
		if n.File != nil && n.File.Path == model {
			files++
			if n.File.Digest != want.String() || n.File.Size != st.Size() {
				t.Errorf("model file %+v, want digest %s, %d bytes", n.File, want, st.Size())
			}
		}
	}
	if f.Format != planner.GraphFormat || f.LRMC != version.Version || files != 1 || len(f.Targets) != len(g.Targets) {
		t.Errorf("graph file: format %q, lrmc %q, %d model files, %d targets", f.Format, f.LRMC, files, len(f.Targets))
	}

	// The recipe changes its run after the emit: shortgpt-1 now removes
	// two blocks, so its planned perplexity is no node of the recipe.
	ppl := runNode(t, g, planner.OpPerplexity, "shortgpt-1")
	key12 := ppl.Key.String()[:12]
	writeRunsRecipe(t, dir, "r.cue", `"shortgpt-1": prune: {paradigm: "depth", method: "shortgpt", remove: 2}`)
	if code, _, errs := lrmc(t, "--cache", c1, "exec", recipe, key12); code != 1 || !strings.Contains(errs, "no node "+key12+" in "+recipe) {
		t.Fatalf("exec of the edited recipe: exit %d: %s", code, errs)
	}
	remote1 := filepath.Join(dir, "remote1")
	os.Mkdir(remote1, 0o755)
	code, out, errs = lrmc(t, "--cache", c1, "--remote-cache", "file://"+remote1, "exec", "--graph", file, key12)
	if code != 0 || !regexp.MustCompile(`^ran `+key12+` eval\.perplexity \d+\.\ds\n$`).MatchString(out) {
		t.Fatalf("exec --graph: exit %d, %q %s", code, out, errs)
	}
	// Idempotent, from the shared cache too.
	for _, c := range []string{c1, filepath.Join(dir, "c3")} {
		code, out, _ = lrmc(t, "--cache", c, "--remote-cache", "file://"+remote1, "exec", "--graph", file, ppl.Key.String())
		if code != 0 || out != "cached "+key12+" eval.perplexity\n" {
			t.Errorf("exec --graph again with %s: exit %d, %q", c, code, out)
		}
	}

	// The recipe form, on the recipe as planned, in its own caches.
	if err := os.WriteFile(recipe, src, 0o644); err != nil {
		t.Fatal(err)
	}
	c2, remote2 := filepath.Join(dir, "c2"), filepath.Join(dir, "remote2")
	os.Mkdir(remote2, 0o755)
	code, out, errs = lrmc(t, "--cache", c2, "--remote-cache", "file://"+remote2, "exec", recipe, key12)
	if code != 0 || !strings.HasPrefix(out, "ran "+key12+" eval.perplexity ") {
		t.Fatalf("exec RECIPE: exit %d, %q %s", code, out, errs)
	}
	a, b := cachedValue(t, c1, ppl.Key), cachedValue(t, c2, ppl.Key)
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Errorf("exec --graph stored %d bytes, exec RECIPE %d, equal %t", len(a), len(b), bytes.Equal(a, b))
	}

	code, _, errs = lrmc(t, "--cache", c1, "exec", "--graph", file, "000000000000")
	if code != 1 || !strings.Contains(errs, "no node 000000000000 in "+file) {
		t.Errorf("unknown key: exit %d, %s", code, errs)
	}
}

// editGraph rewrites the first node of op in the graph file at path.
func editGraph(t *testing.T, path, op string, edit func(*planner.GraphNode)) *planner.GraphNode {
	t.Helper()
	var f planner.GraphFile
	if err := json.Unmarshal(mustRead(t, path), &f); err != nil {
		t.Fatal(err)
	}
	for i := range f.Nodes {
		if f.Nodes[i].Op == op {
			edit(&f.Nodes[i])
			b, err := json.MarshalIndent(f, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return &f.Nodes[i]
		}
	}
	t.Fatalf("no %s node in %s", op, path)
	return nil
}

// A graph edited by hand, planned by another op version, or whose model
// file changed runs nothing, and says why.
func TestExecGraphRefusesWhatWasNotPlanned(t *testing.T) {
	dir := t.TempDir()
	// The model and its tokenizer, copied so that the test can change
	// the model's bytes.
	data := filepath.Dir(shareddata.Path(t, "models", "stories260K", "stories260K.bin"))
	model := filepath.Join(dir, "m", "stories260K.bin")
	os.Mkdir(filepath.Dir(model), 0o755)
	for _, name := range []string{"stories260K.bin", "tok512.bin"} {
		if err := os.WriteFile(filepath.Join(dir, "m", name), mustRead(t, filepath.Join(data, name)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	recipe := writeRecipe(t, dir, 1)
	src := strings.Replace(string(mustRead(t, recipe)), filepath.Join(data, "stories260K.bin"), model, 1)
	if err := os.WriteFile(recipe, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	planned := filepath.Join(dir, "planned.json")
	if code, _, errs := lrmc(t, "--cache", filepath.Join(dir, "c0"), "plan", "--emit", "graph", planned, recipe); code != 0 {
		t.Fatalf("plan --emit graph: exit %d: %s", code, errs)
	}
	g := graphOf(t, recipe)
	block := runNode(t, g, "capture.block", "shortgpt-1")
	file := filepath.Join(dir, "graph.json")
	exec := func() (int, string, string) {
		return lrmc(t, "--cache", filepath.Join(dir, "c"), "exec", "--graph", file, block.Key.String()[:12])
	}
	v := version.Version
	for _, c := range []struct {
		name, op string
		edit     func(*planner.GraphNode)
		want     func(n *planner.GraphNode) string
	}{
		{"params", "calib.windows", func(n *planner.GraphNode) {
			n.Params = json.RawMessage(strings.Replace(string(n.Params), `"samples": 8`, `"samples": 9`, 1))
		}, func(n *planner.GraphNode) string {
			var p bytes.Buffer
			json.Compact(&p, n.Params)
			ins := make([]digest.Digest, len(n.Inputs))
			for i, k := range n.Inputs {
				ins[i], _ = digest.Parse(k)
			}
			// The key of the edited content, hashed here as the planner
			// does (op, version, params, input keys).
			km, _ := json.Marshal(struct {
				Op      string          `json:"op"`
				Version int             `json:"version"`
				Params  json.RawMessage `json:"params"`
				Inputs  []string        `json:"inputs"`
			}{n.Op, n.Version, p.Bytes(), n.Inputs})
			return fmt.Sprintf("lrmc: %s: node %.12s (calib.windows): key does not match the node's content: its op, version, params and inputs hash to %s; the graph was edited after it was planned\n",
				file, n.Key, digest.Of(km).Short())
		}},
		{"key", "capture.block", func(n *planner.GraphNode) { n.Key = strings.Repeat("f", 64) }, func(n *planner.GraphNode) string {
			return fmt.Sprintf("lrmc: %s: node ffffffffffff (capture.block): key does not match the node's content: its op, version, params and inputs hash to %s; the graph was edited after it was planned\n",
				file, block.Key.Short())
		}},
		{"op version", "capture.block", func(n *planner.GraphNode) { n.Version = 7 }, func(n *planner.GraphNode) string {
			return fmt.Sprintf("lrmc: %s: node %.12s (capture.block): field \"version\": planned at version 7, but this lrmc %s implements capture.block at version 1; plan the recipe again with this lrmc\n", file, n.Key, v)
		}},
		{"file digest", planner.OpSource, func(n *planner.GraphNode) { n.File.Digest = strings.Repeat("0", 64) }, func(n *planner.GraphNode) string {
			var p planner.SourceParams
			if err := json.Unmarshal(n.Params, &p); err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("lrmc: %s: node %.12s (source): field \"file.digest\": 000000000000, but the key was planned for %.12s (params.digest)\n", file, n.Key, p.Digest)
		}},
	} {
		if err := os.WriteFile(file, mustRead(t, planned), 0o644); err != nil {
			t.Fatal(err)
		}
		n := editGraph(t, file, c.op, c.edit)
		want := c.want(n)
		code, out, errs := exec()
		if code != 1 || out != "" || errs != want {
			t.Errorf("%s: exit %d, stdout %q, stderr:\n%s\nwant:\n%s", c.name, code, out, errs, want)
		}
	}

	// The model's bytes change after the plan: nothing runs.
	if err := os.WriteFile(file, mustRead(t, planned), 0o644); err != nil {
		t.Fatal(err)
	}
	was, _ := digest.File(model)
	b := mustRead(t, model)
	b[len(b)-1] ^= 1
	if err := os.WriteFile(model, b, 0o644); err != nil {
		t.Fatal(err)
	}
	now, _ := digest.File(model)
	code, out, errs := exec()
	want := fmt.Sprintf("lrmc: %s: %s changed since the graph was planned: expected digest %s, found %s; nothing was run (plan the recipe again to use the new contents)\n", file, model, was, now)
	if code != 1 || out != "" || errs != want {
		t.Errorf("changed model: exit %d, stdout %q, stderr:\n%s\nwant:\n%s", code, out, errs, want)
	}
	// With the planned bytes back, the same graph runs.
	b[len(b)-1] ^= 1
	if err := os.WriteFile(model, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := exec(); code != 0 || !strings.HasPrefix(out, "ran "+block.Key.Short()+" capture.block ") {
		t.Errorf("model restored: exit %d, %q %s", code, out, errs)
	}
}
