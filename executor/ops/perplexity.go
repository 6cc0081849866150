package ops

import (
	"context"
	"fmt"
	"math"

	"lrmc/executor"
	"lrmc/planner"
)

// EvalResult is one evaluation of one model. Params and Blocks describe the
// model evaluated, so reports need not load it again.
type EvalResult struct {
	Task string `json:"task"`
	// Perplexity: the fields are omitted for other tasks (a perplexity is
	// never 0).
	Perplexity float64 `json:"perplexity,omitempty"`
	MeanNLL    float64 `json:"meanNLL,omitempty"`
	Tokens     int     `json:"tokens,omitempty"`
	Windows    int     `json:"windows,omitempty"`
	// Multiple choice: accuracy by log-likelihood and by log-likelihood
	// per character, with lm-eval's standard errors, over Items items.
	// Pointers, so an accuracy of 0 is written.
	Acc           *float64 `json:"acc,omitempty"`
	AccStderr     *float64 `json:"acc_stderr,omitempty"`
	AccNorm       *float64 `json:"acc_norm,omitempty"`
	AccNormStderr *float64 `json:"acc_norm_stderr,omitempty"`
	Items         int      `json:"items,omitempty"`
	// Dynamic is what a routed model (dynamic pruning) skipped; nil for
	// other models.
	Dynamic *DynamicEval `json:"dynamic,omitempty"`
	Params  int64        `json:"params"`
	Blocks  int          `json:"blocks"`
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
	w, err := input[Tokens](c, 1)
	if err != nil {
		return nil, err
	}
	if w.Cols != p.SeqLen {
		return nil, fmt.Errorf("evaluation windows have %d tokens, planned %d", w.Cols, p.SeqLen)
	}
	progress := func(d int) { c.Progress(int64(d), int64(w.Rows)) }
	if model.Routers != nil {
		// Dynamic pruning: the compute-skipping forward pass.
		return routedPerplexity(ctx, model, w, p.SeqLen, progress)
	}
	// A sliced model (SliceGPT) has its own forward pass and count.
	var lm forwarder
	var vocab, blocks int
	var params int64
	if s := model.Sliced; s != nil {
		lm, vocab, params, blocks = s, s.Config.Vocab, s.Params(), len(s.Layers)
	} else {
		m := model.LM
		lm, vocab, params, blocks = m, m.Config.Vocab, m.Config.Params(), m.Config.Layers
	}
	mean, count, err := meanNLL(ctx, lm, vocab, w.IDs, w.Rows, p.SeqLen, progress)
	if err != nil {
		return nil, err
	}
	return EvalResult{
		Task: "perplexity", Perplexity: math.Exp(mean), MeanNLL: mean, Tokens: count, Windows: w.Rows,
		Params: params, Blocks: blocks,
	}, nil
}
