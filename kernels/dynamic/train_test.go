package dynamic

import (
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"lrmc/kernels/llama"
	"lrmc/kernels/train"
	"lrmc/kernels/train/optim"
)

// tinyConfig is a 4-layer GQA model with Qwen3's q/k norms, small enough
// for exhaustive checks.
var tinyConfig = llama.Config{Dim: 16, HiddenDim: 24, Layers: 4, Heads: 4, KVHeads: 2, Vocab: 23, SeqLen: 16,
	NormEps: 1e-5, RopeTheta: 10000, RopeStyle: llama.RopeHalf, QKNorm: true}

// tinyModel has N(0, 1/in) weights and norms near 1.
func tinyModel(c llama.Config, seed uint64) *llama.Model {
	r := rand.New(rand.NewPCG(seed, 3))
	mat := func(out, in int) []float32 {
		w := make([]float32, out*in)
		for i := range w {
			w[i] = float32(r.NormFloat64() / math.Sqrt(float64(in)))
		}
		return w
	}
	norm := func(n int) []float32 {
		w := make([]float32, n)
		for i := range w {
			w[i] = float32(1 + 0.2*r.NormFloat64())
		}
		return w
	}
	d, hd := c.Dim, c.HeadDim()
	m := &llama.Model{Config: c, Embedding: mat(c.Vocab, d), FinalNorm: norm(d), Classifier: mat(c.Vocab, d)}
	for range c.Layers {
		qd, kvd := c.Heads*hd, c.KVHeads*hd
		m.Layers = append(m.Layers, llama.Layer{AttnNorm: norm(d), Wq: mat(qd, d), Wk: mat(kvd, d), Wv: mat(kvd, d),
			Wo: mat(d, qd), FFNNorm: norm(d), W1: mat(c.HiddenDim, d), W2: mat(d, c.HiddenDim), W3: mat(c.HiddenDim, d),
			QNorm: norm(hd), KNorm: norm(hd)})
	}
	return m
}

func tinyBatch(b, t, vocab int, seed uint64) train.Batch {
	r := rand.New(rand.NewPCG(seed, 5))
	tok := make([]int32, b*t)
	for i := range tok {
		tok[i] = int32(r.IntN(vocab))
	}
	return train.Batch{Tokens: tok, Targets: train.NextTokenTargets(tok, nil, b, t)}
}

func randVec(r *rand.Rand, n int, sd float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(sd * r.NormFloat64())
	}
	return v
}

// gatePass drives a gate through one training pass by hand, as the Net
// would: Gate for every layer (attention, MLP) on the inputs xa, xm, Aux,
// then GateBackward from the last layer down with the cotangents ca, cm as
// dg. It returns the auxiliary loss, the hard gates and the router-input
// gradients.
type gatePass struct {
	xa, xm, ca, cm [][]float32
	b, t           int
	step           uint64
}

func (gp gatePass) run(g *Gate) (aux float64, ga, gm [][]float32, dxa, dxm [][]float32) {
	rows, layers := gp.b*gp.t, len(gp.xa)
	g.Begin(train.GatePass{Train: true, Step: gp.step, B: gp.b, T: gp.t})
	for li := range layers {
		ga = append(ga, make([]float32, rows))
		gm = append(gm, make([]float32, rows))
		g.Gate(li, train.GateAttn, gp.xa[li], ga[li])
		g.Gate(li, train.GateMLP, gp.xm[li], gm[li])
	}
	for _, a := range g.Aux(1, true) {
		aux += a.Value
	}
	dxa, dxm = make([][]float32, layers), make([][]float32, layers)
	for li := layers - 1; li >= 0; li-- {
		dxa[li], dxm[li] = make([]float32, len(gp.xa[li])), make([]float32, len(gp.xm[li]))
		g.GateBackward(li, train.GateMLP, gp.xm[li], gp.cm[li], dxm[li])
		g.GateBackward(li, train.GateAttn, gp.xa[li], gp.ca[li], dxa[li])
	}
	return aux, ga, gm, dxa, dxm
}

