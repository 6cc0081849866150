// Package taylor is a shared statistic: first-order Taylor importance
// (|w·∂L/∂w|, kernels/train) of blocks, heads and channels, accumulated
// over the calibration windows in LLM-Pruner's element- and vector-wise
// variants. Shortened LLaMA's Taylor criterion ranks blocks by it; width
// methods can rank heads and channels by the same node.
package taylor

import (
	"context"
	"fmt"

	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/kernels/train"
	"lrmc/methods"
	"lrmc/planner"
)

// Op accumulates Taylor importance over the calibration windows.
const Op = "importance.taylor"

// Params: inputs are the model and the calibration windows, taken Batch
// sequences at a time.
type Params struct {
	Samples int `json:"samples"`
	SeqLen  int `json:"seqLen"`
	Batch   int `json:"batch"`
}

// Batch is how many calibration sequences one gradient covers: fixed, so
// scores never depend on tuning.
const Batch = 4

func init() {
	methods.Register(methods.Unit{Ops: map[string]executor.Op{Op: taylor{}}})
}

// Plan plans the Taylor importance of the model on windows.
func Plan(mp *planner.MethodPlan, windows *planner.Node) *planner.Node {
	c := mp.Run.Calibration
	return mp.Add(Op, Params{Samples: c.Samples, SeqLen: c.SeqLen, Batch: Batch}, "taylor importance", mp.Model, windows)
}

// Scores are Taylor importances summed over the calibration batches.
type Scores struct {
	Batches int              `json:"batches"`
	Element train.Importance `json:"element"`
	Vector  train.Importance `json:"vector"`
}

// BlockScores are the element-wise block importances, for prune.depth.
func (s Scores) BlockScores() []float64 { return s.Element.Blocks }

// taylor needs the gradient of every weight (twice the model's memory
// while it runs). Inputs: model, calibration windows.
type taylor struct{ ops.JSONCodec[Scores] }

func (taylor) Version() int { return 1 }

func (taylor) Run(ctx context.Context, c *executor.Call) (any, error) {
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
	if w.Rows%p.Batch != 0 {
		return nil, fmt.Errorf("%d calibration windows do not split into batches of %d; use a multiple", w.Rows, p.Batch)
	}
	net, err := train.New(m.LM.Float32(), p.Batch, w.Cols, train.FullFineTune(), train.WithGEMM())
	if err != nil {
		return nil, err
	}
	t, err := train.NewTaylor(net)
	if err != nil {
		return nil, err
	}
	for r := 0; r < w.Rows; r += p.Batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ids := w.IDs[r*w.Cols : (r+p.Batch)*w.Cols]
		if err := t.Add(train.Batch{Tokens: ids, Targets: train.NextTokenTargets(ids, nil, p.Batch, w.Cols)}); err != nil {
			return nil, err
		}
		c.Progress(int64(r+p.Batch), int64(w.Rows))
	}
	return Scores{Batches: t.Batches, Element: t.Element, Vector: t.Vector}, nil
}
