package ops_test

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"lrmc/cache"
	"lrmc/compiler/ir"
	"lrmc/executor/ops"
	"lrmc/planner"
)

// A recipe that asks for speed measures the dense and every pruned model
// once: the metrics carry what was measured and where, and a rerun reads
// the measurements back instead of measuring again.
func TestSpeedMeasured(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	r := stories(t, out, 2)
	r.Speed = &ir.Speed{Prefill: 48, Decode: 12, Reps: 1, Threads: 1}
	rec := &recorder{}
	if err := apply(t, context.Background(), dir, r, rec); err != nil {
		t.Fatal(err)
	}
	if n := rec.started(planner.OpSpeed); n != 2 {
		t.Errorf("measured %d models, want 2 (dense and shortgpt-2)", n)
	}
	var res ops.Results
	if err := json.Unmarshal(readResults(t, out), &res); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]ops.Metrics{"dense": res.Dense, "shortgpt-2": res.Runs["shortgpt-2"]} {
		s, ok := m["measuredSpeed"].(map[string]any)
		if !ok {
			t.Fatalf("%s: no measuredSpeed in %v", name, m)
		}
		for _, k := range []string{"prefillTokensPerS", "decodeTokensPerS"} {
			if v, ok := s[k].(float64); !ok || !(v > 0) || math.IsInf(v, 0) {
				t.Errorf("%s: %s = %v", name, k, s[k])
			}
		}
		note, _ := m["measuredOn"].(string)
		if !strings.Contains(note, ", 1 threads; one prefill of 48 tokens and 12 greedy decode steps, median of 1") {
			t.Errorf("%s: measuredOn %q", name, note)
		}
	}
	// The cached measurement: tokens per second is the tokens over the
	// seconds timed.
	store, err := cache.Open(dir, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	g, err := planner.Plan(r, &ops.Env{Files: store})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range g.Nodes {
		if n.Op != planner.OpSpeed {
			continue
		}
		b, _, err := store.Get(n.Key)
		if err != nil {
			t.Fatal(err)
		}
		var s ops.Speed
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		if s.PrefillTokens != 48 || s.DecodeTokens != 12 || s.Threads != 1 || s.Reps != 1 ||
			math.Abs(s.PrefillTokensPerS*s.PrefillSeconds-48) > 1e-6 || math.Abs(s.DecodeTokensPerS*s.DecodeSeconds-12) > 1e-6 {
			t.Errorf("cached measurement %+v", s)
		}
	}
	store.Close()
	rec = &recorder{}
	if err := apply(t, context.Background(), dir, r, rec); err != nil {
		t.Fatal(err)
	}
	if n := rec.started(""); n != 0 {
		t.Errorf("the rerun ran %d ops, want none (measurements are cached)", n)
	}
}
