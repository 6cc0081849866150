package depth

import (
	"context"
	"fmt"

	"lrmc/executor/ops"
	"lrmc/kernels/llama"
	"lrmc/kernels/perplexity"
)

// logitBudget bounds the logits one pass holds (floats), as the executor's
// perplexity does: sequences go through in groups that fit.
const logitBudget = 1 << 24

// NLLFrom is the mean next-token negative log-likelihood of the windows
// when the model runs from a captured hidden state: h enters block start
// (it is the dense model's, since no block before start is removed), the
// blocks start… of lm run except those skip names, then the final norm
// and the classifier. It is the calibration loss of the model without the
// skipped blocks, computed without re-running the blocks before start.
func NLLFrom(ctx context.Context, lm *llama.Model, h ops.Hidden, start int, skip func(int) bool, w ops.Tokens) (float64, error) {
	c := lm.Config
	if h.Dim != c.Dim || h.Rows != w.Rows*w.Cols {
		return 0, fmt.Errorf("hidden state is %d×%d, windows %d×%d of a %d-wide model", h.Rows, h.Dim, w.Rows, w.Cols, c.Dim)
	}
	if start < 0 || start > c.Layers {
		return 0, fmt.Errorf("block %d does not exist in a model of %d blocks", start, c.Layers)
	}
	batch := max(1, min(w.Rows, logitBudget/(w.Cols*c.Vocab)))
	seq := w.Cols * c.Dim
	var sum float64
	var count int
	for r := 0; r < w.Rows; r += batch {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		b := min(batch, w.Rows-r)
		x := h.Data[r*seq : (r+b)*seq]
		for j := start; j < c.Layers; j++ {
			if !skip(j) {
				x = lm.Block(j, x, b, w.Cols)
			}
		}
		logits := lm.Logits(x, b, w.Cols)
		for i := range b {
			ids := w.IDs[(r+i)*w.Cols : (r+i+1)*w.Cols]
			s, n := perplexity.NLL(logits[i*w.Cols*c.Vocab:(i+1)*w.Cols*c.Vocab], ids, c.Vocab)
			sum += s
			count += n
		}
	}
	if count == 0 {
		return 0, fmt.Errorf("no token to score")
	}
	return sum / float64(count), nil
}
