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

// Every depth method removes the blocks its scores rank lowest; the
// scores that need activations start from the capture chain a previous
// method left (a method change runs no capture); barriers keep blocks out;
// SLEB's sweep shares its greedy prefix.
func TestDepthMethods(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	r := stories(t, out)
	r.Runs = append(r.Runs, depthRun(t, r, "shortgpt-1", "shortgpt", 1))
	if err := apply(t, context.Background(), dir, r, &recorder{}); err != nil {
		t.Fatal(err)
	}
	barriers := ir.Options{"earlyBarrier": 1, "latterBarrier": 1}
	for _, c := range []struct {
		name, method string
		remove       int
		opts         ir.Options
	}{{"ppl-1", "shortened-ppl", 1, nil}, {"taylor-1", "shortened-taylor", 1, barriers}, {"sleb-1", "sleb", 1, barriers}} {
		run := depthRun(t, r, c.name, c.method, c.remove)
		run.Prune.Options = c.opts
		r.Runs = append(r.Runs, run)
	}
	rec := &recorder{}
	if err := apply(t, context.Background(), dir, r, rec); err != nil {
		t.Fatal(err)
	}
	if n := rec.started(opBlockPPL); n != 5 {
		t.Errorf("scored %d blocks by perplexity, want 5", n)
	}
	if n := rec.started(opCaptureEmbed) + rec.started(opCaptureBlock); n != 0 {
		t.Errorf("adding perplexity and SLEB runs captured %d hidden states; shortgpt's captures should serve them", n)
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
	// SLEB's first step is the PPL criterion's choice among blocks 1..3,
	// and so is Taylor's among its candidates: neither touches a barrier.
	best := -1
	for i := 1; i <= 3; i++ {
		if best < 0 || scores[i].(float64) < scores[best].(float64) {
			best = i
		}
	}
	if got := int(res.Runs["sleb-1"]["removed"].([]any)[0].(float64)); got != best {
		t.Errorf("sleb-1 removed %d; the lowest perplexity without one of blocks 1..3 is block %d's", got, best)
	}
	if got := int(res.Runs["taylor-1"]["removed"].([]any)[0].(float64)); got == 0 || got == 4 {
		t.Errorf("taylor-1 removed block %d, behind a barrier", got)
	}

	// Extending the SLEB sweep to two blocks runs only the second step.
	sleb2 := depthRun(t, r, "sleb-2", "sleb", 2)
	sleb2.Prune.Options = barriers
	r.Runs = append(r.Runs, sleb2)
	rec = &recorder{}
	if err := apply(t, context.Background(), dir, r, rec); err != nil {
		t.Fatal(err)
	}
	if n := rec.started(opSLEBStep); n != 1 {
		t.Errorf("sleb-2 ran %d search steps, want 1 (step 1 is cached)", n)
	}
}
