package ops_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"lrmc/cache"
	"lrmc/compiler/ir"
	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/internal/shareddata"
	"lrmc/planner"
)

// stories builds a small depth-pruning recipe on the real stories260K model.
func stories(t *testing.T, out string, removes ...int) *ir.Recipe {
	t.Helper()
	model := ir.Model{Path: shareddata.Path(t, "models", "stories260K", "stories260K.bin"), Format: "auto"}
	text := shareddata.Path(t, "text", "tinystories", "tinystories_val.txt")
	eval := []ir.Eval{{Task: "perplexity", Data: ir.Data{Path: text, Format: "text", Split: ir.Split{From: 0.9, To: 1}}, Samples: 8, SeqLen: 128}}
	r := &ir.Recipe{File: "test.cue", Dense: true, DenseModel: model, DenseEval: eval, Output: ir.Output{Dir: out, Formats: []string{"llama2c"}}}
	for _, n := range removes {
		r.Runs = append(r.Runs, ir.Run{
			Name:  "shortgpt-" + string(rune('0'+n)),
			Model: model, Eval: eval,
			Calibration: ir.Calibration{Data: ir.Data{Path: text, Format: "text", Split: ir.Split{From: 0, To: 0.9}}, Samples: 16, SeqLen: 128, Seed: 1},
			Prune:       ir.Prune{Paradigm: "depth", Method: "shortgpt", Remove: n},
		})
	}
	return r
}

// recorder collects events.
type recorder struct {
	mu     sync.Mutex
	events []executor.Event
	onEv   func(executor.Event)
}

func (r *recorder) add(e executor.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	if r.onEv != nil {
		r.onEv(e)
	}
}

func (r *recorder) started(op string) int {
	n := 0
	for _, e := range r.events {
		if e.Event == executor.EventStarted && (op == "" || e.Op == op) {
			n++
		}
	}
	return n
}

