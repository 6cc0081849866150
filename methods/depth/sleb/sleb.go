// Package sleb is SLEB (Song et al. 2024): a greedy search that removes,
// one at a time, the block whose removal (after the previous ones) leaves
// the lowest calibration perplexity. As the reference does
// (early_barrier=1, latter_barrier=1), the first and the last blocks are
// never candidates; both barriers are recipe fields. Each candidate is
// scored from the captured hidden state entering the first block its
// removal affects (the capture chain ShortGPT and the PPL criterion share),
// so only the blocks after it run.
package sleb

import (
	"context"
	"fmt"
	"math"
	"slices"

	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/methods/depth"
	"lrmc/methods/stats/capture"
	"lrmc/planner"
)

// OpStep is one step of the search. Step k's node feeds step k+1, so a
// sweep over the number of removed blocks shares its prefix.
const OpStep = "sleb.step"

// StepParams: inputs are the model, the calibration windows, the hidden
// states entering blocks EarlyBarrier … Blocks-LatterBarrier-1 (the
// candidates), and the previous step (none for step 1). Step k removes its
// k-th block.
type StepParams struct {
	Step          int `json:"step"`
	Blocks        int `json:"blocks"`
	Samples       int `json:"samples"`
	SeqLen        int `json:"seqLen"`
	EarlyBarrier  int `json:"earlyBarrier"`
	LatterBarrier int `json:"latterBarrier"`
}

func init() {
	depth.Register(depth.Method{
		Name:   "sleb",
		Fields: depth.BarrierFields(1, 1),
		Score:  score,
		Ops:    map[string]executor.Op{OpStep: step{}},
	})
}

func score(mp *planner.MethodPlan, a depth.Amount) []*planner.Node {
	c := mp.Run.Calibration
	// The hidden states entering every candidate block.
	var captures []*planner.Node
	h := capture.Embed(mp, a.Windows)
	for i := 0; i < a.Blocks-a.Latter; i++ {
		if i > 0 {
			h = capture.Next(mp, h, i-1)
		}
		if i >= a.Early {
			captures = append(captures, h)
		}
	}
	var last *planner.Node
	for k := 1; k <= a.Remove; k++ {
		in := append([]*planner.Node{mp.Model, a.Windows}, captures...)
		if last != nil {
			in = append(in, last)
		}
		last = mp.Add(OpStep, StepParams{Step: k, Blocks: a.Blocks, Samples: c.Samples, SeqLen: c.SeqLen,
			EarlyBarrier: a.Early, LatterBarrier: a.Latter},
			fmt.Sprintf("sleb step %d", k), in...)
	}
	return []*planner.Node{last}
}

// Step is the state of the search after Step removals.
type Step struct {
	Step    int   `json:"step"`
	Removed []int `json:"removed"` // in the order removed
	// Candidates[i] is the calibration perplexity with block i also
	// removed at this step; 0 for blocks already gone or behind a barrier
	// (a perplexity is ≥ 1).
	Candidates []float64 `json:"candidates"`
}

// RemovalOrder is the search's choice for prune.depth.
func (s Step) RemovalOrder() []int { return s.Removed }

// step tries removing each remaining candidate on top of the previous
// removals, and removes the one that leaves the lowest calibration
// perplexity (lowest index on ties, as the reference's strict < over
// ascending blocks). Inputs: model, calibration windows, the captures
// entering the candidate blocks, previous step (absent at step 1).
type step struct{ ops.JSONCodec[Step] }

// Version 2: barriers, and candidates scored from captured hidden states
// (1 considered every block and ran each from the embeddings).
func (step) Version() int { return 2 }

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
	n := m.LM.Config.Layers
	if n != p.Blocks {
		return nil, fmt.Errorf("model has %d blocks, planned %d", n, p.Blocks)
	}
	first, end := p.EarlyBarrier, n-p.LatterBarrier // candidates [first, end)
	captures := make([]ops.Hidden, end-first)
	for i := range captures {
		if captures[i], err = ops.Input[ops.Hidden](c, 2+i); err != nil {
			return nil, err
		}
	}
	var removed []int
	if p.Step > 1 {
		prev, err := ops.Input[Step](c, 2+len(captures))
		if err != nil {
			return nil, err
		}
		removed = slices.Clone(prev.Removed)
	}
	out := Step{Step: p.Step, Candidates: make([]float64, n)}
	best := -1
	for i := first; i < end; i++ {
		if slices.Contains(removed, i) {
			continue
		}
		// Blocks before the first removed one see the dense prefix.
		start := i
		for _, r := range removed {
			start = min(start, r)
		}
		skip := func(j int) bool { return j == i || slices.Contains(removed, j) }
		mean, err := depth.NLLFrom(ctx, m.LM, captures[start-first], start, skip, w)
		if err != nil {
			return nil, fmt.Errorf("candidate block %d: %w", i, err)
		}
		out.Candidates[i] = math.Exp(mean)
		if best < 0 || out.Candidates[i] < out.Candidates[best] {
			best = i
		}
		c.Progress(int64(i+1-first), int64(end-first))
	}
	if best < 0 {
		return nil, fmt.Errorf("no block left to remove at step %d", p.Step)
	}
	out.Removed = append(removed, best)
	return out, nil
}
