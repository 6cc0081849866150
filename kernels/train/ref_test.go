package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"lrmc/kernels/llama"
	"lrmc/kernels/train/optim"
)

// randModel builds a model of shape c with N(0, 1/in) weights, norms near 1
// and, when the config asks for them, biases and q/k norms.
func randModel(c llama.Config, seed uint64) *llama.Model {
	r := rand.New(rand.NewPCG(seed, 99))
	mat := func(out, in int) []float32 {
		w := make([]float32, out*in)
		s := 1 / math.Sqrt(float64(in))
		for i := range w {
			w[i] = float32(r.NormFloat64() * s)
		}
		return w
	}
	vec := func(n int, mean, sd float64) []float32 {
		w := make([]float32, n)
		for i := range w {
			w[i] = float32(mean + sd*r.NormFloat64())
		}
		return w
	}
	d, hd := c.Dim, c.HeadDim()
	m := &llama.Model{Config: c, Embedding: mat(c.Vocab, d)}
	for i := range c.Layers {
		w := c.Width(i)
		qd, kvd, hid := w.Heads*hd, w.KVHeads*hd, w.HiddenDim
		l := llama.Layer{
			AttnNorm: vec(d, 1, 0.2), Wq: mat(qd, d), Wk: mat(kvd, d), Wv: mat(kvd, d),
			Wo: mat(d, qd), FFNNorm: vec(d, 1, 0.2), W1: mat(hid, d), W2: mat(d, hid), W3: mat(hid, d),
		}
		if c.QKVBias {
			l.Bq, l.Bk, l.Bv = vec(qd, 0, 0.3), vec(kvd, 0, 0.3), vec(kvd, 0, 0.3)
		}
		if c.QKNorm {
			l.QNorm, l.KNorm = vec(hd, 1, 0.2), vec(hd, 1, 0.2)
		}
		if c.OutBias {
			l.Bo, l.B2 = vec(d, 0, 0.3), vec(d, 0, 0.3)
		}
		m.Layers = append(m.Layers, l)
	}
	m.FinalNorm = vec(d, 1, 0.2)
	if c.SharedClassifier {
		m.Classifier = m.Embedding
	} else {
		m.Classifier = mat(c.Vocab, d)
	}
	return m
}

func randTokens(n, vocab int, seed uint64) []int32 {
	r := rand.New(rand.NewPCG(seed, 7))
	t := make([]int32, n)
	for i := range t {
		t[i] = int32(r.IntN(vocab))
	}
	return t
}

// refParams collects every tensor the Net reads, frozen or trainable, as
// float64 by the Hugging Face / PEFT names the Net gives them.
func refParams(n *Net) map[string][]float64 {
	p := map[string][]float64{}
	add := func(q *optim.Param) {
		if q == nil {
			return
		}
		v := make([]float64, len(q.Data))
		for i, x := range q.Data {
			v[i] = float64(x)
		}
		p[q.Name] = v
	}
	for _, m := range n.o.modules {
		for _, q := range m.Params() {
			add(q)
		}
	}
	add(n.emb)
	add(n.cls)
	add(n.final)
	for _, l := range n.layers {
		add(l.attnNorm)
		add(l.ffnNorm)
		add(l.qNorm)
		add(l.kNorm)
		for _, lin := range l.lin {
			add(lin.w)
			add(lin.b)
			if lin.lora != nil {
				add(lin.lora.A)
				add(lin.lora.B)
			}
		}
	}
	return p
}

// refLoss is an independent float64 forward pass and objective, written
// from the definitions: every position's whole causal score row at once,
// RoPE as a rotation of (i, i+1) or (i, i+hd/2) pairs with the Net's angle
// table, LoRA as x + s·B·A·dropout(x) with the Net's dropout masks of
// micro-step step (none when step < 0).
func refLoss(n *Net, P map[string][]float64, bt Batch, step int) float64 {
	return refLossGated(n, P, bt, step, nil)
}

// refGate is a gate in float64 for refLossGated: gate returns part's gates
// of layer li for router input x and the attention's key mask (nil: all
// keys); aux is the auxiliary loss of every gate the pass produced, in
// call order.
type refGate interface {
	gate(li int, part GatePart, x []float64, P map[string][]float64) (g []float64, keys []bool)
	aux(gs [][]float64) float64
}

