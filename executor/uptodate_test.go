package executor

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"lrmc/cache"
	"lrmc/digest"
	"lrmc/planner"
)

// inodes maps every file under root to its inode: a rewritten output is a
// new file (staged, then swapped in), an unchanged one keeps its inode.
func inodes(t *testing.T, root string) map[string]uint64 {
	t.Helper()
	m := map[string]uint64{}
	for rel := range tree(t, root) {
		st, err := os.Lstat(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().IsRegular() {
			m[rel] = st.Sys().(*syscall.Stat_t).Ino
		}
	}
	return m
}

// A rerun that would write the same bytes leaves the files in place; any
// difference (content, an extra or missing file, a mode) rewrites the unit
// it is in, and only that unit.
func TestUnchangedOutputsAreNotRewritten(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	g, r := outputs(t, out, 1)
	write(t, g, r)
	before := inodes(t, out)
	write(t, g, r)
	wantTree(t, out, v1Tree())
	after := inodes(t, out)
	for rel, ino := range before {
		if after[rel] != ino {
			t.Errorf("%s was rewritten though unchanged", rel)
		}
	}

	// A changed byte in a's bundle and a results.json of another mode:
	// those units are rewritten and restored, b is left alone.
	os.WriteFile(filepath.Join(out, "a", "hf", "model.safetensors"), []byte("model.safetensors v2"), 0o644)
	os.Chmod(filepath.Join(out, "results.json"), 0o600)
	before = inodes(t, out)
	write(t, g, r)
	wantTree(t, out, v1Tree())
	after = inodes(t, out)
	for rel, ino := range after {
		if rewritten := before[rel] != ino; rewritten != (filepath.Dir(rel) != "b") {
			t.Errorf("%s rewritten: %v", rel, rewritten)
		}
	}

	// An extra file, a file cut short, an extra empty directory: each
	// makes its unit rewritten, which drops what is not an output.
	for _, damage := range []func(){
		func() { os.WriteFile(filepath.Join(out, "b", "stray.txt"), []byte("x"), 0o644) },
		func() { os.Truncate(filepath.Join(out, "b", "model.bin"), 3) },
		func() { os.Mkdir(filepath.Join(out, "a", "empty"), 0o755) },
		func() { os.Remove(filepath.Join(out, "a", "hf", "config.json")) },
	} {
		damage()
		write(t, g, r)
		wantTree(t, out, v1Tree())
	}
}

// countingStore counts Gets by key.
type countingStore struct {
	*cache.Store
	mu   sync.Mutex
	gets map[digest.Digest]int
}

func (s *countingStore) Get(k digest.Digest) ([]byte, cache.Meta, error) {
	s.mu.Lock()
	s.gets[k]++
	s.mu.Unlock()
	return s.Store.Get(k)
}

// bundleOp returns a fixed bundle (a directory artifact's cached form).
type bundleOp struct{ b []byte }

func (bundleOp) Version() int                              { return 1 }
func (o bundleOp) Run(context.Context, *Call) (any, error) { return o.b, nil }
func (bundleOp) Encode(v any) ([]byte, error)              { return v.([]byte), nil }
func (bundleOp) Decode(b []byte) (any, error)              { return b, nil }

// An output that already holds its node's cached value (checked against
// the entry's BLAKE3) spares reading the value at all; one that differs is
// read from the cache and rewritten.
func TestOutputsOnDiskAreNotRead(t *testing.T) {
	st, err := cache.Open(t.TempDir(), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	store := &countingStore{Store: st, gets: map[digest.Digest]int{}}
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "config.json"), []byte(`{"layers": 2}`), 0o644)
	os.WriteFile(filepath.Join(src, "model.safetensors"), []byte("weights"), 0o644)
	bundle, err := PackDir(src)
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]Op{}
	for name, v := range planner.Versions {
		ops[name] = planned{sumOp{runs: new(atomic.Int32)}, v}
	}
	ops[planner.OpExportHF] = planned{bundleOp{bundle}, planner.Versions[planner.OpExportHF]}
	ex, err := New(ops, store, Options{})
	if err != nil {
		t.Fatal(err)
	}
	g, n := diamond()
	hfNode := &planner.Node{Key: digest.Of([]byte("hf")), Op: planner.OpExportHF, Label: "hf"}
	g.Nodes = append(g.Nodes, hfNode)
	g.Targets = append(g.Targets, hfNode)
	g.OutDir = filepath.Join(t.TempDir(), "out")
	g.Outputs = []planner.Output{{Node: n["d"], Path: "r/d.json"}, {Node: hfNode, Path: "r/hf", Dir: true}}
	apply := func() (cached int) {
		t.Helper()
		res, err := ex.Run(context.Background(), g)
		if err == nil {
			_, err = ex.WriteOutputs(g, res)
		}
		if err != nil {
			t.Fatal(err)
		}
		return res.Cached
	}
	want := map[string]string{".": "dir", "d.json": "1112", "hf": "dir", "hf/config.json": `{"layers": 2}`, "hf/model.safetensors": "weights"}
	apply()
	root := filepath.Join(g.OutDir, "r")
	wantTree(t, root, want)
	before := inodes(t, root)

	clear(store.gets)
	if cached := apply(); cached != 2 || store.gets[n["d"].Key] != 0 || store.gets[hfNode.Key] != 0 {
		t.Errorf("rerun: %d cached, gets %v: the outputs on disk were read from the cache", cached, store.gets)
	}
	wantTree(t, root, want)
	if after := inodes(t, root); !maps.Equal(before, after) {
		t.Errorf("rerun rewrote outputs: %v -> %v", before, after)
	}

	// Only d.json differs: the unit is staged again, hf/ linked into it
	// from the output (still unread), d read and rewritten.
	os.WriteFile(filepath.Join(root, "d.json"), []byte("1113"), 0o644)
	clear(store.gets)
	apply()
	if store.gets[n["d"].Key] != 1 || store.gets[hfNode.Key] != 0 {
		t.Errorf("d.json changed: gets %v, want d read and hf not", store.gets)
	}
	wantTree(t, root, want)

	// Other bytes (d.json of the same size): both are read and rewritten.
	os.WriteFile(filepath.Join(root, "d.json"), []byte("1113"), 0o644)
	os.WriteFile(filepath.Join(root, "hf", "model.safetensors"), []byte("weighs"), 0o644)
	clear(store.gets)
	apply()
	if store.gets[n["d"].Key] != 1 || store.gets[hfNode.Key] != 1 {
		t.Errorf("changed outputs: gets %v, want d and hf read", store.gets)
	}
	wantTree(t, root, want)
}

// WriteFileAtomic leaves a file that already holds the bytes in place.
func TestWriteFileAtomicKeepsTheSameBytes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "report.md")
	ino := func() uint64 {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st.Sys().(*syscall.Stat_t).Ino
	}
	if err := WriteFileAtomic(p, []byte("v1")); err != nil {
		t.Fatal(err)
	}
	first := ino()
	if err := WriteFileAtomic(p, []byte("v1")); err != nil || ino() != first {
		t.Errorf("same bytes: rewritten (%v)", err)
	}
	if err := WriteFileAtomic(p, []byte("v2")); err != nil || ino() == first {
		t.Errorf("other bytes: not rewritten (%v)", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "v2" {
		t.Errorf("content %q", b)
	}
}
