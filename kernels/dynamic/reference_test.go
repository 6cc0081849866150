package dynamic

import (
	"math"
	"testing"

	"lrmc/kernels/llama"
)

// refForward is an independent float64 forward pass of the dense-then-masked
// computation: every token's block is computed densely, and a token's part
// contributes to the residual only where exec says it runs, times scale.
// Under KVAbsent the attention of a token sees only the keys of tokens that
// ran the layer's attention (a key mask); under KVFromInput it sees every
// earlier key. It returns the logits of every row of b sequences of t.
func refForward(m *llama.Model, rule KVRule, tokens []int32, b, t int,
	exec func(i int, p Part, r int) bool, scale func(i int, p Part, r int, x []float64) float64) [][]float64 {
	c := m.Config
	n, d := b*t, c.Dim
	h := make([][]float64, n)
	for r, tok := range tokens {
		h[r] = make([]float64, d)
		for j := range d {
			h[r][j] = float64(m.Embedding[int(tok)*d+j])
		}
	}
	freqs := llama.RopeFreqs(c)
	for i := range m.Layers {
		l, lc := &m.Layers[i], c.Layer(i)
		qd, kvd, hd, hid := lc.QDim(), lc.KVDim(), lc.HeadDim(), lc.HiddenDim
		q, k, v := make([][]float64, n), make([][]float64, n), make([][]float64, n)
		for r := range n {
			x := rmsnorm(h[r], l.AttnNorm, c.NormEps)
			q[r], k[r], v[r] = matvec(l.Wq, x, qd), matvec(l.Wk, x, kvd), matvec(l.Wv, x, kvd)
			if c.QKVBias {
				addTo(q[r], l.Bq)
				addTo(k[r], l.Bk)
				addTo(v[r], l.Bv)
			}
			for hh := 0; hh < qd; hh += hd {
				if c.QKNorm {
					copy(q[r][hh:hh+hd], rmsnorm(q[r][hh:hh+hd], l.QNorm, c.NormEps))
				}
				ropeRef(q[r][hh:hh+hd], freqs, r%t, c.RopeStyle)
			}
			for hh := 0; hh < kvd; hh += hd {
				if c.QKNorm {
					copy(k[r][hh:hh+hd], rmsnorm(k[r][hh:hh+hd], l.KNorm, c.NormEps))
				}
				ropeRef(k[r][hh:hh+hd], freqs, r%t, c.RopeStyle)
			}
		}
		h1 := make([][]float64, n)
		for r := range n {
			h1[r] = append([]float64(nil), h[r]...)
			if !exec(i, Attn, r) {
				continue
			}
			att := make([]float64, qd)
			s0 := r / t * t
			for head := range lc.Heads {
				g := head / (lc.Heads / lc.KVHeads)
				var keys []int
				for r2 := s0; r2 <= r; r2++ {
					if rule == KVFromInput || exec(i, Attn, r2) {
						keys = append(keys, r2)
					}
				}
				sc := make([]float64, len(keys))
				mx := math.Inf(-1)
				for j, r2 := range keys {
					for e := range hd {
						sc[j] += q[r][head*hd+e] * k[r2][g*hd+e]
					}
					sc[j] /= math.Sqrt(float64(hd))
					mx = math.Max(mx, sc[j])
				}
				var sum float64
				for j := range sc {
					sc[j] = math.Exp(sc[j] - mx)
					sum += sc[j]
				}
				for j, r2 := range keys {
					for e := range hd {
						att[head*hd+e] += sc[j] / sum * v[r2][g*hd+e]
					}
				}
			}
			o := matvec(l.Wo, att, d)
			if c.OutBias {
				addTo(o, l.Bo)
			}
			s := scale(i, Attn, r, h[r])
			for j := range d {
				h1[r][j] += s * o[j]
			}
		}
		for r := range n {
			h[r] = h1[r]
			if !exec(i, MLP, r) {
				continue
			}
			x := rmsnorm(h1[r], l.FFNNorm, c.NormEps)
			g, u := matvec(l.W1, x, hid), matvec(l.W3, x, hid)
			for j := range g {
				g[j] = g[j] / (1 + math.Exp(-g[j])) * u[j]
			}
			y := matvec(l.W2, g, d)
			if c.OutBias {
				addTo(y, l.B2)
			}
			s := scale(i, MLP, r, h1[r])
			h[r] = append([]float64(nil), h1[r]...)
			for j := range d {
				h[r][j] += s * y[j]
			}
		}
	}
	logits := make([][]float64, n)
	for r := range n {
		logits[r] = matvec(m.Classifier, rmsnorm(h[r], m.FinalNorm, c.NormEps), c.Vocab)
	}
	return logits
}

func rmsnorm(x []float64, w []float32, eps float32) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	r := 1 / math.Sqrt(ss/float64(len(x))+float64(eps))
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(w[i]) * v * r
	}
	return out
}