// apply plans and runs r against the cache in dir, writing outputs.
func apply(t *testing.T, ctx context.Context, dir string, r *ir.Recipe, rec *recorder) error {
	t.Helper()
	store, err := cache.Open(dir, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	env := &ops.Env{Files: store}
	g, err := planner.Plan(r, env)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := executor.New(ops.Registry(), store, executor.Options{Events: rec.add, Sources: env})
	if err != nil {
		t.Fatal(err)
	}
	res, err := ex.Run(ctx, g)
	if err != nil {
		return err
	}
	_, err = ex.WriteOutputs(g, res)
	return err
}

func readResults(t *testing.T, out string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPipelineCachesAndShares(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	rec := &recorder{}
	if err := apply(t, context.Background(), dir, stories(t, out, 1, 2), rec); err != nil {
		t.Fatal(err)
	}
	if n := rec.started(opCaptureBlock); n != 5 {
		t.Errorf("first apply captured %d blocks, want 5 (shared by both runs)", n)
	}
	first := readResults(t, out)
	var res ops.Results
	if err := json.Unmarshal(first, &res); err != nil {
		t.Fatal(err)
	}
	dense, _ := res.Dense["perplexity"].(float64)
	if dense < 1 || dense > 100 {
		t.Errorf("dense perplexity %v is implausible for stories260K on TinyStories", dense)
	}
	for name, blocks := range map[string]float64{"shortgpt-1": 4, "shortgpt-2": 3} {
		m := res.Runs[name]
		if m["blocks"] != blocks {
			t.Errorf("%s: blocks %v, want %v", name, m["blocks"], blocks)
		}
		if ppl, _ := m["perplexity"].(float64); ppl <= dense {
			t.Errorf("%s: perplexity %v not above dense %v", name, ppl, dense)
		}
		if _, err := os.Stat(filepath.Join(out, name, "model.bin")); err != nil {
			t.Errorf("%s: exported model missing: %v", name, err)
		}
	}

	// Second apply: nothing runs, same results.
	rec = &recorder{}
	if err := apply(t, context.Background(), dir, stories(t, out, 1, 2), rec); err != nil {
		t.Fatal(err)
	}
	if n := rec.started(""); n != 0 {
		t.Errorf("second apply ran %d ops, want 0", n)
	}
	if !bytes.Equal(first, readResults(t, out)) {
		t.Error("second apply changed results.json")
	}

	// A new removal count reuses the calibration work: no forward pass.
	rec = &recorder{}
	if err := apply(t, context.Background(), dir, stories(t, out, 1, 2, 3), rec); err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{opCaptureEmbed, opCaptureBlock, opShortGPTBI, planner.OpCalibWindows} {
		if n := rec.started(op); n != 0 {
			t.Errorf("adding shortgpt-3 ran %s %d times", op, n)
		}
	}
	if n := rec.started(opPruneDepth); n != 1 {
		t.Errorf("adding shortgpt-3 ran prune.depth %d times, want 1", n)
	}
}

func TestCorruptEntryIsRecomputed(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	r := stories(t, out, 2)
	if err := apply(t, context.Background(), dir, r, &recorder{}); err != nil {
		t.Fatal(err)
	}
	want := readResults(t, out)

	// Find the key of the results node and of a capture node, then damage them.
	store, err := cache.Open(dir, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := planner.Plan(r, &ops.Env{Files: store})
	if err != nil {
		t.Fatal(err)
	}
	// Drop every result after calibration capture, and tamper with one
	// captured block: re-applying must notice, recompute that block and
	// everything after it, and reuse the rest.
	var block *planner.Node
	for _, n := range g.Nodes {
		switch {
		case n.Op == opCaptureBlock:
			if block == nil {
				block = n
			}
		case n.Op == opCaptureEmbed || n.Op == planner.OpCalibWindows || n.Op == planner.OpTokens || planner.IsEphemeral(n.Op):
		default:
			if err := store.Delete(n.Key); err != nil {
				t.Fatal(err)
			}
		}
	}
	store.Close()
	if err := cache.Tamper(dir, block.Key); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(out, "results.json"))

	rec := &recorder{}
	if err := apply(t, context.Background(), dir, r, rec); err != nil {
		t.Fatal(err)
	}
	corrupt := 0
	for _, e := range rec.events {
		if e.Event == executor.EventCorrupt && e.Node == block.Key.String() {
			corrupt++
		}
	}
	if corrupt != 1 {
		t.Errorf("corrupt events for the tampered block: %d, want 1", corrupt)
	}
	if rec.started(opCaptureBlock) != 1 || rec.started(opShortGPTBI) != 5 || rec.started(opCaptureEmbed) != 0 {
		t.Errorf("recomputed %d blocks, %d scores, %d embeddings; want 1, 5, 0",
			rec.started(opCaptureBlock), rec.started(opShortGPTBI), rec.started(opCaptureEmbed))
	}
	if got := readResults(t, out); !bytes.Equal(got, want) {
		t.Errorf("results after recomputation differ:\n%s\nwant\n%s", got, want)
	}
}

func TestCancelThenResumeIsBitIdentical(t *testing.T) {
	// Uninterrupted reference.
	refOut := t.TempDir()
	if err := apply(t, context.Background(), t.TempDir(), stories(t, refOut, 1, 2), &recorder{}); err != nil {
		t.Fatal(err)
	}
	want := readResults(t, refOut)
	wantModel, err := os.ReadFile(filepath.Join(refOut, "shortgpt-2", "model.bin"))
	if err != nil {
		t.Fatal(err)
	}

	dir, out := t.TempDir(), t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	finished := 0
	rec := &recorder{onEv: func(e executor.Event) {
		if e.Event == executor.EventFinished {
			finished++
			if finished == 4 {
				cancel()
			}
		}
	}}
	err = apply(t, ctx, dir, stories(t, out, 1, 2), rec)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled apply returned %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(out, "results.json")); err == nil {
		t.Error("a cancelled apply wrote results.json")
	}
	rec2 := &recorder{}
	if err := apply(t, context.Background(), dir, stories(t, out, 1, 2), rec2); err != nil {
		t.Fatal(err)
	}
	cached := 0
	for _, e := range rec2.events {
		if e.Event == executor.EventCached {
			cached++
		}
	}
	if cached == 0 {
		t.Error("the resumed apply read nothing from the cache")
	}
	if got := readResults(t, out); !bytes.Equal(got, want) {
		t.Errorf("resumed results differ from an uninterrupted apply:\n%s\nwant\n%s", got, want)
	}
	gotModel, _ := os.ReadFile(filepath.Join(out, "shortgpt-2", "model.bin"))
	if !bytes.Equal(gotModel, wantModel) {
		t.Error("resumed export differs from an uninterrupted apply")
	}
}
