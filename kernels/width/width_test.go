package width

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"lrmc/kernels/calibstats"
	"lrmc/kernels/llama"
	"lrmc/kernels/synth"
	"lrmc/kernels/train"
)

// shapes are the two model families of the tests: Qwen3 (GQA 2:1, head
// size ≠ Dim/Heads, q/k norms, rotate-half RoPE, tied classifier) and
// llama2.c (stories260K's GQA 8:4, interleaved RoPE).
var shapes = map[string]synth.Spec{
	"qwen3":   {Arch: "qwen3", Layers: 3, Dim: 32, Heads: 4, KVHeads: 2, HeadDim: 12, FFN: 40, Vocab: 61, SeqLen: 32, Tie: true, Seed: 1},
	"llama2c": {Arch: "llama", Layers: 3, Dim: 32, Heads: 8, KVHeads: 4, FFN: 44, Vocab: 57, SeqLen: 32, Seed: 2},
}

// testModel is a synthetic model of spec s with weights rescaled to
// N(0, 1/in) and norms drawn near 1, so that every unit matters.
func testModel(t testing.TB, s synth.Spec) *llama.Model {
	t.Helper()
	m, _, err := synth.New(s)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(s.Seed, 3))
	for _, w := range m.WeightRefs() {
		d := *w.Data
		if len(w.Shape) == 2 {
			f := float32(1 / (0.02 * math.Sqrt(float64(w.Shape[1]))))
			for i := range d {
				d[i] *= f
			}
		} else {
			for i := range d {
				d[i] = float32(1 + 0.3*r.NormFloat64())
			}
		}
	}
	return m
}

func tokens(n, vocab int, seed uint64) []int32 {
	r := rand.New(rand.NewPCG(seed, 5))
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(r.IntN(vocab))
	}
	return out
}

// randomPlan keeps a seeded random non-empty subset of every block's groups.
func randomPlan(c llama.Config, seed uint64) Plan {
	r := rand.New(rand.NewPCG(seed, 9))
	pick := func(n int) []int {
		var k []int
		for i := range n {
			if r.IntN(3) > 0 {
				k = append(k, i)
			}
		}
		if len(k) == 0 {
			k = []int{r.IntN(n)}
		}
		return k
	}
	p := make(Plan, c.Layers)
	for i := range p {
		w := c.Width(i)
		p[i] = LayerPlan{KVHeads: pick(w.KVHeads), Channels: pick(w.HiddenDim)}
	}
	return p
}

// zeroed is m with the groups p removes zeroed in place of removed: q, k, v
// rows (and their biases), o columns, gate/up rows and down columns.
func zeroed(m *llama.Model, p Plan) *llama.Model {
	z := m.Clone()
	c := m.Config
	hd, d := c.HeadDim(), c.Dim
	for i, lp := range p {
		lc := c.Layer(i)
		rep := lc.Heads / lc.KVHeads
		keptKV := map[int]bool{}
		for _, g := range lp.KVHeads {
			keptKV[g] = true
		}
		l := &z.Layers[i]
		for g := range lc.KVHeads {
			if keptKV[g] {
				continue
			}
			for r := g * hd; r < (g+1)*hd; r++ {
				clear(l.Wk[r*d : (r+1)*d])
				clear(l.Wv[r*d : (r+1)*d])
				if l.Bk != nil {
					l.Bk[r], l.Bv[r] = 0, 0
				}
			}
			for h := g * rep; h < (g+1)*rep; h++ {
				for r := h * hd; r < (h+1)*hd; r++ {
					clear(l.Wq[r*d : (r+1)*d])
					if l.Bq != nil {
						l.Bq[r] = 0
					}
					for o := range d {
						l.Wo[o*lc.QDim()+r] = 0
					}
				}
			}
		}
		kept := map[int]bool{}
		for _, j := range lp.Channels {
			kept[j] = true
		}
		for j := range lc.HiddenDim {
			if kept[j] {
				continue
			}
			clear(l.W1[j*d : (j+1)*d])
			clear(l.W3[j*d : (j+1)*d])
			for o := range d {
				l.W2[o*lc.HiddenDim+j] = 0
			}
		}
	}
	return z
}