func newGatePass(layers, dim, b, t int, seed uint64) gatePass {
	r := rand.New(rand.NewPCG(seed, 9))
	gp := gatePass{b: b, t: t, step: 7}
	for range layers {
		gp.xa = append(gp.xa, randVec(r, b*t*dim, 1))
		gp.xm = append(gp.xm, randVec(r, b*t*dim, 1))
		gp.ca = append(gp.ca, randVec(r, b*t, 1))
		gp.cm = append(gp.cm, randVec(r, b*t, 1))
	}
	return gp
}

// refSurrogate is the function whose gradient a trainable gate's backward
// pass computes, in float64 from the definitions, given the routers'
// values P (by parameter name) and inputs: Σ c·g̃ + aux(g̃), where g̃ is
// the straight-through gate — the hard decision of the unperturbed pass
// plus the soft probability's change (SkipGPT, D-LLM: σ of the noisy logit
// difference, the noise and the hard decisions held fixed), or MoD's
// r(θ, x) on the fixed top-k rows. withBCE adds MoD's predictor BCE (whose
// input is stop-grad, so it counts for the predictors' parameters and not
// for x).
func refSurrogate(g *Gate, gp gatePass, hardA, hardM [][]float32, P map[string][]float64, xa, xm [][]float64, withBCE bool) float64 {
	rs, cfg := g.rs, g.cfg
	d, rows, layers := g.dim, gp.b*gp.t, len(xa)
	apply := func(li int, name string, x []float64, r, o, out int) float64 {
		w, b := P[tensorName(li, name)+".weight"], P[tensorName(li, name)+".bias"]
		s := b[o]
		for j := range d {
			s += w[o*d+j] * x[r*d+j]
		}
		return s
	}
	// soft(θ, x) − soft(θ0, x0) is added to the hard gate; the second term
	// is a constant, so only soft(θ, x) matters for the derivative, but it
	// keeps Φ's value meaningful.
	soft := func(li int, part Part, name string, x []float64, r int) float64 {
		dl := apply(li, name, x, r, 1, 2) + gumbel(cfg.Seed, gp.step, li, part, 1, r) -
			(apply(li, name, x, r, 0, 2) + gumbel(cfg.Seed, gp.step, li, part, 0, r))
		return 1 / (1 + math.Exp(-dl))
	}
	var phi float64
	target := 1 - cfg.Skip
	switch rs.Method {
	case SkipGPT:
		var sum float64
		var n int
		for li := range layers {
			for r := range rows {
				a := float64(hardA[li][r]) + soft(li, Attn, "attn", xa[li], r) - g.st[li][Attn].p[r]
				m := float64(hardM[li][r]) + soft(li, MLP, "mlp", xm[li], r) - g.st[li][MLP].p[r]
				phi += float64(gp.ca[li][r])*a + float64(gp.cm[li][r])*m
				sum += a + m
				n += 2
			}
		}
		phi += cfg.Lambda * math.Abs(target-sum/float64(n))
	case DLLM:
		act := make([]float64, rows)
		for li := range layers {
			for r := range rows {
				w := float64(hardA[li][r]) + soft(li, Attn, "block", xa[li], r) - g.st[li][Attn].p[r]
				phi += float64(gp.ca[li][r]+gp.cm[li][r]) * w
				act[r] += w / float64(layers)
			}
		}
		var l1 float64
		for _, a := range act {
			l1 += math.Abs(a - target)
		}
		phi += cfg.Lambda * l1 / float64(rows)
	case MoD:
		var bce float64
		var n int
		for li := range layers {
			if rs.Layers[li].Dense() {
				continue
			}
			for p, part := range []struct {
				name string
				x    []float64
				c    []float32
			}{{"attn", xa[li], gp.ca[li]}, {"mlp", xm[li], gp.cm[li]}} {
				st := &g.st[li][p]
				for r := range rows {
					if st.sel[r] {
						phi += float64(part.c[r]) * apply(li, part.name, part.x, r, 0, 1)
					}
					z := apply(li, part.name+"_predictor", part.x, r, 0, 1)
					y := 0.0
					if st.sel[r] {
						y = 1
					}
					bce += math.Log1p(math.Exp(-math.Abs(z))) + math.Max(z, 0) - z*y
					n++
				}
			}
		}
		if withBCE {
			phi += cfg.PredictorWeight * bce / float64(n)
		}
	}
	return phi
}

