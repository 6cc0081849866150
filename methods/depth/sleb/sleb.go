// Package sleb is SLEB (Song et al. 2024): a greedy search that removes,
// one at a time, the block whose removal (after the previous ones) leaves
// the lowest calibration perplexity.
package sleb

import (
	"context"
	"fmt"
	"math"
	"slices"

	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/methods/depth"
	"lrmc/planner"
)

// OpStep is one step of the search. Step k's node feeds step k+1, so a
// sweep over the number of removed blocks shares its prefix.
const OpStep = "sleb.step"

// StepParams: inputs are the model, the calibration windows and the
// previous step (none for step 1). Step k removes its k-th block.
type StepParams struct {
	Step    int `json:"step"`
	Blocks  int `json:"blocks"`
	Samples int `json:"samples"`
	SeqLen  int `json:"seqLen"`
}

func init() {
	depth.Register(depth.Method{
		Name:  "sleb",
		Score: score,
		Ops:   map[string]executor.Op{OpStep: step{}},
	})
}

func score(mp *planner.MethodPlan, a depth.Amount) []*planner.Node {
	c := mp.Run.Calibration
	var last *planner.Node
	for k := 1; k <= a.Remove; k++ {
		in := []*planner.Node{mp.Model, a.Windows}
		if last != nil {
			in = append(in, last)
		}
		last = mp.Add(OpStep, StepParams{Step: k, Blocks: a.Blocks, Samples: c.Samples, SeqLen: c.SeqLen},
			fmt.Sprintf("sleb step %d", k), in...)
	}
	return []*planner.Node{last}
}

// Step is the state of the search after Step removals.
type Step struct {
	Step    int   `json:"step"`
	Removed []int `json:"removed"` // in the order removed
	// Candidates[i] is the calibration perplexity with block i also
	// removed at this step; 0 for blocks already gone (a perplexity is ≥ 1).
	Candidates []float64 `json:"candidates"`
}

// RemovalOrder is the search's choice for prune.depth.
func (s Step) RemovalOrder() []int { return s.Removed }

// step tries removing each remaining block on top of the previous
// removals, and removes the one that leaves the lowest calibration
// perplexity (lowest index on ties). Inputs: model, calibration windows,
// previous step (absent at step 1).
type step struct{ ops.JSONCodec[Step] }

func (step) Version() int { return 1 }

func (step) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p StepParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	m, err := ops.Input[*ops.Model](c, 0)
	if err != nil {
		return nil, err
	}
	w, err := ops.Input[ops.Tokens](c, 1)
	if err != nil {
		return nil, err
	}
	var removed []int
	if p.Step > 1 {
		prev, err := ops.Input[Step](c, 2)
		if err != nil {
			return nil, err
		}
		removed = slices.Clone(prev.Removed)
	}
	n := m.LM.Config.Layers
	out := Step{Step: p.Step, Candidates: make([]float64, n)}
	best := -1
	for i := range n {
		if slices.Contains(removed, i) {
			continue
		}
		lm, err := m.LM.Keep(depth.AllBut(n, append(slices.Clone(removed), i)...))
		if err != nil {
			return nil, err
		}
		mean, _, err := ops.MeanNLL(ctx, lm, w.IDs, w.Rows, w.Cols, nil)
		if err != nil {
			return nil, err
		}
		out.Candidates[i] = math.Exp(mean)
		if best < 0 || out.Candidates[i] < out.Candidates[best] {
			best = i
		}
		c.Progress(int64(i+1), int64(n))
	}
	if best < 0 {
		return nil, fmt.Errorf("no block left to remove at step %d", p.Step)
	}
	out.Removed = append(removed, best)
	return out, nil
}