// A pruned model computes what the dense model with the removed rows and
// columns zeroed computes, for GQA Qwen3 and llama2.c shapes, through the
// batched forward and the decoder.
func TestPruneEqualsZeroed(t *testing.T) {
	for name, s := range shapes {
		m := testModel(t, s)
		p := randomPlan(m.Config, 7)
		pruned, err := Prune(m, p, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if pruned.Config.Uniform() {
			t.Fatalf("%s: random plan gave a uniform model", name)
		}
		if pruned.Config.Params() >= m.Config.Params() {
			t.Fatalf("%s: pruned params %d ≥ dense %d", name, pruned.Config.Params(), m.Config.Params())
		}
		z := zeroed(m, p)
		const b, T = 2, 9
		toks := tokens(b*T, s.Vocab, 4)
		got, want := pruned.Forward(toks, b, T), z.Forward(toks, b, T)
		if e := relErr(got, want); e > 1e-5 {
			t.Errorf("%s: pruned vs zeroed logits differ by %.3g of the scale", name, e)
		}
		// The decoder over the pruned model's per-block caches.
		dec := llama.NewDecoder(pruned, T)
		for pos := range T {
			step := dec.Step(toks[pos], pos)
			if e := relErr(step, want[pos*s.Vocab:(pos+1)*s.Vocab]); e > 1e-5 {
				t.Fatalf("%s: decoder position %d differs by %.3g", name, pos, e)
			}
		}
		// Pruning nothing is the identity.
		full, err := Prune(m, Full(m.Config), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(full.Config, m.Config) || relErr(full.Forward(toks, b, T), m.Forward(toks, b, T)) != 0 {
			t.Errorf("%s: pruning nothing changed the model", name)
		}
	}
}

// relErr is max|a−b| / max|b|.
func relErr(a, b []float32) float64 {
	var d, s float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
		s = math.Max(s, math.Abs(float64(b[i])))
	}
	return d / s
}

// collect gathers the o and down inputs' statistics of every block of m
// over b×t tokens, and keeps the raw rows for float64 recomputation.
func collect(t testing.TB, m *llama.Model, toks []int32, b, T int) (o, down []*calibstats.Site, oRows, downRows [][]float32) {
	h := m.Embed(toks, nil)
	for i := range m.Layers {
		lc := m.Config.Layer(i)
		os, ds := calibstats.NewSite(llama.SiteOIn, lc.QDim(), false), calibstats.NewSite(llama.SiteDownIn, lc.HiddenDim, false)
		var ro, rd []float32
		h = m.BlockTap(i, h, b, T, func(s llama.Site, x []float32, width int) {
			switch s {
			case llama.SiteOIn:
				if err := os.Add(x, b); err != nil {
					t.Fatal(err)
				}
				ro = append(ro, x...)
			case llama.SiteDownIn:
				if err := ds.Add(x, b); err != nil {
					t.Fatal(err)
				}
				rd = append(rd, x...)
			}
		})
		o, down, oRows, downRows = append(o, os), append(down, ds), append(oRows, ro), append(downRows, rd)
	}
	return
}

// Wanda-sp and FLAP scores against a float64 recomputation from the raw
// activations and weights, on every block of a GQA model.
func TestScoresAgainstFloat64(t *testing.T) {
	m := testModel(t, shapes["qwen3"])
	c := m.Config
	const b, T = 3, 8
	o, down, oRows, downRows := collect(t, m, tokens(b*T, c.Vocab, 6), b, T)
	hd, d, rep := c.HeadDim(), c.Dim, c.Heads/c.KVHeads
	for i := range m.Layers {
		l := &m.Layers[i]
		attn, mlp, err := WandaSPScores(c, i, l, o[i].SumSq, down[i].SumSq, float64(o[i].Sequences))
		if err != nil {
			t.Fatal(err)
		}
		// Reference: column j of W scores mean_r|W_rj|·√(Σ_t x_tj² / b).
		ref := func(w, x []float32, in int) []float64 {
			s := make([]float64, in)
			for j := range in {
				var ss, aw float64
				for r := 0; r < len(x)/in; r++ {
					ss += float64(x[r*in+j]) * float64(x[r*in+j])
				}
				for r := range d {
					aw += math.Abs(float64(w[r*in+j]))
				}
				s[j] = aw / float64(d) * math.Sqrt(ss/b)
			}
			return s
		}
		ro := ref(l.Wo, oRows[i], c.QDim())
		wantAttn := make([]float64, c.KVHeads)
		for j, v := range ro {
			wantAttn[j/hd/rep] += v
		}
		checkClose(t, "wanda-sp attention", attn, wantAttn)
		checkClose(t, "wanda-sp mlp", mlp, ref(l.W2, downRows[i], c.HiddenDim))

		fa, fm, err := FLAPScores(c, i, l, FLAPInputs{OMean: o[i].Mean(), OVar: o[i].Variance(), DownMean: down[i].Mean(), DownVar: down[i].Variance()})
		if err != nil {
			t.Fatal(err)
		}
		// Reference: variance (population) of x_j times Σ_r W_rj².
		fref := func(w, x []float32, in int) []float64 {
			s := make([]float64, in)
			n := float64(len(x) / in)
			for j := range in {
				var mean, v, w2 float64
				for r := 0; r < len(x)/in; r++ {
					mean += float64(x[r*in+j]) / n
				}
				for r := 0; r < len(x)/in; r++ {
					v += (float64(x[r*in+j]) - mean) * (float64(x[r*in+j]) - mean) / n
				}
				for r := range d {
					w2 += float64(w[r*in+j]) * float64(w[r*in+j])
				}
				s[j] = v * w2
			}
			return s
		}
		fo := fref(l.Wo, oRows[i], c.QDim())
		for j := range fo {
			fo[j] *= fo[j]
		}
		checkClose(t, "flap attention", fa, fo)
		checkClose(t, "flap mlp", fm, fref(l.W2, downRows[i], c.HiddenDim))
	}
}

func checkClose(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d scores, want %d", what, len(got), len(want))
	}
	for j := range got {
		if math.Abs(got[j]-want[j]) > 1e-9*math.Abs(want[j])+1e-300 {
			t.Fatalf("%s[%d] = %.12g, float64 reference %.12g", what, j, got[j], want[j])
		}
	}
}