func to64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// TestGateBackwardFiniteDifference checks each method's backward pass —
// the straight-through estimator through the Gumbel-softmax's soft
// probabilities, the ratio losses, MoD's scale and predictor BCE, and the
// gradient with respect to the router inputs — against central
// differences of refSurrogate in float64.
func TestGateBackwardFiniteDifference(t *testing.T) {
	const layers, dim, b, tt = 3, 6, 2, 5
	for _, m := range Methods {
		t.Run(string(m), func(t *testing.T) {
			g, err := NewTraining(TrainConfig{Method: m, Skip: 0.4, Seed: 3, Lambda: 2.5, PredictorWeight: 0.7}, layers, dim)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(2, 2))
			for _, p := range g.Params() { // routers away from their init, for nonzero gradients everywhere
				for i := range p.Data {
					p.Data[i] += float32(0.3 * r.NormFloat64())
				}
			}
			gp := newGatePass(layers, dim, b, tt, 4)
			_, ga, gm, dxa, dxm := gp.run(g)
			P := map[string][]float64{}
			for _, p := range g.Params() {
				P[p.Name] = to64(p.Data)
			}
			xa, xm := make([][]float64, layers), make([][]float64, layers)
			for li := range layers {
				xa[li], xm[li] = to64(gp.xa[li]), to64(gp.xm[li])
			}
			phi := func(withBCE bool) float64 { return refSurrogate(g, gp, ga, gm, P, xa, xm, withBCE) }
			const h = 1e-6
			check := func(what string, got float32, v *float64, withBCE bool) {
				t.Helper()
				old := *v
				*v = old + h
				lp := phi(withBCE)
				*v = old - h
				lm := phi(withBCE)
				*v = old
				fd := (lp - lm) / (2 * h)
				if e := math.Abs(float64(got) - fd); e > 1e-4*math.Abs(fd)+1e-6 {
					t.Errorf("%s: gradient %.8g, finite difference %.8g", what, got, fd)
				}
			}
			nonzero := 0
			for _, p := range g.Params() {
				for i := range p.Data {
					check(p.Name, p.Grad[i], &P[p.Name][i], true)
					if p.Grad[i] != 0 {
						nonzero++
					}
				}
			}
			if nonzero < len(g.Params()) {
				t.Fatalf("only %d nonzero router gradients", nonzero)
			}
			for li := range layers {
				for i := range xa[li] {
					check("attention input", dxa[li][i], &xa[li][i], false)
					check("MLP input", dxm[li][i], &xm[li][i], false)
				}
			}
		})
	}
}

// TestFrozenGateBackward: a frozen gate trains nothing and decides by
// Decide; of the three methods only MoD's gate (r on the executing rows)
// depends on its input, and its gradient with respect to x is exact.
func TestFrozenGateBackward(t *testing.T) {
	const layers, dim, b, tt = 3, 6, 2, 5
	for _, m := range Methods {
		tg, err := NewTraining(TrainConfig{Method: m, Skip: 0.4, Seed: 3}, layers, dim)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(6, 6))
		for _, p := range tg.Params() {
			for i := range p.Data {
				p.Data[i] += float32(0.5 * r.NormFloat64())
			}
		}
		g, err := Frozen(tg.Routers())
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Params()) != 0 {
			t.Fatalf("%s: a frozen gate has %d parameters", m, len(g.Params()))
		}
		gp := newGatePass(layers, dim, b, tt, 5)
		aux, ga, gm, dxa, dxm := gp.run(g)
		if aux != 0 || g.Aux(1, false) != nil {
			t.Fatalf("%s: frozen gate's auxiliary loss %g", m, aux)
		}
		rows := b * tt
		exec, scale, scratch := make([]bool, rows), make([]float32, rows), make([]float32, 2*rows)
		for li := range layers {
			for _, c := range []struct {
				p    Part
				x, g []float32
			}{{Attn, gp.xa[li], ga[li]}, {MLP, gp.xm[li], gm[li]}} {
				p := c.p
				if m.Whole() {
					p, c.x = Attn, gp.xa[li]
				}
				tg.Routers().Decide(li, p, c.x, rows, exec, scale, scratch)
				for r := range rows {
					want := float32(0)
					if exec[r] {
						want = scale[r]
					}
					if c.g[r] != want {
						t.Fatalf("%s layer %d %s row %d: gate %g, Decide says %v × %g", m, li, c.p, r, c.g[r], exec[r], scale[r])
					}
				}
			}
			for i := range dxa[li] {
				want := [2]float64{}
				row := i / dim
				for p, c := range [][]float32{gp.ca[li], gp.cm[li]} {
					if m != MoD {
						break
					}
					_, sc := tg.Routers().Router(li, Part(p))
					if sc != nil && g.st[li][p].exec[row] {
						want[p] = float64(c[row]) * float64(sc.W[i%dim])
					}
				}
				if math.Abs(float64(dxa[li][i])-want[0]) > 1e-6 || math.Abs(float64(dxm[li][i])-want[1]) > 1e-6 {
					t.Fatalf("%s layer %d input gradient [%d]: %g, %g, want %g, %g", m, li, i, dxa[li][i], dxm[li][i], want[0], want[1])
				}
			}
		}
	}
}

