package ops_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lrmc/cache"
	"lrmc/compiler/ir"
	"lrmc/digest"
	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/kernels/hf"
	"lrmc/kernels/modelref"
	"lrmc/kernels/synth"
	"lrmc/planner"
)

// tinyAlphabet is the tiny tokenizer's vocabulary after <unk>: one token
// per character, so any text written from it encodes.
const tinyAlphabet = "abcdefghijklmnopqrstuvwxyz .,\n"

// tinyVocab is the tiny tokenizer's and the tiny models' vocabulary size.
const tinyVocab = len(tinyAlphabet) + 1

func tinyTokenizerJSON() string {
	vocab := map[string]int{"<unk>": 0}
	for i, r := range tinyAlphabet {
		vocab[string(r)] = i + 1
	}
	v, _ := json.Marshal(vocab)
	return `{"added_tokens": [{"id": 0, "content": "<unk>", "special": true}],
		"normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null,
		"model": {"type": "BPE", "unk_token": "<unk>", "vocab": ` + string(v) + `, "merges": []}}`
}

// writeTinyHF writes a seeded random two-block Llama checkpoint with the
// tiny tokenizer into dir: config.json, model.safetensors, tokenizer.json
// and tokenizer_config.json.
func writeTinyHF(t *testing.T, dir string, seed int64) {
	t.Helper()
	m, cfg, err := synth.New(synth.Spec{Arch: "llama", Layers: 2, Dim: 32, Heads: 4, KVHeads: 2, FFN: 48,
		Vocab: tinyVocab, SeqLen: 64, Seed: uint64(seed)})
	if err != nil {
		t.Fatal(err)
	}
	if err := hf.Save(dir, m, cfg, "float32", 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(tinyTokenizerJSON()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeText writes documents of words made from the tiny alphabet.
func writeText(t *testing.T, path string, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	words := []string{"the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far", "away", "home"}
	var b strings.Builder
	for doc := range 20 {
		if doc > 0 {
			b.WriteString("\n\n")
		}
		for w := range 30 {
			if w > 0 {
				b.WriteString(" ")
			}
			b.WriteString(words[r.IntN(len(words))])
		}
		b.WriteString(".")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// addHubRevision stores a tiny checkpoint in a Hugging Face hub cache the
// way huggingface_hub does: each file's bytes in blobs/ under its hash,
// the snapshot of the commit made of symbolic links into blobs/, and
// refs/REV naming the commit.
func addHubRevision(t *testing.T, hub, repo, rev string, seed int64) {
	t.Helper()
	org, name, _ := strings.Cut(repo, "/")
	repoDir := filepath.Join(hub, "models--"+org+"--"+name)
	commit := digest.Of(fmt.Appendf(nil, "%s@%s", repo, rev)).String()[:40]
	snap := filepath.Join(repoDir, "snapshots", commit)
	for _, d := range []string{filepath.Join(repoDir, "blobs"), filepath.Join(repoDir, "refs"), snap} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tmp := t.TempDir()
	writeTinyHF(t, tmp, seed)
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		b, err := os.ReadFile(filepath.Join(tmp, en.Name()))
		if err != nil {
			t.Fatal(err)
		}
		blob := digest.Of(b).String()
		if err := os.WriteFile(filepath.Join(repoDir, "blobs", blob), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..", "..", "blobs", blob), filepath.Join(snap, en.Name())); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(repoDir, "refs", rev), []byte(commit), 0o644); err != nil {
		t.Fatal(err)
	}
}

// perplexityRecipe evaluates the dense model at path on the text at data.
func perplexityRecipe(model, data, out string) *ir.Recipe {
	eval := []ir.Eval{{Task: "perplexity", Data: ir.Data{Path: data, Format: "text", Split: ir.Split{From: 0, To: 1}},
		Samples: 4, SeqLen: 16}}
	return &ir.Recipe{File: "test.cue", Dense: true, DenseModel: ir.Model{Path: model, Format: "auto"},
		DenseEval: eval, Output: ir.Output{Dir: out}}
}

// plan plans r against the store and returns the graph and the Env that
// digested its sources.
func plan(t *testing.T, store *cache.Store, r *ir.Recipe) (*planner.Graph, *ops.Env) {
	t.Helper()
	env := &ops.Env{Files: store}
	g, err := planner.Plan(r, env)
	if err != nil {
		t.Fatal(err)
	}
	return g, env
}

func nodeOf(t *testing.T, g *planner.Graph, op string) *planner.Node {
	t.Helper()
	for _, n := range g.Nodes {
		if n.Op == op {
			return n
		}
	}
	t.Fatalf("the graph has no %s node", op)
	return nil
}

// TestHubRevisionsKeyedByTheirWeights: in a hub cache every file of a
// snapshot is a symbolic link into blobs/. Two revisions of one repository
// and another repository, all with different weights, must get distinct
// model keys and their own results; the links were left out of the
// directory's digest, so all three shared @main's key and results.
func TestHubRevisionsKeyedByTheirWeights(t *testing.T) {
	hub := t.TempDir()
	t.Setenv("HF_HUB_CACHE", hub)
	addHubRevision(t, hub, "org/a", "main", 1)
	addHubRevision(t, hub, "org/a", "v2", 2)
	addHubRevision(t, hub, "org/b", "main", 3)
	data := filepath.Join(t.TempDir(), "text.txt")
	writeText(t, data, 1)

	cacheDir := t.TempDir()
	store, err := cache.Open(cacheDir, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	ppl := map[float64]string{}
	for _, ref := range []string{"hf:org/a", "hf:org/a@v2", "hf:org/b"} {
		res, err := modelref.Resolve(ref)
		if err != nil {
			t.Fatal(err)
		}
		out := t.TempDir()
		r := perplexityRecipe(res.Path, data, out)
		g, env := plan(t, store, r)
		src := nodeOf(t, g, planner.OpModelLoad).Inputs[0]
		if other, dup := keys[src.Key.String()]; dup {
			t.Errorf("%s has the model key of %s", ref, other)
		}
		keys[src.Key.String()] = ref
		// The key is the digest of the snapshot's names and linked bytes.
		want := digest.New()
		for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} {
			b, err := os.ReadFile(filepath.Join(res.Path, f))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(want, "%s\x00%s\n", f, digest.Of(b))
		}
		var sp planner.SourceParams
		if err := json.Unmarshal(src.Params, &sp); err != nil || sp.Digest != want.Digest().String() {
			t.Errorf("%s: model source digest %s, want the digest of its linked files %s", ref, sp.Digest, want.Digest())
		}

		rec := &recorder{}
		ex, err := executor.New(ops.Registry(), store, executor.Options{Events: rec.add, Sources: env})
		if err != nil {
			t.Fatal(err)
		}
		result, err := ex.Run(context.Background(), g)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if n := rec.started(planner.OpPerplexity); n != 1 {
			t.Errorf("%s: perplexity ran %d times, want 1 (not another model's cached result)", ref, n)
		}
		v, _ := result.Value(g.Results)
		p, _ := v.(ops.Results).Dense["perplexity"].(float64)
		if p <= 1 {
			t.Errorf("%s: perplexity %v", ref, p)
		}
		if other, dup := ppl[p]; dup {
			t.Errorf("%s has the perplexity of %s: %v", ref, other, p)
		}
		ppl[p] = ref
	}
	store.Close()
}

// TestEnvDigestsDirectories: a directory's digest follows symbolic links
// to files, changes with the set of files and with any file's bytes, and
// is, for a directory of regular files, what it always was (keys stay).
func TestEnvDigestsDirectories(t *testing.T) {
	dir := t.TempDir()
	blobs := t.TempDir()
	write := func(path, s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "config.json"), "{}")
	write(filepath.Join(dir, "tokenizer.json"), "tok")
	write(filepath.Join(dir, ".hidden"), "ignored")
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(dir, "sub", "x"), "ignored")
	if err := os.Symlink(filepath.Join(dir, "sub"), filepath.Join(dir, "linkdir")); err != nil {
		t.Fatal(err)
	}
	env := &ops.Env{}
	old := digest.New() // the digest before links were followed
	fmt.Fprintf(old, "config.json\x00%s\ntokenizer.json\x00%s\n", digest.Of([]byte("{}")), digest.Of([]byte("tok")))
	d0, err := env.FileDigest(dir)
	if err != nil || d0 != old.Digest() {
		t.Fatalf("regular files only: digest %s, %v; want %s as before", d0.Short(), err, old.Digest().Short())
	}

	// A linked file counts with its target's bytes.
	write(filepath.Join(blobs, "w1"), "weights one")
	write(filepath.Join(blobs, "w2"), "weights two")
	link := filepath.Join(dir, "model.safetensors")
	if err := os.Symlink(filepath.Join(blobs, "w1"), link); err != nil {
		t.Fatal(err)
	}
	d1, err := (&ops.Env{}).FileDigest(dir)
	if err != nil || d1 == d0 {
		t.Fatalf("with a linked model.safetensors: digest %s, %v; want it to change", d1.Short(), err)
	}
	write(filepath.Join(blobs, "w1"), "weights ONE")
	d2, err := (&ops.Env{}).FileDigest(dir)
	if err != nil || d2 == d1 {
		t.Errorf("linked file's bytes changed: digest %s, %v; want it to change", d2.Short(), err)
	}
	os.Remove(link)
	if err := os.Symlink(filepath.Join(blobs, "w2"), link); err != nil {
		t.Fatal(err)
	}
	d3, err := (&ops.Env{}).FileDigest(dir)
	if err != nil || d3 == d2 || d3 == d1 {
		t.Errorf("link pointed elsewhere: digest %s, %v; want a new one", d3.Short(), err)
	}
	os.Remove(filepath.Join(dir, "tokenizer.json"))
	if d4, err := (&ops.Env{}).FileDigest(dir); err != nil || d4 == d3 {
		t.Errorf("file removed: digest %s, %v; want a new one", d4.Short(), err)
	}

	// A broken link and a named pipe are errors, not left out.
	os.Remove(link)
	if err := os.Symlink(filepath.Join(blobs, "gone"), link); err != nil {
		t.Fatal(err)
	}
	_, err = (&ops.Env{}).FileDigest(dir)
	if want := link + " is a broken symbolic link (to " + filepath.Join(blobs, "gone") + ")"; err == nil || err.Error() != want {
		t.Errorf("broken link: error %v, want %q", err, want)
	}
	os.Remove(link)
	if err := syscall.Mkfifo(link, 0o644); err != nil {
		t.Skipf("cannot make a named pipe here: %v", err)
	}
	for _, path := range []string{dir, link} {
		done := make(chan error, 1)
		go func() { _, err := (&ops.Env{}).FileDigest(path); done <- err }()
		select {
		case err := <-done:
			if want := link + " is not a regular file (a named pipe)"; err == nil || err.Error() != want {
				t.Errorf("FileDigest(%s) with a named pipe: error %v, want %q", path, err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("FileDigest(%s) did not return within 10s: it reads the named pipe", path)
		}
	}
}

// TestEnvCheck: Check passes while a source is as digested and names the
// file and the change once it is not.
func TestEnvCheck(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "data.txt")
	if err := os.WriteFile(file, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := &ops.Env{}
	for _, p := range []string{dir, file} {
		if _, err := env.FileDigest(p); err != nil {
			t.Fatal(err)
		}
		if err := env.Check(p); err != nil {
			t.Errorf("Check(%s) unchanged: %v", p, err)
		}
	}
	if err := os.WriteFile(file+".new", []byte("two!"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(file+".new", file); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, file} {
		if err := env.Check(p); err == nil || err.Error() != file+": it was replaced by another file" {
			t.Errorf("Check(%s) after a rename over the file: %v", p, err)
		}
	}
	env = &ops.Env{}
	if _, err := env.FileDigest(dir); err != nil {
		t.Fatal(err)
	}
	added := filepath.Join(dir, "tokenizer_config.json")
	if err := os.WriteFile(added, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := env.Check(dir); err == nil || err.Error() != added+" was added" {
		t.Errorf("Check(dir) after a file was added: %v", err)
	}
	if err := env.Check(filepath.Join(dir, "other")); err == nil || !strings.Contains(err.Error(), "was not digested") {
		t.Errorf("Check of a path never digested: %v", err)
	}
}

// replaceFile renames a file with other content over path, as editors and
// downloaders do.
func replaceFile(t *testing.T, path string) {
	t.Helper()
	writeText(t, path+".new", 99)
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// changedInputApply plans a perplexity recipe over a tiny checkpoint, lets
// swap replace the data file at a point of its choosing, runs the graph,
// and checks that the run fails naming the file and that no result is
// cached under the keys planned for the old bytes.
func changedInputApply(t *testing.T, swap func(data string, g *planner.Graph) (before bool, hook func(executor.Event))) {
	model := t.TempDir()
	writeTinyHF(t, model, 1)
	data := filepath.Join(t.TempDir(), "text.txt")
	writeText(t, data, 1)
	store, err := cache.Open(t.TempDir(), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	g, env := plan(t, store, perplexityRecipe(model, data, t.TempDir()))
	tokens := nodeOf(t, g, planner.OpTokens)
	before, hook := swap(data, g)
	if before {
		replaceFile(t, data)
	}
	rec := &recorder{onEv: hook}
	ex, err := executor.New(ops.Registry(), store, executor.Options{Events: rec.add, Sources: env})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ex.Run(context.Background(), g)
	want := "input changed during apply: " + data + ": it was replaced by another file"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Run error = %v, want one containing %q", err, want)
	}
	for _, n := range []*planner.Node{tokens, nodeOf(t, g, planner.OpPerplexity)} {
		if _, ok, err := store.Stat(n.Key); ok || err != nil {
			t.Errorf("%s is cached under the key of the old bytes (%v)", n.Label, err)
		}
	}
	failed := false
	for _, e := range rec.events {
		failed = failed || e.Event == executor.EventFailed && e.Node == tokens.Key.String() && strings.Contains(e.Error, want)
	}
	if !failed {
		t.Error("no failed event for the tokens node names the change")
	}
}

// TestInputReplacedAfterPlan: a data file replaced between planning and
// the op that reads it fails the node before the op runs.
func TestInputReplacedAfterPlan(t *testing.T) {
	changedInputApply(t, func(string, *planner.Graph) (bool, func(executor.Event)) { return true, nil })
}

// TestInputReplacedDuringOp: a data file replaced once the op has started
// (it reads the new bytes) fails the node when the op returns, before its
// result is stored.
func TestInputReplacedDuringOp(t *testing.T) {
	changedInputApply(t, func(data string, g *planner.Graph) (bool, func(executor.Event)) {
		return false, func(e executor.Event) {
			if e.Event == executor.EventStarted && e.Op == planner.OpTokens {
				replaceFile(t, data)
			}
		}
	})
}

// TestModelChangedDuringPlan: a checkpoint whose files change between its
// header being read and its bytes being digested is a planning error, not
// a key that mixes two versions.
func TestModelChangedDuringPlan(t *testing.T) {
	model := t.TempDir()
	writeTinyHF(t, model, 1)
	env := &ops.Env{}
	if _, err := env.Model(ir.Model{Path: model, Format: "auto"}); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	writeTinyHF(t, other, 2)
	if err := os.Rename(filepath.Join(other, "model.safetensors"), filepath.Join(model, "model.safetensors")); err != nil {
		t.Fatal(err)
	}
	_, err := env.FileDigest(model)
	want := model + " changed while the recipe was planned: " + filepath.Join(model, "model.safetensors") + ": it was replaced by another file"
	if err == nil || err.Error() != want {
		t.Errorf("FileDigest error = %v, want %q", err, want)
	}
}

// TestEnvModelRefusesNamedPipe: a model or tokenizer that became a named
// pipe after vet is refused when planning reads its header, promptly
// (reading the header would wait for a writer forever).
func TestEnvModelRefusesNamedPipe(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "model.bin")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("cannot make a named pipe here: %v", err)
	}
	tokDir := t.TempDir()
	writeTinyHF(t, tokDir, 1)
	for _, m := range []ir.Model{
		{Path: fifo, Format: "auto"},
		{Path: fifo, Format: "llama2c", Tokenizer: tokDir},
		{Tokenizer: fifo, Synthetic: &ir.Synthetic{Arch: "llama", Layers: 1, Dim: 32, Heads: 4, KVHeads: 2, FFN: 48, SeqLen: 64}},
	} {
		done := make(chan error, 1)
		go func() { _, err := (&ops.Env{}).Model(m); done <- err }()
		select {
		case err := <-done:
			if want := fifo + " is not a regular file (a named pipe)"; err == nil || err.Error() != want {
				t.Errorf("Model(%+v) error = %v, want %q", m, err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Model(%+v) did not return within 10s: it reads the named pipe", m)
		}
	}
}
