// Package shortenedppl is Shortened LLaMA's PPL criterion (Kim et al.
// 2024): a block's score is the calibration perplexity of the model with
// that block alone removed; the blocks whose removal hurts least go. Block
// i's score starts from the captured hidden state entering block i (the
// dense prefix is the same with or without it), so it reuses the capture
// chain ShortGPT and SLEB use, and runs only the blocks after i.
package shortenedppl

import (
	"context"
	"fmt"
	"math"

	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/methods/depth"
	"lrmc/methods/stats/capture"
	"lrmc/planner"
)

// OpBlockPPL is the calibration perplexity of the model with one block
// removed.
const OpBlockPPL = "importance.blockppl"

// Params: inputs are the model, the calibration windows (the targets) and
// the hidden state entering block Layer (capture).
type Params struct {
	Layer   int `json:"layer"`
	Samples int `json:"samples"`
	SeqLen  int `json:"seqLen"`
}

func init() {
	depth.Register(depth.Method{
		Name:  "shortened-ppl",
		Score: score,
		Ops:   map[string]executor.Op{OpBlockPPL: blockPPL{}},
	})
}

func score(mp *planner.MethodPlan, a depth.Amount) []*planner.Node {
	c := mp.Run.Calibration
	scores := make([]*planner.Node, a.Blocks)
	h := capture.Embed(mp, a.Windows)
	for i := range scores {
		if i > 0 {
			h = capture.Next(mp, h, i-1)
		}
		scores[i] = mp.Add(OpBlockPPL, Params{Layer: i, Samples: c.Samples, SeqLen: c.SeqLen},
			fmt.Sprintf("calibration perplexity without block %d", i), mp.Model, a.Windows, h)
	}
	return scores
}

// BlockPPL is the calibration perplexity of the model without one block.
type BlockPPL struct {
	Layer      int     `json:"layer"`
	Perplexity float64 `json:"perplexity"`
}

// BlockScore is the block's score for prune.depth.
func (b BlockPPL) BlockScore() (int, float64) { return b.Layer, b.Perplexity }

// blockPPL scores one block (the lower, the less the block matters).
// Inputs: model, calibration windows, hidden state entering the block.
type blockPPL struct{ ops.JSONCodec[BlockPPL] }

// Version 2: starts from the captured input of the block (1 ran the
// blocks before it from the embeddings).
func (blockPPL) Version() int { return 2 }

func (blockPPL) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p Params
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
	h, err := ops.Input[ops.Hidden](c, 2)
	if err != nil {
		return nil, err
	}
	if w.Rows != p.Samples || w.Cols != p.SeqLen {
		return nil, fmt.Errorf("calibration windows are %d×%d, planned %d×%d", w.Rows, w.Cols, p.Samples, p.SeqLen)
	}
	mean, err := depth.NLLFrom(ctx, m.LM, h, p.Layer, func(j int) bool { return j == p.Layer }, w)
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", p.Layer, err)
	}
	return BlockPPL{Layer: p.Layer, Perplexity: math.Exp(mean)}, nil
}