// TestModTopK: each sequence executes exactly k = max(1, ⌊(1−s)·T⌋) tokens,
// those with the largest router outputs, ties to the earlier token.
func TestModTopK(t *testing.T) {
	for _, c := range []struct {
		s    float64
		t, k int
	}{{0.4, 10, 6}, {0.2, 5, 4}, {0.99, 7, 1}, {0, 3, 3}, {0.5, 8, 4}} {
		if k := ModCapacity(c.s, c.t); k != c.k {
			t.Errorf("ModCapacity(%g, %d) = %d, want %d", c.s, c.t, k, c.k)
		}
	}
	const layers, dim, b, tt = 3, 4, 3, 10
	g, err := NewTraining(TrainConfig{Method: MoD, Skip: 0.4, Seed: 1}, layers, dim)
	if err != nil {
		t.Fatal(err)
	}
	// r = x₀ exactly: weight 1 on feature 0, bias 0.
	for _, r := range []*Router{g.rs.Layers[1].Attn, g.rs.Layers[1].MLP} {
		clear(r.W)
		r.W[0], r.B[0] = 1, 0
	}
	gp := newGatePass(layers, dim, b, tt, 8)
	rows := b * tt
	for r := range rows {
		gp.xa[1][r*dim] = float32((r * 7) % 5) // many ties
		gp.xm[1][r*dim] = float32(r % 3)
	}
	_, ga, gm, _, _ := gp.run(g)
	k := ModCapacity(0.4, tt)
	for p, c := range []struct {
		x []float32
		g []float32
	}{{gp.xa[1], ga[1]}, {gp.xm[1], gm[1]}} {
		sel := g.st[1][p].sel
		for s := range b {
			n := 0
			for i := range tt {
				r := s*tt + i
				want := float32(0)
				if sel[r] {
					n++
					want = c.x[r*dim]
				}
				if c.g[r] != want {
					t.Fatalf("%s row %d: gate %g, want %g (chosen %v)", Part(p), r, c.g[r], want, sel[r])
				}
				// The reference: a token is chosen iff fewer than k
				// tokens rank before it (larger r, or equal r and earlier).
				ahead := 0
				for j := range tt {
					xi, xj := c.x[r*dim], c.x[(s*tt+j)*dim]
					if xj > xi || (xj == xi && j < i) {
						ahead++
					}
				}
				if sel[r] != (ahead < k) {
					t.Fatalf("%s sequence %d token %d: chosen %v with %d ahead, k %d", Part(p), s, i, sel[r], ahead, k)
				}
			}
			if n != k {
				t.Fatalf("%s sequence %d: %d tokens chosen, k = %d", Part(p), s, n, k)
			}
		}
	}
	// The first and last layers are dense.
	for _, li := range []int{0, layers - 1} {
		for r := range rows {
			if ga[li][r] != 1 || gm[li][r] != 1 {
				t.Fatalf("layer %d row %d: gates %g, %g, want dense", li, r, ga[li][r], gm[li][r])
			}
		}
	}
}

