// Package shortenedppl is Shortened LLaMA's PPL criterion (Kim et al.
// 2024): a block's score is the calibration perplexity of the model with
// that block alone removed; the blocks whose removal hurts least go.
package shortenedppl

import (
	"context"
	"fmt"
	"math"

	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/methods/depth"
	"lrmc/planner"
)

// OpBlockPPL is the calibration perplexity of the model with one block
// removed.
const OpBlockPPL = "importance.blockppl"

// Params: inputs are the model and the calibration windows.
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
	for i := range scores {
		scores[i] = mp.Add(OpBlockPPL, Params{Layer: i, Samples: c.Samples, SeqLen: c.SeqLen},
			fmt.Sprintf("calibration perplexity without block %d", i), mp.Model, a.Windows)
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
// Inputs: model, calibration windows.
type blockPPL struct{ ops.JSONCodec[BlockPPL] }

func (blockPPL) Version() int { return 1 }

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
	lm, err := m.LM.Keep(depth.AllBut(m.LM.Config.Layers, p.Layer))
	if err != nil {
		return nil, err
	}
	mean, _, err := ops.MeanNLL(ctx, lm, w.IDs, w.Rows, w.Cols, func(d int) { c.Progress(int64(d), int64(w.Rows)) })
	if err != nil {
		return nil, err
	}
	return BlockPPL{Layer: p.Layer, Perplexity: math.Exp(mean)}, nil
}