func matvec(w []float32, x []float64, rows int) []float64 {
	out := make([]float64, rows)
	for o := range rows {
		for j, v := range x {
			out[o] += float64(w[o*len(x)+j]) * v
		}
	}
	return out
}

func addTo(x []float64, b []float32) {
	for i := range x {
		x[i] += float64(b[i])
	}
}

func ropeRef(v []float64, freqs []float32, pos int, style llama.RopeStyle) {
	half := len(v) / 2
	for i := range half {
		a, b := 2*i, 2*i+1
		if style == llama.RopeHalf {
			a, b = i, i+half
		}
		ang := float64(pos) * float64(freqs[i])
		c, s := math.Cos(ang), math.Sin(ang)
		v[a], v[b] = v[a]*c-v[b]*s, v[a]*s+v[b]*c
	}
}

// maxErr is the largest |got − want| over all logits.
func maxErr(got []float32, want [][]float64) float64 {
	var worst float64
	vocab := len(want[0])
	for r, row := range want {
		for j, w := range row {
			worst = math.Max(worst, math.Abs(float64(got[r*vocab+j])-w))
		}
	}
	return worst
}

func one(int, Part, int, []float64) float64 { return 1 }

// fixedMask is a seeded mask executing about 60% of the tokens of every
// part of every layer but the first.
func fixedMask(seed uint64) Mask {
	return func(i int, p Part, seq, pos int) bool {
		if i == 0 {
			return true
		}
		h := (uint64(i)*131+uint64(p)*31+uint64(seq)*7919+uint64(pos)+seed)*0x9e3779b97f4a7c15 ^ seed
		return (h>>33)%10 < 6
	}
}

func TestFixedMaskMatchesDenseThenMasked(t *testing.T) {
	for _, arch := range []string{"qwen3", "qwen2"} {
		lm := testModel(t, arch, 3)
		const b, T = 2, 140
		tokens := tokensFor(b*T, lm.Config.Vocab, 7)
		for _, m := range Methods {
			dm, err := New(lm, denseRouters(m, 3))
			if err != nil {
				t.Fatal(err)
			}
			mask := fixedMask(11)
			dm.Mask = mask
			res := dm.Forward(tokens, b, T)
			exec := func(i int, p Part, r int) bool {
				if m.Whole() {
					p = Attn
				}
				return mask(i, p, r/T, r%T)
			}
			for i := range res.Exec {
				for p := range 2 {
					for r, e := range res.Exec[i][p] {
						if e != exec(i, Part(p), r) {
							t.Fatalf("%s %s: layer %d part %d row %d ran=%v, the mask says %v", arch, m, i, p, r, e, !e)
						}
					}
				}
			}
			want := refForward(lm, m.KVRule(), tokens, b, T, exec, one)
			if e := maxErr(res.Logits, want); e > 1e-5 {
				t.Fatalf("%s %s: gathered logits differ from dense-then-masked float64 by %.3g > 1e-5", arch, m, e)
			} else {
				t.Logf("%s %s: max |Δlogit| %.3g, skipped compute %.3f", arch, m, e, res.Stats.SkippedCompute())
			}
		}
	}
}

// With trained-style routers the pass takes their decisions, and MoD
// scales each part's output by its router's raw output r: the gathered
// computation equals the dense-then-masked float64 one that applies the
// same decisions and computes r itself.
func TestRoutersMatchDenseThenMasked(t *testing.T) {
	lm := testModel(t, "qwen3", 4)
	const b, T = 2, 70
	tokens := tokensFor(b*T, lm.Config.Vocab, 17)
	for _, m := range Methods {
		rs := randomRouters(m, 4, lm.Config.Dim, 23)
		dm, err := New(lm, rs)
		if err != nil {
			t.Fatal(err)
		}
		res := dm.Forward(tokens, b, T)
		exec := func(i int, p Part, r int) bool { return res.Exec[i][p][r] }
		scale := func(i int, p Part, r int, x []float64) float64 {
			if m != MoD {
				return 1
			}
			_, sc := rs.Router(i, p)
			if sc == nil {
				return 1
			}
			s := float64(sc.B[0])
			for j, v := range x {
				s += float64(sc.W[j]) * v
			}
			return s
		}
		var ran, all int64
		for _, l := range res.Stats.Layers {
			ran += l[Attn].Executed + l[MLP].Executed
			all += l[Attn].Tokens + l[MLP].Tokens
		}
		if ran == all || ran == 0 {
			t.Fatalf("%s: routers ran %d of %d parts: the test needs both", m, ran, all)
		}
		want := refForward(lm, m.KVRule(), tokens, b, T, exec, scale)
		if e := maxErr(res.Logits, want); e > 1e-5 {
			t.Fatalf("%s: routed logits differ from dense-then-masked float64 by %.3g > 1e-5", m, e)
		}
	}
}