// TestGumbelNoise: the noise is a function of (seed, step, layer, part,
// logit, row) — the same for the same arguments, different across steps —
// and Gumbel distributed: with logits differing by δ, a hard
// Gumbel-softmax executes with probability σ(δ) (the Gumbel-max trick).
func TestGumbelNoise(t *testing.T) {
	if gumbel(1, 5, 2, MLP, 1, 9) != gumbel(1, 5, 2, MLP, 1, 9) {
		t.Fatal("same arguments, different noise")
	}
	same := 0
	for r := range 100 {
		if gumbel(1, 5, 2, MLP, 1, r) == gumbel(1, 6, 2, MLP, 1, r) || gumbel(1, 5, 2, MLP, 1, r) == gumbel(1, 5, 2, Attn, 1, r) ||
			gumbel(1, 5, 2, MLP, 1, r) == gumbel(1, 5, 2, MLP, 0, r) || gumbel(1, 5, 2, MLP, 1, r) == gumbel(2, 5, 2, MLP, 1, r) {
			same++
		}
	}
	if same != 0 {
		t.Fatalf("%d of 100 draws repeat across step, part, logit or seed", same)
	}
	for _, delta := range []float64{-1.5, 0, 0.7, 2} {
		const n = 40000
		exec := 0
		var mean float64
		for r := range n {
			g1, g0 := gumbel(3, uint64(r/100), 1, Attn, 1, r%100), gumbel(3, uint64(r/100), 1, Attn, 0, r%100)
			mean += g1 / n
			if delta+g1 >= g0 {
				exec++
			}
		}
		want := 1 / (1 + math.Exp(-delta))
		if got := float64(exec) / n; math.Abs(got-want) > 0.01 {
			t.Errorf("δ = %g: executes %.4f of the time, σ(δ) = %.4f", delta, got, want)
		}
		if math.Abs(mean-0.5772156649) > 0.03 { // the Euler–Mascheroni constant
			t.Errorf("mean Gumbel noise %.4f, want γ ≈ 0.5772", mean)
		}
	}
}

// forceExecute sets every router so that everything executes with gate 1:
// SkipGPT and D-LLM routers prefer execute by 10⁴ (σ rounds to 1 whatever
// the noise), MoD's r is exactly 1 (weight 0, bias 1) with k = T (s = 0)
// and its predictors' logits are 10⁴.
func forceExecute(g *Gate) {
	for i := range g.rs.Layers {
		for _, nr := range g.rs.Layers[i].routers() {
			if nr.r == nil {
				continue
			}
			clear(nr.r.W)
			switch {
			case nr.r.Out == 2:
				nr.r.B[0], nr.r.B[1] = 0, 1e4
			case strings.HasSuffix(nr.name, "predictor"):
				nr.r.B[0] = 1e4
			default:
				nr.r.B[0] = 1
			}
		}
	}
}

