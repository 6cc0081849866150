package ops

import (
	"context"
	"fmt"
	"math"

	"lrmc/executor"
	"lrmc/kernels/perplexity"
	"lrmc/planner"
)

// EvalResult is one evaluation of one model. Params and Blocks describe the
// model evaluated, so reports need not load it again.
type EvalResult struct {
	Task       string  `json:"task"`
	Perplexity float64 `json:"perplexity"`
	MeanNLL    float64 `json:"meanNLL"`
	Tokens     int     `json:"tokens"`
	Windows    int     `json:"windows"`
	Params     int64   `json:"params"`
	Blocks     int     `json:"blocks"`
}

// logitBudget bounds the logits held at once (floats), which decides how
// many windows share one forward pass.
const logitBudget = 1 << 24

// perplexityOp evaluates a model on held-out windows. Inputs: model, windows.
type perplexityOp struct{ jsonCodec[EvalResult] }

func (perplexityOp) Version() int { return 1 }

func (perplexityOp) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.PerplexityParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	model, err := input[*Model](c, 0)
	if err != nil {
		return nil, err
	}
	m := model.LM
	w, err := input[Tokens](c, 1)
	if err != nil {
		return nil, err
	}
	if w.Cols != p.SeqLen {
		return nil, fmt.Errorf("evaluation windows have %d tokens, planned %d", w.Cols, p.SeqLen)
	}
	vocab := m.Config.Vocab
	batch := max(1, min(w.Rows, logitBudget/(p.SeqLen*vocab)))
	var sum float64
	var count int
	for r := 0; r < w.Rows; r += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b := min(batch, w.Rows-r)
		ids := w.IDs[r*p.SeqLen : (r+b)*p.SeqLen]
		logits := m.Forward(ids, b, p.SeqLen)
		for i := 0; i < b; i++ {
			s, n := perplexity.NLL(logits[i*p.SeqLen*vocab:(i+1)*p.SeqLen*vocab], ids[i*p.SeqLen:(i+1)*p.SeqLen], vocab)
			sum += s
			count += n
		}
		c.Progress(int64(r+b), int64(w.Rows))
	}
	if count == 0 {
		return nil, fmt.Errorf("no token to score")
	}
	mean := sum / float64(count)
	return EvalResult{
		Task: "perplexity", Perplexity: math.Exp(mean), MeanNLL: mean, Tokens: count, Windows: w.Rows,
		Params: m.Config.Params(), Blocks: m.Config.Layers,
	}, nil
}
