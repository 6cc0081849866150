package ops

import (
	"context"
	"math"

	"lrmc/kernels/dynamic"
)

// DynamicEval is what a routed model (dynamic pruning) did on the windows
// it was evaluated on, measured by the compute-skipping forward pass
// itself: the realised skip ratios and the multiply-adds run against the
// dense model's for the same tokens.
type DynamicEval struct {
	Method string `json:"method"`
	// Ratio is the target skip ratio the routers were trained for.
	Ratio float64 `json:"ratio"`
	// Skip is the realised fraction of routed decisions that skipped:
	// over every routed part (attention and MLP; a D-LLM block once) and
	// token.
	Skip float64 `json:"skip"`
	// Layers are the realised skip ratio of each layer's attention and MLP
	// (0 for a dense part).
	Layers []PartSkip `json:"layers"`
	// SkippedCompute is the fraction of the blocks' dense multiply-adds
	// not run, the routers' own cost subtracted; FLOPSaving is the same
	// over the whole forward pass (the classifier included).
	SkippedCompute float64 `json:"skippedCompute"`
	FLOPSaving     float64 `json:"flopSaving"`
	MACs           int64   `json:"macs"`
	DenseMACs      int64   `json:"denseMacs"`
}

// PartSkip is one layer's realised skip ratios.
type PartSkip struct {
	Attn float64 `json:"attn"`
	MLP  float64 `json:"mlp"`
}

// NewDynamicEval summarizes st, the counts of rs's passes.
func NewDynamicEval(rs *dynamic.Routers, st *dynamic.Stats) *DynamicEval {
	e := &DynamicEval{Method: string(rs.Method), Ratio: rs.Skip, SkippedCompute: st.SkippedCompute()}
	e.MACs, e.DenseMACs = st.Total()
	if e.DenseMACs > 0 {
		e.FLOPSaving = 1 - float64(e.MACs)/float64(e.DenseMACs)
	}
	var tokens, executed int64
	for i, l := range st.Layers {
		e.Layers = append(e.Layers, PartSkip{Attn: l[dynamic.Attn].SkipRatio(), MLP: l[dynamic.MLP].SkipRatio()})
		for _, p := range []dynamic.Part{dynamic.Attn, dynamic.MLP} {
			if rs.Method.Whole() && p == dynamic.MLP {
				break // the block's one decision, counted with its attention
			}
			if decide, _ := rs.Router(i, p); decide != nil {
				tokens += l[p].Tokens
				executed += l[p].Executed
			}
		}
	}
	if tokens > 0 {
		e.Skip = 1 - float64(executed)/float64(tokens)
	}
	return e
}

// routedForward is a routed model as the perplexity protocol runs it: the
// compute-skipping forward pass, its counts summed over the passes.
type routedForward struct {
	dm    *dynamic.Model
	stats dynamic.Stats
}

func (r *routedForward) Forward(tokens []int32, b, t int) []float32 {
	res := r.dm.Forward(tokens, b, t)
	r.stats.Add(&res.Stats)
	return res.Logits
}

// routedPerplexity is perplexity of a model with routers, with the
// compute-skipping forward pass; the result says what it skipped.
func routedPerplexity(ctx context.Context, m *Model, w Tokens, seqLen int, done func(int)) (EvalResult, error) {
	dm, err := dynamic.New(m.LM, m.Routers)
	if err != nil {
		return EvalResult{}, err
	}
	f := &routedForward{dm: dm}
	mean, count, err := meanNLL(ctx, f, m.LM.Config.Vocab, w.IDs, w.Rows, seqLen, done)
	if err != nil {
		return EvalResult{}, err
	}
	return EvalResult{
		Task: "perplexity", Perplexity: math.Exp(mean), MeanNLL: mean, Tokens: count, Windows: w.Rows,
		Params: m.LM.Config.Params(), Blocks: m.LM.Config.Layers, Dynamic: NewDynamicEval(m.Routers, &f.stats),
	}, nil
}
