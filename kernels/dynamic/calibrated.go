package dynamic

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"lrmc/kernels/llama"
)

// Calibrated returns routers of method m for lm whose weights are seeded
// random draws and whose biases are set so that every routed part skips
// the fraction skip of the given tokens (b sequences of t; exactly, unless
// tokens tie at the quantile, as repeated tokens do): layer by layer,
// each deciding router's bias is placed at the skip-quantile of its logits
// on the hidden states the already calibrated earlier layers produce. They
// route by no learned criterion: they are for measuring the speed of
// compute skipping at a chosen skip ratio (lrmc bench dynamic), not for
// quality. MoD's first and last layers stay dense and its scale routers
// output r ≈ 1 (small weights, bias 1).
func Calibrated(lm *llama.Model, m Method, skip float64, tokens []int32, b, t int, seed uint64) (*Routers, error) {
	if !m.Valid() {
		return nil, fmt.Errorf("dynamic: unknown method %q", m)
	}
	if !(skip >= 0 && skip < 1) {
		return nil, fmt.Errorf("dynamic: skip ratio %g is outside [0, 1)", skip)
	}
	if b < 1 || t < 1 || len(tokens) != b*t {
		return nil, fmt.Errorf("dynamic: calibrating on %d tokens, want b=%d × t=%d ≥ 1", len(tokens), b, t)
	}
	layers, dim := len(lm.Layers), lm.Config.Dim
	rng := rand.New(rand.NewPCG(seed, 0x726f75746572))
	random := func(out int, std float64) *Router {
		r := NewRouter(dim, out)
		for i := range r.W {
			r.W[i] = float32(rng.NormFloat64() * std)
		}
		return r
	}
	unit := 1 / math.Sqrt(float64(dim))
	rs := &Routers{Method: m, Skip: skip, Layers: make([]Layer, layers)}
	for i := range rs.Layers {
		l := &rs.Layers[i]
		switch m {
		case MoD:
			if i == 0 || i == layers-1 {
				continue
			}
			l.AttnPred, l.MLPPred = random(1, unit), random(1, unit)
			l.Attn, l.MLP = random(1, 1e-3*unit), random(1, 1e-3*unit)
			l.Attn.B[0], l.MLP.B[0] = 1, 1
		case DLLM:
			l.Block = random(2, unit)
		case SkipGPT:
			l.Attn, l.MLP = random(2, unit), random(2, unit)
		}
	}
	dm := &Model{LM: lm, Routers: rs}
	n := b * t
	h := lm.Embed(tokens, nil)
	p := pass{dm: dm, b: b, t: t, n: n, scale: make([]float32, n), scratch: make([]float32, 2*n)}
	st := newStats(layers)
	logits := make([]float32, 2*n)
	calibrate := func(i int, pt Part, x []float32) {
		r, _ := rs.Router(i, pt)
		if r == nil {
			return
		}
		// Execute iff w·x + bias > 0 (Out 1) or ≥ the skip logit, which
		// is kept at zero weight and bias (Out 2).
		if r.Out == 2 {
			clear(r.W[:dim])
			r.B[0] = 0
		}
		r.B[r.Out-1] = 0
		r.Apply(logits, x, n)
		v := make([]float64, n)
		for j := range n {
			v[j] = float64(logits[j*r.Out+r.Out-1])
		}
		slices.Sort(v)
		k := int(math.Round(skip * float64(n))) // tokens to skip
		switch {
		case k == 0:
			r.B[r.Out-1] = float32(-v[0] + 1)
		case k == n:
			r.B[r.Out-1] = float32(-v[n-1] - 1)
		default:
			r.B[r.Out-1] = float32(-(v[k-1] + v[k]) / 2)
		}
	}
	for i := range layers {
		calibrate(i, Attn, h)
		ea := make([]bool, n)
		p.decide(i, Attn, h, ea, &st.Layers[i][Attn])
		p.attention(i, h, ea, &st.Layers[i][Attn], nil)
		em := ea
		if !m.Whole() {
			calibrate(i, MLP, h)
			em = make([]bool, n)
			p.decide(i, MLP, h, em, &st.Layers[i][MLP])
		}
		p.mlp(i, h, em, &st.Layers[i][MLP])
	}
	return rs, rs.Validate(layers, dim)
}
