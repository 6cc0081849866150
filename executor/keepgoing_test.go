package executor

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"lrmc/digest"
	"lrmc/planner"
)

// twoRuns builds a shared input s used by runs "good" and "bad", each with
// its own chain s → x → metrics, and a results node over both metrics.
func twoRuns() (*planner.Graph, map[string]*planner.Node) {
	mk := func(label string, add int, runs []string, in ...*planner.Node) *planner.Node {
		p, _ := json.Marshal(map[string]int{"Add": add})
		return &planner.Node{Key: digest.Of([]byte(label)), Op: planner.OpMetrics, Params: p, Label: label, Inputs: in, Runs: runs}
	}
	s := mk("shared", 1, []string{"bad", "good"})
	gx := mk("good x", 10, []string{"good"}, s)
	bx := mk("bad x", 20, []string{"bad"}, s)
	gm := mk("good metrics", 100, []string{"good"}, gx)
	bm := mk("bad metrics", 200, []string{"bad"}, bx)
	res := mk("results", 0, []string{""}, gm, bm)
	g := &planner.Graph{Nodes: []*planner.Node{s, gx, bx, gm, bm, res}, Targets: []*planner.Node{gm, bm, res}}
	return g, map[string]*planner.Node{"s": s, "gx": gx, "bx": bx, "gm": gm, "bm": bm, "res": res}
}

func TestKeepGoingResolvesTheRunsThatDoNotFail(t *testing.T) {
	g, n := twoRuns()
	runs := new(atomic.Int32)
	var failedEvents []Event
	ex := newExec(t, sumOp{runs: runs, fail: "bad x"}, &memStore{m: map[digest.Digest][]byte{}}, 1, func(e Event) {
		if e.Event == EventFailed {
			failedEvents = append(failedEvents, e)
		}
	})
	res, err := ex.Run(context.Background(), g)
	var re *RunError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want a *RunError", err)
	}
	if res == nil {
		t.Fatal("no result with the RunError")
	}
	if v, ok := res.Value(n["gm"]); !ok || v != 111 {
		t.Errorf("good metrics = %v (%v), want 111", v, ok)
	}
	if _, ok := res.Value(n["bm"]); ok {
		t.Error("bad metrics has a value")
	}
	if len(re.Failures) != 1 || re.Failures[0].Node != n["bx"] || re.Failures[0].Err.Error() != "op failed" {
		t.Fatalf("failures = %+v, want bad x's own failure only", re.Failures)
	}
	if want := "bad x (report.metrics " + n["bx"].Key.Short() + "): op failed"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	fr := res.FailedRuns()
	if len(fr) != 1 || len(fr["bad"]) != 1 || fr["bad"][0].Node != n["bx"] {
		t.Errorf("failed runs = %+v, want bad ← bad x", fr)
	}
	if len(failedEvents) != 1 || strings.Join(failedEvents[0].Runs, ",") != "bad" {
		t.Errorf("failed events %+v, want one naming run bad", failedEvents)
	}
	// shared, good x, good metrics and bad x ran; bad metrics and results
	// never started.
	if runs.Load() != 4 {
		t.Errorf("%d ops ran, want 4", runs.Load())
	}

	// The graph of the good run alone resolves from the first execution
	// without running or reading anything again.
	res2 := mkResults(n["gm"])
	g2 := &planner.Graph{Nodes: []*planner.Node{n["s"], n["gx"], n["gm"], res2}, Targets: []*planner.Node{n["gm"], res2}}
	before := runs.Load()
	out, err := ex.RunWith(context.Background(), g2, res)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := out.Value(res2); v != 111 {
		t.Errorf("results over the good run = %v, want 111", v)
	}
	if runs.Load()-before != 1 || out.Cached != 0 {
		t.Errorf("second execution ran %d ops and read %d, want 1 (results) and 0", runs.Load()-before, out.Cached)
	}
}

func mkResults(in ...*planner.Node) *planner.Node {
	return &planner.Node{Key: digest.Of([]byte("results of good")), Op: planner.OpMetrics, Params: []byte(`{"Add":0}`), Label: "results", Inputs: in, Runs: []string{""}}
}

func TestFailFastStopsEverything(t *testing.T) {
	g, _ := twoRuns()
	// shared runs first; with one job, bad x's failure cancels good x
	// while it waits for its turn or runs.
	g.Nodes[1], g.Nodes[2] = g.Nodes[2], g.Nodes[1]
	runs := new(atomic.Int32)
	ops := map[string]Op{}
	for name, v := range planner.Versions {
		ops[name] = planned{sumOp{runs: new(atomic.Int32)}, v}
	}
	ops[planner.OpMetrics] = planned{sumOp{runs: runs, fail: "bad x", delay: 200 * time.Millisecond}, planner.Versions[planner.OpMetrics]}
	store := &memStore{m: map[digest.Digest][]byte{}}
	ex, err := New(ops, store, Options{Jobs: 4, FailFast: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := ex.Run(context.Background(), g)
	if res != nil || err == nil || !strings.HasPrefix(err.Error(), "bad x (report.metrics ") {
		t.Fatalf("fail-fast: res %v, err %v; want no result and bad x's error", res, err)
	}
	var re *RunError
	if errors.As(err, &re) {
		t.Error("fail-fast returned a RunError")
	}
	// good x was running (200ms) when bad x failed at once: cancelled,
	// so neither it nor anything after it is stored.
	for _, k := range []string{"good x", "good metrics", "results"} {
		if _, ok, _ := store.Stat(digest.Of([]byte(k))); ok {
			t.Errorf("%s stored after the failure", k)
		}
	}
}