// LLM-Pruner's group scores from kernels/train's Taylor saliences equal a
// float64 recomputation from the weights and their gradients: element-wise
// Σ|w·g| over every weight of the group, vector-wise Σ over the group's
// rows and columns of |Σ w·g|. One batch, so train sums nothing else in.
func TestLLMPrunerGroupsAgainstFloat64(t *testing.T) {
	m := testModel(t, shapes["llama2c"])
	c := m.Config
	const b, T = 2, 6
	net, err := train.New(m, b, T, train.FullFineTune())
	if err != nil {
		t.Fatal(err)
	}
	tay, err := train.NewTaylor(net)
	if err != nil {
		t.Fatal(err)
	}
	toks := tokens(b*T, c.Vocab, 8)
	if err := tay.Add(train.Batch{Tokens: toks, Targets: train.NextTokenTargets(toks, nil, b, T)}); err != nil {
		t.Fatal(err)
	}
	params := map[string][2][]float32{}
	for _, p := range net.Params() {
		params[p.Name] = [2][]float32{p.Data, p.Grad}
	}
	hd, d, rep := c.HeadDim(), c.Dim, c.Heads/c.KVHeads
	for li := range c.Layers {
		pre := fmt.Sprintf("model.layers.%d.", li)
		get := func(n string) ([]float32, []float32) { p := params[pre+n+".weight"]; return p[0], p[1] }
		// rowsScore sums rows [r0, r1) of w [out, in]; colsScore columns.
		rowsScore := func(n string, r0, r1 int, vector bool) float64 {
			w, g := get(n)
			var s float64
			in := len(w) / (len(w) / d)
			for r := r0; r < r1; r++ {
				var v float64
				for i := range in {
					x := float64(w[r*in+i]) * float64(g[r*in+i])
					if vector {
						v += x
					} else {
						s += math.Abs(x)
					}
				}
				s += math.Abs(v)
			}
			return s
		}
		colsScore := func(n string, c0, c1 int, vector bool) float64 {
			w, g := get(n)
			in := len(w) / d
			var s float64
			for j := c0; j < c1; j++ {
				var v float64
				for r := range d {
					x := float64(w[r*in+j]) * float64(g[r*in+j])
					if vector {
						v += x
					} else {
						s += math.Abs(x)
					}
				}
				s += math.Abs(v)
			}
			return s
		}
		for _, vector := range []bool{false, true} {
			imp := tay.Element
			if vector {
				imp = tay.Vector
			}
			attn, mlp := LLMPrunerGroups(TaylorLayer{imp.Heads[li], imp.KVHeads[li], imp.Channels[li]}, rep)
			want := make([]float64, c.KVHeads)
			for g := range want {
				q0, q1 := g*rep*hd, (g+1)*rep*hd
				want[g] = rowsScore("self_attn.q_proj", q0, q1, vector) + colsScore("self_attn.o_proj", q0, q1, vector) +
					rowsScore("self_attn.k_proj", g*hd, (g+1)*hd, vector) + rowsScore("self_attn.v_proj", g*hd, (g+1)*hd, vector)
			}
			checkCloseTol(t, fmt.Sprintf("layer %d attention (vector %v)", li, vector), attn, want, 1e-9)
			wm := make([]float64, c.HiddenDim)
			for j := range wm {
				wm[j] = rowsScore("mlp.gate_proj", j, j+1, vector) + rowsScore("mlp.up_proj", j, j+1, vector) + colsScore("mlp.down_proj", j, j+1, vector)
			}
			checkCloseTol(t, fmt.Sprintf("layer %d mlp (vector %v)", li, vector), mlp, wm, 1e-9)
		}
	}
}

