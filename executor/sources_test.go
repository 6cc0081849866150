package executor

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"lrmc/digest"
	"lrmc/planner"
)

// lenOp returns the length of the file its source input names.
type lenOp struct{ runs *atomic.Int32 }

func (lenOp) Version() int { return 1 }
func (o lenOp) Run(ctx context.Context, c *Call) (any, error) {
	o.runs.Add(1)
	b, err := os.ReadFile(c.Inputs[0].(string))
	return len(b), err
}
func (lenOp) Encode(v any) ([]byte, error) { return json.Marshal(v) }
func (lenOp) Decode(b []byte) (any, error) {
	var v int
	err := json.Unmarshal(b, &v)
	return v, err
}

// scriptedSources answers Check from a script: the i-th call returns
// script[i] (nil past its end).
type scriptedSources struct {
	mu     sync.Mutex
	calls  []string
	script []error
}

func (s *scriptedSources) Check(path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, path)
	if i := len(s.calls) - 1; i < len(s.script) {
		return s.script[i]
	}
	return nil
}

// sourceGraph is one node reading one source file.
func sourceGraph(path string) (*planner.Graph, *planner.Node) {
	src := &planner.Node{Key: digest.Of([]byte("src")), Op: planner.OpSource, Label: "src", Source: path}
	n := &planner.Node{Key: digest.Of([]byte("n")), Op: planner.OpMetrics, Params: []byte("{}"), Label: "measure", Inputs: []*planner.Node{src}}
	return &planner.Graph{Nodes: []*planner.Node{src, n}, Targets: []*planner.Node{n}}, n
}

// TestSourceCheckedBeforeAndAfterTheOp: the executor asks Sources about a
// node's source inputs before its op runs and again before storing its
// result; a change seen either time fails the node with "input changed
// during apply" and stores nothing.
func TestSourceCheckedBeforeAndAfterTheOp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data.txt")
	if err := os.WriteFile(path, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed := errors.New(path + ": it was replaced by another file")
	for _, c := range []struct {
		name    string
		script  []error
		runs    int32
		wantErr bool
	}{
		{"unchanged", nil, 1, false},
		{"changed before", []error{changed}, 0, true},
		{"changed during", []error{nil, changed}, 1, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			store := &memStore{m: map[digest.Digest][]byte{}}
			g, n := sourceGraph(path)
			runs := new(atomic.Int32)
			ops := map[string]Op{}
			for name, v := range planner.Versions {
				ops[name] = planned{lenOp{runs: runs}, v}
			}
			sources := &scriptedSources{script: c.script}
			var started int
			ex, err := New(ops, store, Options{Sources: sources, Events: func(e Event) {
				if e.Event == EventStarted {
					started++
				}
			}})
			if err != nil {
				t.Fatal(err)
			}
			res, err := ex.Run(context.Background(), g)
			if runs.Load() != c.runs || int32(started) != c.runs {
				t.Errorf("the op ran %d times (%d started events), want %d", runs.Load(), started, c.runs)
			}
			_, stored, _ := store.Stat(n.Key)
			if !c.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				if v, _ := res.Value(n); v != 5 || !stored {
					t.Errorf("result %v, stored %v; want 5, stored", v, stored)
				}
				if len(sources.calls) != 2 || sources.calls[0] != path || sources.calls[1] != path {
					t.Errorf("Check calls %q, want the source twice", sources.calls)
				}
				return
			}
			want := "measure (report.metrics " + n.Key.Short() + "): input changed during apply: " + changed.Error()
			if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, changed) {
				t.Errorf("Run error = %v, want it to start %q", err, want)
			}
			if stored {
				t.Error("a result was stored for the node whose source changed")
			}
		})
	}
}

// TestOutputCopyOfAChangedSource: an output that copies a source file
// copies only the bytes planned; a file replaced since is an error, and
// neither the file nor a temporary is left in the output directory.
func TestOutputCopyOfAChangedSource(t *testing.T) {
	src := filepath.Join(t.TempDir(), "tokenizer.bin")
	if err := os.WriteFile(src, []byte("planned"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, _ := json.Marshal(planner.SourceParams{Digest: digest.Of([]byte("planned")).String()})
	n := &planner.Node{Key: digest.Of([]byte("src")), Op: planner.OpSource, Params: p, Label: "tokenizer.bin", Source: src}
	out := t.TempDir()
	g := &planner.Graph{OutDir: out, Outputs: []planner.Output{{Node: n, Path: "run/tokenizer.bin"}}}
	ops := map[string]Op{}
	for name, v := range planner.Versions {
		ops[name] = planned{lenOp{runs: new(atomic.Int32)}, v}
	}
	ex, err := New(ops, &memStore{m: map[digest.Digest][]byte{}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(out, "run", "tokenizer.bin")
	if _, err := ex.WriteOutputs(g, &Result{}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(dst); err != nil || string(b) != "planned" {
		t.Fatalf("copied %q, %v; want the planned bytes", b, err)
	}
	os.Remove(dst)

	if err := os.WriteFile(src, []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ex.WriteOutputs(g, &Result{})
	want := "input changed during apply: " + src + " no longer holds the bytes it was planned with"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("WriteOutputs error = %v, want it to contain %q", err, want)
	}
	// Nothing of the changed file is left anywhere under the output directory.
	filepath.WalkDir(out, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("%s is left in the output directory after the failed copy", path)
		}
		return nil
	})
}
