package ops

import (
	"context"
	"fmt"
	"math"
	"slices"

	"lrmc/executor"
	"lrmc/kernels/llama"
	"lrmc/kernels/perplexity"
	"lrmc/kernels/train"
	"lrmc/planner"
)

// meanNLL is the mean next-token negative log-likelihood of lm over rows
// windows of seqLen tokens (the perplexity protocol), as many windows per
// forward pass as logitBudget allows. done reports windows finished.
func meanNLL(ctx context.Context, lm *llama.Model, ids []int32, rows, seqLen int, done func(int)) (mean float64, count int, err error) {
	vocab := lm.Config.Vocab
	batch := max(1, min(rows, logitBudget/(seqLen*vocab)))
	var sum float64
	for r := 0; r < rows; r += batch {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		b := min(batch, rows-r)
		win := ids[r*seqLen : (r+b)*seqLen]
		logits := lm.Forward(win, b, seqLen)
		for i := range b {
			s, n := perplexity.NLL(logits[i*seqLen*vocab:(i+1)*seqLen*vocab], win[i*seqLen:(i+1)*seqLen], vocab)
			sum += s
			count += n
		}
		if done != nil {
			done(r + b)
		}
	}
	if count == 0 {
		return 0, 0, fmt.Errorf("no token to score")
	}
	return sum / float64(count), count, nil
}

// allBut lists 0..n-1 without the given blocks.
func allBut(n int, removed ...int) []int {
	var keep []int
	for i := range n {
		if !slices.Contains(removed, i) {
			keep = append(keep, i)
		}
	}
	return keep
}

// BlockPPL is the calibration perplexity of the model without one block.
type BlockPPL struct {
	Layer      int     `json:"layer"`
	Perplexity float64 `json:"perplexity"`
}

// blockPPL scores one block by Shortened-LLM's PPL criterion: the
// calibration perplexity of the model with that block alone removed (the
// lower, the less the block matters). Inputs: model, calibration windows.
type blockPPL struct{ jsonCodec[BlockPPL] }

func (blockPPL) Version() int { return 1 }

func (blockPPL) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.BlockPPLParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	m, err := input[*Model](c, 0)
	if err != nil {
		return nil, err
	}
	w, err := input[Tokens](c, 1)
	if err != nil {
		return nil, err
	}
	lm, err := m.LM.Keep(allBut(m.LM.Config.Layers, p.Layer))
	if err != nil {
		return nil, err
	}
	mean, _, err := meanNLL(ctx, lm, w.IDs, w.Rows, w.Cols, func(d int) { c.Progress(int64(d), int64(w.Rows)) })
	if err != nil {
		return nil, err
	}
	return BlockPPL{Layer: p.Layer, Perplexity: math.Exp(mean)}, nil
}

// SLEBStep is the state of SLEB's search after Step removals.
type SLEBStep struct {
	Step    int   `json:"step"`
	Removed []int `json:"removed"` // in the order removed
	// Candidates[i] is the calibration perplexity with block i also
	// removed at this step; 0 for blocks already gone (a perplexity is ≥ 1).
	Candidates []float64 `json:"candidates"`
}

// slebStep is one greedy step of SLEB (Song et al. 2024): try removing
// each remaining block on top of the previous removals, and remove the one
// that leaves the lowest calibration perplexity (lowest index on ties).
// Inputs: model, calibration windows, previous step (absent at step 1).
type slebStep struct{ jsonCodec[SLEBStep] }

func (slebStep) Version() int { return 1 }

func (slebStep) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.SLEBStepParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	m, err := input[*Model](c, 0)
	if err != nil {
		return nil, err
	}
	w, err := input[Tokens](c, 1)
	if err != nil {
		return nil, err
	}
	var removed []int
	if p.Step > 1 {
		prev, err := input[SLEBStep](c, 2)
		if err != nil {
			return nil, err
		}
		removed = slices.Clone(prev.Removed)
	}
	n := m.LM.Config.Layers
	out := SLEBStep{Step: p.Step, Candidates: make([]float64, n)}
	best := -1
	for i := range n {
		if slices.Contains(removed, i) {
			continue
		}
		lm, err := m.LM.Keep(allBut(n, append(slices.Clone(removed), i)...))
		if err != nil {
			return nil, err
		}
		mean, _, err := meanNLL(ctx, lm, w.IDs, w.Rows, w.Cols, nil)
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

// TaylorScores are first-order Taylor importances (kernels/train), summed
// over the calibration batches, in LLM-Pruner's element- and vector-wise
// variants.
type TaylorScores struct {
	Batches int              `json:"batches"`
	Element train.Importance `json:"element"`
	Vector  train.Importance `json:"vector"`
}

// taylor accumulates Taylor importance over the calibration windows, Batch
// sequences per gradient. It needs the gradient of every weight (twice the
// model's memory while it runs). Inputs: model, calibration windows.
type taylor struct{ jsonCodec[TaylorScores] }

func (taylor) Version() int { return 1 }

func (taylor) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.TaylorParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	m, err := input[*Model](c, 0)
	if err != nil {
		return nil, err
	}
	w, err := input[Tokens](c, 1)
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
	return TaylorScores{Batches: t.Batches, Element: t.Element, Vector: t.Vector}, nil
}

// depthScores turns a pruning method's inputs into one score per block
// (lower: less important, removed first).
func depthScores(c *executor.Call, method string, blocks int) ([]float64, error) {
	scores := make([]float64, blocks)
	switch method {
	case "shortgpt", "shortened-ppl":
		if len(c.Inputs) != blocks {
			return nil, fmt.Errorf("%s needs %d block scores, got %d", method, blocks, len(c.Inputs))
		}
		for i := range c.Inputs {
			switch v := c.Inputs[i].(type) {
			case BlockScore:
				if v.Layer != i {
					return nil, fmt.Errorf("score %d is for block %d", i, v.Layer)
				}
				scores[i] = v.Influence
			case BlockPPL:
				if v.Layer != i {
					return nil, fmt.Errorf("score %d is for block %d", i, v.Layer)
				}
				scores[i] = v.Perplexity
			default:
				return nil, fmt.Errorf("input %d is %T, not a block score", i, v)
			}
		}
	case "shortened-taylor":
		t, err := input[TaylorScores](c, 0)
		if err != nil {
			return nil, err
		}
		if len(t.Element.Blocks) != blocks {
			return nil, fmt.Errorf("taylor scores cover %d blocks, the model has %d", len(t.Element.Blocks), blocks)
		}
		copy(scores, t.Element.Blocks)
	default:
		return nil, fmt.Errorf("unknown depth method %q", method)
	}
	return scores, nil
}
