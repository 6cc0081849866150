package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"lrmc/kernels/llama"
)

type gradCase struct {
	name  string
	cfg   llama.Config
	opts  []Option
	b, t  int
	topK  int  // teacher cache size when distilling (0: full logits)
	noisy bool // give LoRA's B nonzero values so A's gradient is not zero
}

func (cs gradCase) build(t testing.TB) (*Net, Batch) {
	t.Helper()
	m := randModel(cs.cfg, 11)
	n, err := New(m, cs.b, cs.t, cs.opts...)
	if err != nil {
		t.Fatal(err)
	}
	if cs.noisy {
		r := rand.New(rand.NewPCG(5, 5))
		for _, a := range n.Adapters() {
			for i := range a.B.Data {
				a.B.Data[i] = float32(0.3 * r.NormFloat64())
			}
		}
	}
	rows := cs.b * cs.t
	tokens := randTokens(rows, cs.cfg.Vocab, 3)
	mask := make([]bool, rows)
	for i := range mask {
		mask[i] = i%3 != 1 // a loss mask with holes
	}
	bt := Batch{Tokens: tokens, Targets: NextTokenTargets(tokens, mask, cs.b, cs.t)}
	if n.o.objective.KL != 0 {
		teacher := randModel(cs.cfg, 12).Forward(tokens, cs.b, cs.t)
		bt.Teacher = &TeacherLogits{Logits: teacher}
		if cs.topK > 0 {
			bt.Teacher = TopK(teacher, rows, cs.cfg.Vocab, cs.topK)
		}
	}
	return n, bt
}

func gradCases() []gradCase {
	base := llama.Config{Dim: 16, HiddenDim: 24, Layers: 2, Heads: 4, KVHeads: 4, Vocab: 19, SeqLen: 8,
		NormEps: 1e-5, RopeTheta: 10000}
	gqaHalf := base
	gqaHalf.Dim, gqaHalf.Heads, gqaHalf.KVHeads, gqaHalf.Layers = 24, 4, 2, 3
	gqaHalf.RopeStyle, gqaHalf.SharedClassifier, gqaHalf.QKVBias, gqaHalf.QKNorm = llama.RopeHalf, true, true, true
	qwen := base // explicit head size ≠ dim/heads, llama3 rope scaling
	qwen.HeadSize, qwen.KVHeads, qwen.RopeStyle = 8, 2, llama.RopeHalf
	qwen.RopeScaling = llama.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 4}
	tied := base
	tied.KVHeads, tied.SharedClassifier = 2, true
	// Width-pruned: blocks of their own heads, kv heads and MLP width, with
	// FLAP's output biases.
	widths := gqaHalf
	widths.HeadSize, widths.OutBias = 6, true
	widths.Widths = []llama.LayerWidth{{Heads: 4, KVHeads: 2, HiddenDim: 24}, {Heads: 2, KVHeads: 1, HiddenDim: 9}, {Heads: 4, KVHeads: 2, HiddenDim: 13}}
	all := []string{QProj, KProj, VProj, OProj, GateProj, UpProj, DownProj}
	return []gradCase{
		{name: "mha-interleaved-untied-full", cfg: base, opts: []Option{FullFineTune()}, b: 2, t: 5},
		{name: "gqa-half-tied-bias-qknorm-full", cfg: gqaHalf, opts: []Option{FullFineTune()}, b: 2, t: 4},
		{name: "gqa-interleaved-tied-lora-all-dropout", cfg: tied, b: 2, t: 5, noisy: true,
			opts: []Option{WithLoRA(LoRAConfig{Rank: 3, Alpha: 6, Dropout: 0.25, Targets: all, Seed: 9})}},
		{name: "headsize-llama3-lora-qv-distill-topk", cfg: qwen, b: 2, t: 4, noisy: true, topK: 5,
			opts: []Option{WithLoRA(LoRAConfig{Rank: 2, Alpha: 4, Targets: []string{QProj, VProj}, Seed: 1}),
				WithObjective(Objective{CE: 0.5, KL: 1, Temperature: 2}), WithLogitRows(3)}},
		{name: "widths-outbias-full", cfg: widths, opts: []Option{FullFineTune()}, b: 2, t: 4},
		{name: "widths-outbias-lora-all", cfg: widths, b: 2, t: 4, noisy: true,
			opts: []Option{WithLoRA(LoRAConfig{Rank: 2, Alpha: 4, Targets: all, Seed: 4})}},
		{name: "gqa-half-bias-qknorm-full-lora-distill-full", cfg: gqaHalf, b: 1, t: 6, noisy: true,
			opts: []Option{FullFineTune(), WithLoRA(LoRAConfig{Rank: 2, Alpha: 2, Dropout: 0.1, Targets: []string{GateProj, OProj}, Seed: 2}),
				WithObjective(Objective{KL: 1, Temperature: 1.5})}},
	}
}