// TestForcedExecuteBitIdentical: with every router forced to execute, the
// gated Net's loss and every model and LoRA gradient equal the plain Net's
// bit for bit, for each method, in training and evaluation passes, on both
// attention paths (with the cache too) — trainable gates and frozen ones.
func TestForcedExecuteBitIdentical(t *testing.T) {
	const b, tt = 2, 6
	bt := tinyBatch(b, tt, tinyConfig.Vocab, 2)
	lora := train.WithLoRA(train.LoRAConfig{Rank: 2, Alpha: 4, Dropout: 0.1, Targets: []string{train.QProj, train.VProj, train.DownProj}, Seed: 5})
	for _, paths := range [][]train.Option{nil, {train.WithGEMM()}, {train.WithGEMM(), train.WithAttentionCache()}} {
		for _, full := range []bool{false, true} {
			opts := append([]train.Option{lora}, paths...)
			if full {
				opts = append(opts, train.FullFineTune())
			}
			plainModel := tinyModel(tinyConfig, 1)
			plain, err := train.New(plainModel, b, tt, opts...)
			if err != nil {
				t.Fatal(err)
			}
			randomizeB(plain)
			want, err := plain.ForwardBackward(bt, 1)
			if err != nil {
				t.Fatal(err)
			}
			wantEval, _ := plain.Loss(bt)
			for _, meth := range Methods {
				for _, frozen := range []bool{false, true} {
					tg, err := NewTraining(TrainConfig{Method: meth, Skip: 0, Seed: 1}, tinyConfig.Layers, tinyConfig.Dim)
					if err != nil {
						t.Fatal(err)
					}
					forceExecute(tg)
					g := tg
					if frozen {
						if g, err = Frozen(tg.Routers()); err != nil {
							t.Fatal(err)
						}
					}
					gm := tinyModel(tinyConfig, 1)
					n, err := train.New(gm, b, tt, append(append([]train.Option(nil), opts...), train.WithGate(g))...)
					if err != nil {
						t.Fatal(err)
					}
					randomizeB(n)
					got, err := n.ForwardBackward(bt, 1)
					if err != nil {
						t.Fatal(err)
					}
					if got.CE != want.CE || got.Tokens != want.Tokens {
						t.Fatalf("%s frozen=%v: CE %v, plain %v", meth, frozen, got.CE, want.CE)
					}
					if f := g.ExecuteFraction(); f != 1 {
						t.Fatalf("%s: execute fraction %g", meth, f)
					}
					for i, p := range plain.Params() {
						q := n.Params()[i]
						if q.Name != p.Name {
							t.Fatalf("parameter %d: %s, plain %s", i, q.Name, p.Name)
						}
						for j := range p.Grad {
							if math.Float32bits(p.Grad[j]) != math.Float32bits(q.Grad[j]) {
								t.Fatalf("%s frozen=%v: %s grad[%d] = %g, plain %g", meth, frozen, p.Name, j, q.Grad[j], p.Grad[j])
							}
						}
					}
					gotEval, _ := n.Loss(bt)
					if gotEval.CE != wantEval.CE {
						t.Fatalf("%s frozen=%v: evaluation CE %v, plain %v", meth, frozen, gotEval.CE, wantEval.CE)
					}
				}
			}
		}
	}
}

// randomizeB gives LoRA's B nonzero values so that every gradient is live.
func randomizeB(n *train.Net) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, a := range n.Adapters() {
		for i := range a.B.Data {
			a.B.Data[i] = float32(0.3 * r.NormFloat64())
		}
	}
}

// stage1 trains a method's routers on the tiny model for the given steps,
// from a fresh trainer or from a saved state.
func stage1(t *testing.T, meth Method, steps, from int, state []byte) (*train.Trainer, *Gate) {
	t.Helper()
	const b, tt = 2, 8
	g, err := NewTraining(TrainConfig{Method: meth, Skip: 0.4, Seed: 7}, tinyConfig.Layers, tinyConfig.Dim)
	if err != nil {
		t.Fatal(err)
	}
	n, err := train.New(tinyModel(tinyConfig, 1), b, tt, train.WithGEMM(), train.WithGate(g))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := train.NewTrainer(n, train.TrainerConfig{Schedule: optim.Cosine{PeakLR: 2e-2, Total: 8, WarmupRatio: 0.2},
		WeightDecay: 0.01, MaxGradNorm: 1, Accumulation: 2})
	if err != nil {
		t.Fatal(err)
	}
	if state != nil {
		if err := tr.UnmarshalBinary(state); err != nil {
			t.Fatal(err)
		}
	}
	for s := from; s < steps; s++ {
		if _, err := tr.Step([]train.Batch{tinyBatch(b, tt, tinyConfig.Vocab, uint64(2*s)), tinyBatch(b, tt, tinyConfig.Vocab, uint64(2*s+1))}); err != nil {
			t.Fatal(err)
		}
	}
	return tr, g
}

