// Package shortgpt is ShortGPT (Men et al. 2024): a block's influence is
// one minus the mean cosine similarity between the hidden states entering
// and leaving it; the least influential blocks are removed.
package shortgpt

import (
	"context"
	"fmt"

	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/kernels/shortgpt"
	"lrmc/methods/depth"
	"lrmc/methods/stats/capture"
	"lrmc/planner"
)

// OpBI is one block's influence score from its two taps.
const OpBI = "shortgpt.bi"

// BIParams: inputs are the hidden states entering and leaving Layer.
type BIParams struct {
	Layer int `json:"layer"`
	Dim   int `json:"dim"`
}

func init() {
	depth.Register(depth.Method{
		Name:  "shortgpt",
		Score: score,
		Ops:   map[string]executor.Op{OpBI: bi{}},
	})
}

// score plans every block's influence on the shared capture chain.
func score(mp *planner.MethodPlan, a depth.Amount) []*planner.Node {
	h := capture.Embed(mp, a.Windows)
	scores := make([]*planner.Node, a.Blocks)
	for i := range a.Blocks {
		next := capture.Next(mp, h, i)
		scores[i] = mp.Add(OpBI, BIParams{Layer: i, Dim: mp.Info.Dim}, fmt.Sprintf("block influence %d", i), h, next)
		h = next
	}
	return scores
}

// BlockScore is one block's ShortGPT statistics.
type BlockScore struct {
	Layer     int     `json:"layer"`
	Influence float64 `json:"influence"`
	Tokens    int     `json:"tokens"`
}

// BlockScore is the block's score for prune.depth.
func (s BlockScore) BlockScore() (int, float64) { return s.Layer, s.Influence }

// bi scores one block. Inputs: hidden states entering and leaving it. The
// score is a small cached statistic, so every removal count and ratio
// reuses it.
type bi struct{ ops.JSONCodec[BlockScore] }

func (bi) Version() int { return 1 }

func (bi) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p BIParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	in, err := ops.Input[ops.Hidden](c, 0)
	if err != nil {
		return nil, err
	}
	out, err := ops.Input[ops.Hidden](c, 1)
	if err != nil {
		return nil, err
	}
	if in.Rows != out.Rows || in.Dim != out.Dim {
		return nil, fmt.Errorf("block %d: taps differ in shape: %d×%d vs %d×%d", p.Layer, in.Rows, in.Dim, out.Rows, out.Dim)
	}
	v, err := shortgpt.BlockInfluence(in.Data, out.Data, in.Dim)
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", p.Layer, err)
	}
	return BlockScore{Layer: p.Layer, Influence: v, Tokens: in.Rows}, nil
}