// TestGradientsFiniteDifference compares every trainable tensor's gradient
// (a sample of its elements, always including its largest) with central
// differences of the float64 reference loss, h = 1e-5: the difference
// quotient's own error is about h²·|L”'| + 1e-16/h ≈ 1e-10, so what is
// measured is the float32 backward pass's error.
func TestGradientsFiniteDifference(t *testing.T) {
	var cases []gradCase
	for _, cs := range gradCases() {
		g := cs
		g.name += "-gemm"
		g.opts = append(append([]Option(nil), cs.opts...), WithGEMM())
		cases = append(cases, cs, g)
	}
	for _, cs := range cases {
		t.Run(cs.name, func(t *testing.T) {
			n, bt := cs.build(t)
			if _, err := n.ForwardBackward(bt, 1); err != nil {
				t.Fatal(err)
			}
			checkFD(t, n, 6, func(P map[string][]float64) float64 { return refLoss(n, P, bt, 0) })
		})
	}
}

// checkFD compares a sample of every trainable tensor's gradient (its
// largest element and `samples` random ones) with central differences of
// loss, a float64 reference evaluated on the parameters P, h = 1e-5.
func checkFD(t *testing.T, n *Net, samples int, loss func(P map[string][]float64) float64) {
	t.Helper()
	P := refParams(n)
	r := rand.New(rand.NewPCG(8, 8))
	var gmax float64
	for _, p := range n.Params() {
		for _, g := range p.Grad {
			gmax = math.Max(gmax, math.Abs(float64(g)))
		}
	}
	const h = 1e-5
	var worst float64
	var worstAt string
	for _, p := range n.Params() {
		idx := []int{argmaxAbs(p.Grad)}
		for range samples {
			idx = append(idx, r.IntN(len(p.Grad)))
		}
		for _, i := range idx {
			v := P[p.Name][i]
			P[p.Name][i] = v + h
			lp := loss(P)
			P[p.Name][i] = v - h
			lm := loss(P)
			P[p.Name][i] = v
			fd := (lp - lm) / (2 * h)
			// Relative to the element, with a floor of 1e-3 of the
			// model's largest gradient for elements near zero.
			e := math.Abs(float64(p.Grad[i])-fd) / (math.Abs(fd) + 1e-3*gmax)
			if e > worst {
				worst, worstAt = e, p.Name
			}
			if e > 2e-3 {
				t.Errorf("%s[%d]: gradient %.8g, finite difference %.8g (rel. error %.2g)", p.Name, i, p.Grad[i], fd, e)
			}
		}
	}
	t.Logf("%d tensors, max |grad| %.3g, worst relative error %.2g (%s)", len(n.Params()), gmax, worst, worstAt)
}

func argmaxAbs(x []float32) int {
	best := 0
	for i, v := range x {
		if math.Abs(float64(v)) > math.Abs(float64(x[best])) {
			best = i
		}
	}
	return best
}
