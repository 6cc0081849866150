package ops

import (
	"context"
	"fmt"

	"lrmc/kernels/perplexity"
)

// forwarder is what the perplexity protocol needs of a model: the logits
// of a batched forward pass (a *llama.Model, a *slicegpt.Model).
type forwarder interface {
	Forward(tokens []int32, b, t int) []float32
}

// meanNLL is the mean next-token negative log-likelihood of lm over rows
// windows of seqLen tokens (the perplexity protocol), as many windows per
// forward pass as logitBudget allows. done reports windows finished.
func meanNLL(ctx context.Context, lm forwarder, vocab int, ids []int32, rows, seqLen int, done func(int)) (mean float64, count int, err error) {
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