// TestResumeBitIdentical: router training interrupted after 3 steps and
// resumed from the Trainer's checkpoint gives the routers of the straight
// run bit for bit. The checkpoint holds the routers' values, AdamW's
// moments and the micro-step counter that keys the Gumbel noise: resuming
// with the values and moments but the counter at 0 draws other noise and
// diverges.
func TestResumeBitIdentical(t *testing.T) {
	for _, meth := range Methods {
		straight, gs := stage1(t, meth, 6, 0, nil)
		first, _ := stage1(t, meth, 3, 0, nil)
		state, err := first.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		_, gr := stage1(t, meth, 6, 3, state)
		a, b := gs.Params(), gr.Params()
		moved := false
		for i := range a {
			for j := range a[i].Data {
				if math.Float32bits(a[i].Data[j]) != math.Float32bits(b[i].Data[j]) {
					t.Fatalf("%s %s[%d]: straight %g, resumed %g", meth, a[i].Name, j, a[i].Data[j], b[i].Data[j])
				}
			}
		}
		fresh, _ := NewTraining(TrainConfig{Method: meth, Skip: 0.4, Seed: 7}, tinyConfig.Layers, tinyConfig.Dim)
		for i, p := range fresh.Params() {
			for j := range p.Data {
				moved = moved || p.Data[j] != a[i].Data[j]
			}
		}
		if !moved {
			t.Fatalf("%s: training did not move the routers", meth)
		}
		if straight.Net.MicroSteps() != 12 {
			t.Fatalf("%s: %d micro-steps", meth, straight.Net.MicroSteps())
		}
		if meth == MoD {
			continue // top-k draws no noise
		}
		// The same state with the micro-step counter zeroed.
		bad := append([]byte(nil), state...)
		clear(bad[8:16])
		_, gb := stage1(t, meth, 6, 3, bad)
		differ := false
		for i, p := range gb.Params() {
			for j := range p.Data {
				differ = differ || p.Data[j] != a[i].Data[j]
			}
		}
		if !differ {
			t.Fatalf("%s: resuming with the micro-step counter at 0 gave the same routers: the noise does not depend on it", meth)
		}
	}
}

// TestGradientsThreadIndependent: a training pass's router gradients are
// the same bits for GOMAXPROCS 1, 3 and 8.
func TestGradientsThreadIndependent(t *testing.T) {
	const b, tt = 3, 16
	for _, meth := range Methods {
		var ref [][]float32
		for _, procs := range []int{1, 3, 8} {
			old := runtime.GOMAXPROCS(procs)
			g, err := NewTraining(TrainConfig{Method: meth, Skip: 0.4, Seed: 2}, tinyConfig.Layers, tinyConfig.Dim)
			if err != nil {
				t.Fatal(err)
			}
			n, err := train.New(tinyModel(tinyConfig, 1), b, tt, train.WithGEMM(), train.WithGate(g))
			if err == nil {
				n.SetMicroSteps(11)
				_, err = n.ForwardBackward(tinyBatch(b, tt, tinyConfig.Vocab, 4), 1)
			}
			runtime.GOMAXPROCS(old)
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range g.Params() {
				if len(ref) <= i {
					ref = append(ref, append([]float32(nil), p.Grad...))
					continue
				}
				for j := range p.Grad {
					if math.Float32bits(p.Grad[j]) != math.Float32bits(ref[i][j]) {
						t.Fatalf("%s GOMAXPROCS=%d: %s grad[%d] = %g, GOMAXPROCS=1 gives %g", meth, procs, p.Name, j, p.Grad[j], ref[i][j])
					}
				}
			}
		}
	}
}