func checkCloseTol(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d scores, want %d", what, len(got), len(want))
	}
	for j := range got {
		if math.Abs(got[j]-want[j]) > tol*math.Abs(want[j])+1e-300 {
			t.Fatalf("%s[%d] = %.12g, float64 reference %.12g", what, j, got[j], want[j])
		}
	}
}

// LLM-Pruner's plan prunes only its block range, each pruned block keeping
// ⌊n·(1−ratio)⌋ of each kind, the best scored.
func TestLLMPrunerPlan(t *testing.T) {
	c := llama.Config{Dim: 16, HiddenDim: 10, Layers: 8, Heads: 4, KVHeads: 4, Vocab: 10, SeqLen: 8, NormEps: 1e-5, RopeTheta: 1e4}
	s := make([]TaylorLayer, c.Layers)
	for i := range s {
		s[i] = TaylorLayer{Heads: []float64{4, 1, 3, 2}, KVHeads: []float64{0, 0, 0, 0.5}, Channels: []float64{9, 1, 8, 2, 7, 3, 6, 4, 5, 0}}
	}
	p, err := LLMPrunerPlan(c, s, 0.4, DefaultRange(c.Layers))
	if err != nil {
		t.Fatal(err)
	}
	for i, lp := range p {
		if i < 4 || i >= 6 {
			if !reflect.DeepEqual(lp, Full(c)[i]) {
				t.Errorf("block %d outside [4, 6) pruned: %+v", i, lp)
			}
			continue
		}
		// Heads 4·0.6 = 2.4 → 2 kept: head 0 (4) and head 2 (3); head 3
		// (2+0.5) loses to head 2. Channels 10·0.6 → 6 kept.
		if !reflect.DeepEqual(lp.KVHeads, []int{0, 2}) || !reflect.DeepEqual(lp.Channels, []int{0, 2, 4, 6, 7, 8}) {
			t.Errorf("block %d keeps %+v", i, lp)
		}
	}
	if _, err := LLMPrunerPlan(c, s, 0.4, Range{4, 4}); err == nil || !strings.Contains(err.Error(), "layer range [4, 4) is empty") {
		t.Errorf("empty range: %v", err)
	}
}