// refLossGated is refLoss with the blocks gated by gt (nil: none):
// h1 = h + g_a ⊙ Attn(h), out = h1 + g_m ⊙ MLP(h1), masked keys' scores
// −∞ for the other queries, and gt's auxiliary loss added.
func refLossGated(n *Net, P map[string][]float64, bt Batch, step int, gt refGate) float64 {
	c := n.c
	d, hd := c.Dim, c.HeadDim()
	rows, eps := n.b*n.t, float64(c.NormEps)
	rms := func(x []float64, w []float64) []float64 {
		out := make([]float64, len(x))
		k := len(w)
		for o := 0; o < len(x); o += k {
			var ss float64
			for _, v := range x[o : o+k] {
				ss += v * v
			}
			r := 1 / math.Sqrt(ss/float64(k)+eps)
			for i := range k {
				out[o+i] = w[i] * x[o+i] * r
			}
		}
		return out
	}
	matT := func(x, w []float64, m, in, out int) []float64 {
		y := make([]float64, m*out)
		for i := range m {
			for j := range out {
				var s float64
				for p := range in {
					s += x[i*in+p] * w[j*in+p]
				}
				y[i*out+j] = s
			}
		}
		return y
	}
	lin := func(li, mod int, x []float64) []float64 {
		l := n.layers[li].lin[mod]
		y := matT(x, P[l.w.Name], rows, l.in, l.out)
		if l.b != nil {
			for i := range y {
				y[i] += P[l.b.Name][i%l.out]
			}
		}
		if ad := l.lora; ad != nil {
			xd := append([]float64(nil), x...)
			if lc := n.o.lora; step >= 0 && lc.Dropout > 0 {
				dr := newDropout(lc.Seed, lc.Dropout, uint64(step), li, mod)
				for i := range xd {
					xd[i] *= float64(dr.factor(i))
				}
			}
			u := matT(xd, P[ad.A.Name], rows, l.in, ad.Rank)
			t := matT(u, P[ad.B.Name], rows, ad.Rank, l.out)
			for i := range y {
				y[i] += float64(ad.Scale) * t[i]
			}
		}
		return y
	}
	rope := func(x []float64, width int) {
		half := hd / 2
		for r := range rows {
			pos := r % n.t
			for h := 0; h < width; h += hd {
				v := x[r*width+h : r*width+h+hd]
				for i := range half {
					a, b := 2*i, 2*i+1
					if c.RopeStyle == llama.RopeHalf {
						a, b = i, i+half
					}
					co, si := float64(n.rope.cos[pos*half+i]), float64(n.rope.sin[pos*half+i])
					v[a], v[b] = v[a]*co-v[b]*si, v[a]*si+v[b]*co
				}
			}
		}
	}
	x := make([]float64, rows*d)
	for r, tok := range bt.Tokens {
		copy(x[r*d:(r+1)*d], P[n.emb.Name][int(tok)*d:(int(tok)+1)*d])
	}
	var gs [][]float64
	for li, l := range n.layers {
		ga, gm := make([]float64, rows), make([]float64, rows)
		for i := range ga {
			ga[i], gm[i] = 1, 1
		}
		var keys []bool
		if gt != nil {
			ga, keys = gt.gate(li, GateAttn, x, P)
			gs = append(gs, ga)
		}
		c := c // block li's widths, read from the config as stated
		if c.Widths != nil {
			w := c.Widths[li]
			c.Heads, c.KVHeads, c.HiddenDim = w.Heads, w.KVHeads, w.HiddenDim
		}
		qd, kvd, hid := c.Heads*hd, c.KVHeads*hd, c.HiddenDim
		xa := rms(x, P[l.attnNorm.Name])
		q, k, v := lin(li, modQ, xa), lin(li, modK, xa), lin(li, modV, xa)
		if c.QKNorm {
			q, k = rms(q, P[l.qNorm.Name]), rms(k, P[l.kNorm.Name])
		}
		rope(q, qd)
		rope(k, kvd)
		att := make([]float64, rows*qd)
		group := c.Heads / c.KVHeads
		for s := range n.b {
			for h := range c.Heads {
				kh := h / group
				for i := range n.t {
					sc := make([]float64, i+1)
					mx := math.Inf(-1)
					for j := range sc {
						for e := range hd {
							sc[j] += q[(s*n.t+i)*qd+h*hd+e] * k[(s*n.t+j)*kvd+kh*hd+e]
						}
						sc[j] /= math.Sqrt(float64(hd))
						if keys != nil && j != i && !keys[s*n.t+j] {
							sc[j] = math.Inf(-1)
						}
						mx = math.Max(mx, sc[j])
					}
					var sum float64
					for j := range sc {
						sc[j] = math.Exp(sc[j] - mx)
						sum += sc[j]
					}
					for j := range sc {
						for e := range hd {
							att[(s*n.t+i)*qd+h*hd+e] += sc[j] / sum * v[(s*n.t+j)*kvd+kh*hd+e]
						}
					}
				}
			}
		}
		o := lin(li, modO, att)
		for i := range x {
			x[i] += ga[i/d] * o[i]
		}
		if gt != nil {
			gm, _ = gt.gate(li, GateMLP, x, P)
			gs = append(gs, gm)
		}
		xf := rms(x, P[l.ffnNorm.Name])
		g, u := lin(li, modGate, xf), lin(li, modUp, xf)
		a := make([]float64, rows*hid)
		for i := range a {
			a[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
		}
		dn := lin(li, modDown, a)
		for i := range x {
			x[i] += gm[i/d] * dn[i]
		}
	}
	xn := rms(x, P[n.final.Name])
	logits := matT(xn, P[n.cls.Name], rows, d, c.Vocab)
	obj, temp := n.o.objective, float64(n.o.objective.temperature())
	var ce, kl float64
	var count int
	lsm := func(z []float64, t float64) []float64 {
		mx := math.Inf(-1)
		for _, v := range z {
			mx = math.Max(mx, v/t)
		}
		var s float64
		for _, v := range z {
			s += math.Exp(v/t - mx)
		}
		out := make([]float64, len(z))
		for i, v := range z {
			out[i] = v/t - mx - math.Log(s)
		}
		return out
	}
	for r, tg := range bt.Targets {
		if tg < 0 {
			continue
		}
		count++
		z := logits[r*c.Vocab : (r+1)*c.Vocab]
		ce -= lsm(z, 1)[tg]
		if obj.KL == 0 {
			continue
		}
		lq := lsm(z, temp)
		tl := bt.Teacher
		if tl.K == 0 {
			tz := make([]float64, c.Vocab)
			for i := range tz {
				tz[i] = float64(tl.Logits[r*c.Vocab+i])
			}
			lp := lsm(tz, temp)
			for i := range lp {
				kl += math.Exp(lp[i]) * (lp[i] - lq[i])
			}
		} else {
			tz := make([]float64, tl.K)
			for i := range tz {
				tz[i] = float64(tl.Logits[r*tl.K+i])
			}
			lp := lsm(tz, temp)
			for i := range lp {
				kl += math.Exp(lp[i]) * (lp[i] - lq[tl.Index[r*tl.K+i]])
			}
		}
	}
	kl *= temp * temp
	total := (float64(obj.CE)*ce + float64(obj.KL)*kl) / float64(count)
	if gt != nil {
		total += gt.aux(gs)
	}
	return total
}

// TestRefLossMatchesNet checks the float64 reference against the Net's own
// forward (which itself matches llama's), so that the gradient checks below
// differentiate the right function.
func TestRefLossMatchesNet(t *testing.T) {
	for _, cs := range gradCases() {
		t.Run(cs.name, func(t *testing.T) {
			n, bt := cs.build(t)
			got, err := n.Loss(bt)
			if err != nil {
				t.Fatal(err)
			}
			want := refLoss(n, refParams(n), bt, -1)
			if math.Abs(got.Total-want) > 1e-5*math.Abs(want) {
				t.Fatalf("Net loss %.9g, float64 reference %.9g", got.Total, want)
			}
		})
	}
}