func TestTrainingErrors(t *testing.T) {
	for _, c := range []struct {
		cfg    TrainConfig
		layers int
		want   string
	}{
		{TrainConfig{Method: "moe"}, 4, `dynamic: unknown method "moe", want one of [mod dllm skipgpt]`},
		{TrainConfig{Method: SkipGPT, Skip: 1}, 4, "dynamic: skip ratio 1 is outside [0, 1)"},
		{TrainConfig{Method: MoD, Skip: 0.2}, 2, "dynamic: MoD keeps the first and last layers dense; a model of 2 layers has none left to route"},
		{TrainConfig{Method: DLLM, Lambda: -1}, 4, "dynamic: loss weights λ -1 and predictor 0 must not be negative"},
		{TrainConfig{Method: DLLM}, 0, "dynamic: a model of 0 layers of width 8"},
		{TrainConfig{Method: DLLM, DenseFirst: 4}, 4, "dynamic: 4 dense first layers of 4 leave none to route"},
	} {
		if _, err := NewTraining(c.cfg, c.layers, 8); err == nil || err.Error() != c.want {
			t.Errorf("NewTraining(%+v): %v, want %q", c.cfg, err, c.want)
		}
	}
	rs := testRouters(SkipGPT, 4, 8)
	rs.Layers[1].Block = NewRouter(8, 2)
	if _, err := Frozen(rs); err == nil || err.Error() != "dynamic: layer 1: SkipGPT has attention and MLP routers only" {
		t.Errorf("Frozen: %v", err)
	}
	if _, err := Frozen(&Routers{Method: DLLM, Layers: make([]Layer, 3)}); err == nil || err.Error() != "dynamic: the dllm routers have no router at all" {
		t.Errorf("Frozen without routers: %v", err)
	}
}

// TestKeyRule: a trainable gate hides the keys of the tokens that skip a
// block's attention under MoD and D-LLM (KVAbsent) and hides none under
// SkipGPT (KVFromInput); the MLP never returns keys.
func TestKeyRule(t *testing.T) {
	const layers, dim, b, tt = 3, 6, 2, 5
	for _, m := range Methods {
		g, err := NewTraining(TrainConfig{Method: m, Skip: 0.4, Seed: 3}, layers, dim)
		if err != nil {
			t.Fatal(err)
		}
		gp := newGatePass(layers, dim, b, tt, 4)
		g.Begin(train.GatePass{Train: true, Step: 1, B: b, T: tt})
		gv := make([]float32, b*tt)
		keys := g.Gate(1, train.GateAttn, gp.xa[1], gv)
		if m.KVRule() == KVFromInput {
			if keys != nil {
				t.Fatalf("%s: keys %v, want none hidden", m, keys)
			}
		} else {
			hidden := 0
			for r, k := range keys {
				if k != (gv[r] != 0) {
					t.Fatalf("%s row %d: key visible %v, gate %g", m, r, k, gv[r])
				}
				if !k {
					hidden++
				}
			}
			if len(keys) != b*tt || hidden == 0 {
				t.Fatalf("%s: %d keys, %d hidden", m, len(keys), hidden)
			}
		}
		if k := g.Gate(1, train.GateMLP, gp.xm[1], gv); k != nil {
			t.Fatalf("%s: the MLP returned keys", m)
		}
	}
}

// TestDenseFirst: D-LLM's first layers can be left dense, as its reference
// code does; the rate loss then counts them as executed, and the routed
// layers' gradients carry it.
func TestDenseFirst(t *testing.T) {
	const layers, dim, b, tt = 4, 6, 2, 5
	g, err := NewTraining(TrainConfig{Method: DLLM, Skip: 0.4, Seed: 3, DenseFirst: 2}, layers, dim)
	if err != nil {
		t.Fatal(err)
	}
	if g.rs.Layers[0].Block != nil || g.rs.Layers[1].Block != nil || g.rs.Layers[2].Block == nil || len(g.Params()) != 4 {
		t.Fatalf("dense first: routers %v, %d parameters", g.rs.Layers, len(g.Params()))
	}
	gp := newGatePass(layers, dim, b, tt, 4)
	_, ga, _, _, _ := gp.run(g)
	// The active loss is the mean over tokens of |fraction of layers run − 0.6|.
	var want float64
	for r := range b * tt {
		a := 0.0
		for li := range layers {
			a += float64(ga[li][r]) / layers
		}
		want += math.Abs(a-0.6) / (b * tt)
	}
	if got := g.Aux(1, false)[0].Value; math.Abs(got-want) > 1e-12 {
		t.Fatalf("active loss %g, want %g", got, want)
	}
	if f := g.Fractions(); f[0] != [2]float64{1, 1} || f[1] != [2]float64{1, 1} {
		t.Fatalf("dense layers' fractions %v", f[:2])
	}
}
