package executor

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lrmc/cache"
	"lrmc/digest"
	"lrmc/planner"
)

// memStore is an in-memory Store.
type memStore struct {
	mu sync.Mutex
	m  map[digest.Digest][]byte
}

func (s *memStore) Get(k digest.Digest) ([]byte, cache.Meta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[k]
	if !ok {
		return nil, cache.Meta{}, cache.ErrNotFound
	}
	return b, cache.Meta{Size: int64(len(b))}, nil
}

func (s *memStore) Put(k digest.Digest, op, name string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = v
	return nil
}

func (s *memStore) Delete(k digest.Digest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
	return nil
}

func (s *memStore) Stat(k digest.Digest) (cache.Meta, bool, error) {
	_, _, err := s.Get(k)
	return cache.Meta{}, err == nil, nil
}

// planned gives a test op the version the planner plans its name at, so
// one stub can stand for every op.
type planned struct {
	Op
	v int
}

func (p planned) Version() int { return p.v }

// sumOp adds its integer inputs and its "add" parameter, counting runs.
type sumOp struct {
	runs *atomic.Int32
	// active and peak, when set, measure how many Runs overlap.
	active, peak *atomic.Int32
	delay        time.Duration
	fail         string // panic or error when the node label equals this
}

func (o sumOp) Version() int { return 1 }
func (o sumOp) Run(ctx context.Context, c *Call) (any, error) {
	o.runs.Add(1)
	if o.active != nil {
		n := o.active.Add(1)
		defer o.active.Add(-1)
		for p := o.peak.Load(); n > p && !o.peak.CompareAndSwap(p, n); p = o.peak.Load() {
		}
	}
	if c.Node.Label == o.fail {
		if strings.HasPrefix(o.fail, "panic") {
			panic("boom")
		}
		return nil, errors.New("op failed")
	}
	select {
	case <-time.After(o.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var p struct{ Add int }
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	total := p.Add
	for _, in := range c.Inputs {
		total += in.(int)
	}
	return total, nil
}
func (sumOp) Encode(v any) ([]byte, error) { return json.Marshal(v) }
func (sumOp) Decode(b []byte) (any, error) {
	var v int
	err := json.Unmarshal(b, &v)
	return v, err
}

// diamond builds a → (b, c) → d, all with the op "report.metrics" (any
// non-ephemeral planner op name works for the executor).
func diamond() (*planner.Graph, map[string]*planner.Node) {
	mk := func(label string, add int, in ...*planner.Node) *planner.Node {
		p, _ := json.Marshal(map[string]int{"Add": add})
		return &planner.Node{Key: digest.Of([]byte(label)), Op: planner.OpMetrics, Params: p, Label: label, Inputs: in}
	}
	a := mk("a", 1)
	b := mk("b", 10, a)
	c := mk("c", 100, a)
	d := mk("d", 1000, b, c)
	return &planner.Graph{Nodes: []*planner.Node{a, b, c, d}, Targets: []*planner.Node{d}},
		map[string]*planner.Node{"a": a, "b": b, "c": c, "d": d}
}

func newExec(t *testing.T, op Op, store Store, jobs int, events func(Event)) *Executor {
	ops := map[string]Op{}
	for name, v := range planner.Versions {
		ops[name] = planned{sumOp{runs: new(atomic.Int32)}, v}
	}
	ops[planner.OpMetrics] = planned{op, planner.Versions[planner.OpMetrics]}
	ex, err := New(ops, store, Options{Jobs: jobs, Events: events})
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

func TestDiamondRunsEachNodeOnce(t *testing.T) {
	runs := new(atomic.Int32)
	store := &memStore{m: map[digest.Digest][]byte{}}
	g, n := diamond()
	ex := newExec(t, sumOp{runs: runs, delay: 10 * time.Millisecond}, store, 4, nil)
	res, err := ex.Run(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := res.Value(n["d"]); v != 1112 {
		t.Errorf("d = %v, want 1112", v)
	}
	if runs.Load() != 4 || res.Ran != 4 {
		t.Errorf("ran %d ops (result says %d), want 4: the shared input must run once", runs.Load(), res.Ran)
	}
	// Rerun: d is cached, nothing runs.
	res, err = ex.Run(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	if runs.Load() != 4 || res.Cached != 1 {
		t.Errorf("rerun ran %d ops and read %d, want 0 and 1", runs.Load()-4, res.Cached)
	}
}

func TestFailureCancelsAndNamesTheNode(t *testing.T) {
	for _, fail := range []string{"b", "panic"} {
		g, n := diamond()
		if fail == "panic" {
			n["b"].Label = "panic"
		}
		ex := newExec(t, sumOp{runs: new(atomic.Int32), delay: 50 * time.Millisecond, fail: fail}, &memStore{m: map[digest.Digest][]byte{}}, 4, nil)
		_, err := ex.Run(context.Background(), g)
		if err == nil {
			t.Fatalf("%s: failing op did not fail the run", fail)
		}
		if !strings.HasPrefix(err.Error(), fail+" (report.metrics ") {
			t.Errorf("%s: error does not name the node first: %v", fail, err)
		}
	}
}

func TestVersionMismatchIsRejected(t *testing.T) {
	ops := map[string]Op{}
	for name, v := range planner.Versions {
		ops[name] = planned{sumOp{runs: new(atomic.Int32)}, v}
	}
	ops[planner.OpPerplexity] = badVersion{sumOp{runs: new(atomic.Int32)}}
	_, err := New(ops, &memStore{}, Options{})
	if err == nil || !strings.Contains(err.Error(), `op "eval.perplexity" is implemented at version 7 but planned at version 1`) {
		t.Errorf("error = %v", err)
	}
	delete(ops, planner.OpPerplexity)
	if _, err := New(ops, &memStore{}, Options{}); err == nil || !strings.Contains(err.Error(), "has no implementation") {
		t.Errorf("missing op error = %v", err)
	}
}

type badVersion struct{ sumOp }

func (badVersion) Version() int { return 7 }

func TestEventsAndJobsBound(t *testing.T) {
	var mu sync.Mutex
	var events []Event
	peak := new(atomic.Int32)
	g, _ := diamond()
	op := sumOp{runs: new(atomic.Int32), delay: 20 * time.Millisecond, active: new(atomic.Int32), peak: peak}
	ex := newExec(t, op, &memStore{m: map[digest.Digest][]byte{}}, 1, func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	})
	if _, err := ex.Run(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	if peak.Load() != 1 {
		t.Errorf("with Jobs=1, %d ops ran at once", peak.Load())
	}
	if len(events) != 8 {
		t.Errorf("%d events, want 4 started + 4 finished", len(events))
	}
	for _, e := range events {
		if e.Node == "" || e.Op == "" || e.Time.IsZero() {
			t.Errorf("incomplete event %+v", e)
		}
	}
}

// countOp counts to 10, saving a checkpoint at every step; it stops with
// an error at stopAt (simulating an interruption) unless resuming past it.
type countOp struct {
	stopAt  int64
	started *int64 // the step the last run started from
}

func (countOp) Version() int { return 1 }
func (o countOp) Run(ctx context.Context, c *Call) (any, error) {
	var step int64
	total := 0
	if s, state, ok, err := c.Checkpoints.Load(); err != nil {
		return nil, err
	} else if ok {
		step = s
		json.Unmarshal(state, &total)
	}
	*o.started = step
	for ; step < 10; step++ {
		if step == o.stopAt {
			return nil, errors.New("interrupted")
		}
		total += int(step)
		b, _ := json.Marshal(total)
		if err := c.Checkpoints.Save(step+1, b); err != nil {
			return nil, err
		}
	}
	return total, nil
}
func (countOp) Encode(v any) ([]byte, error) { return json.Marshal(v) }
func (countOp) Decode(b []byte) (any, error) {
	var v int
	return v, json.Unmarshal(b, &v)
}

func TestCheckpointsResume(t *testing.T) {
	store := &memStore{m: map[digest.Digest][]byte{}}
	n := &planner.Node{Key: digest.Of([]byte("count")), Op: planner.OpMetrics, Params: []byte("{}"), Label: "count"}
	g := &planner.Graph{Nodes: []*planner.Node{n}, Targets: []*planner.Node{n}}
	var started int64
	var events []Event
	ex := newExec(t, countOp{stopAt: 6, started: &started}, store, 1, func(e Event) { events = append(events, e) })
	if _, err := ex.Run(context.Background(), g); err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("first run: %v", err)
	}
	if _, ok, _ := store.Stat(checkpointKey(n)); !ok {
		t.Fatal("no checkpoint left by the interrupted run")
	}
	ex = newExec(t, countOp{stopAt: -1, started: &started}, store, 1, func(e Event) { events = append(events, e) })
	res, err := ex.Run(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	if started != 6 {
		t.Errorf("resumed from step %d, want 6", started)
	}
	if v, _ := res.Value(n); v != 45 {
		t.Errorf("result %v, want 45 (the uninterrupted sum)", v)
	}
	if _, ok, _ := store.Stat(checkpointKey(n)); ok {
		t.Error("the checkpoint outlived the finished node")
	}
	resumed := false
	for _, e := range events {
		resumed = resumed || (e.Event == EventResumed && e.Done == 6)
	}
	if !resumed {
		t.Error("no resumed event at step 6")
	}
}
