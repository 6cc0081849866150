package ops

import (
	"context"
	"fmt"
	"slices"

	"lrmc/kernels/dynamic"
	"lrmc/kernels/mceval"
)

// routedScores scores multiple-choice requests under a model with routers
// by its compute-skipping forward pass, unbatched: each continuation runs
// with its (lm-eval-truncated, mceval.Fit) context as one sequence, as
// mceval.ScoreAlone scores a dense model. A routed pass decides per token
// and, for MoD and D-LLM, drops skipped tokens' keys, so sequences are not
// packed together; slower than the dense batched scorer, and the same
// numbers as ScoreAlone when every router executes. done reports requests
// finished.
func routedScores(ctx context.Context, m *Model, maxLen int, reqs []mceval.Request, done func(int)) ([][]float64, error) {
	dm, err := dynamic.New(m.LM, m.Routers)
	if err != nil {
		return nil, err
	}
	v := m.LM.Config.Vocab
	out := make([][]float64, len(reqs))
	for i, r := range reqs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		parts, err := mceval.Fit(r, maxLen)
		if err != nil {
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		out[i] = make([]float64, len(r.Conts))
		for _, p := range parts {
			for _, ci := range p.Conts {
				cont := r.Conts[ci]
				seq := append(slices.Clone(p.Context), cont[:len(cont)-1]...)
				logits := dm.Forward(seq, 1, len(seq)).Logits
				var ll float64
				for j, tok := range cont {
					row := len(p.Context) - 1 + j
					ll += mceval.LogProb(logits[row*v:(row+1)*v], tok)
				}
				out[i][ci] = ll
			}
		}
		done(i + 1)
	}
	return out, nil
}
