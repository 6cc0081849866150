package ops_test

import (
	"context"
	"encoding/json"
	"testing"

	"lrmc/compiler/ir"
	"lrmc/executor/ops"
)

// depthRun is a stories260K run with the given depth method and count.
func depthRun(t *testing.T, r *ir.Recipe, name, method string, remove int) ir.Run {
	run := stories(t, t.TempDir(), 1).Runs[0]
	run.Name = name
	run.Prune = ir.Prune{Paradigm: "depth", Method: method, Remove: remove}
	run.Calibration.Samples = 8
	return run
}

// Every depth method removes the blocks its scores rank lowest; SLEB's
// sweep shares its greedy prefix.
func TestDepthMethods(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	r := stories(t, out)
	for _, c := range []struct {
		name, method string
		remove       int
	}{{"ppl-1", "shortened-ppl", 1}, {"taylor-1", "shortened-taylor", 1}, {"sleb-1", "sleb", 1}} {
		r.Runs = append(r.Runs, depthRun(t, r, c.name, c.method, c.remove))
	}
	rec := &recorder{}
	if err := apply(t, context.Background(), dir, r, rec); err != nil {
		t.Fatal(err)
	}
	if n := rec.started(opBlockPPL); n != 5 {
		t.Errorf("scored %d blocks by perplexity, want 5", n)
	}
	var res ops.Results
	if err := json.Unmarshal(readResults(t, out), &res); err != nil {
		t.Fatal(err)
	}
	for name, m := range res.Runs {
		if m["blocks"] != 4.0 {
			t.Errorf("%s keeps %v blocks, want 4", name, m["blocks"])
		}
		if ppl := m["perplexity"].(float64); ppl <= res.Dense["perplexity"].(float64) {
			t.Errorf("%s: perplexity %g not above dense", name, ppl)
		}
	}
	// Shortened-LLM PPL scores a block by the calibration perplexity
	// without it; the removed block has the lowest.
	scores := res.Runs["ppl-1"]["blockScores"].([]any)
	removed := int(res.Runs["ppl-1"]["removed"].([]any)[0].(float64))
	for i, s := range scores {
		if s.(float64) < scores[removed].(float64) {
			t.Errorf("ppl-1 removed block %d (%v) but block %d scores %v", removed, scores[removed], i, s)
		}
	}
	// SLEB's first step is the PPL criterion's choice.
	if got := res.Runs["sleb-1"]["removed"]; got.([]any)[0] != res.Runs["ppl-1"]["removed"].([]any)[0] {
		t.Errorf("sleb-1 removed %v, shortened-ppl %v: one greedy step is the PPL criterion", got, res.Runs["ppl-1"]["removed"])
	}

	// Extending the SLEB sweep to two blocks runs only the second step.
	r.Runs = append(r.Runs, depthRun(t, r, "sleb-2", "sleb", 2))
	rec = &recorder{}
	if err := apply(t, context.Background(), dir, r, rec); err != nil {
		t.Fatal(err)
	}
	if n := rec.started(opSLEBStep); n != 1 {
		t.Errorf("sleb-2 ran %d search steps, want 1 (step 1 is cached)", n)
	}
}
