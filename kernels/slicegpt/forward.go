package slicegpt

import (
	"fmt"
	"math"

	"lrmc/kernels/attention"
	"lrmc/kernels/llama"
	"lrmc/kernels/tensor"
)

// Embed looks up the (rotated, sliced) embedding row of every token and
// returns them, [len(tokens), EmbedWidth]. It panics on a token outside
// [0, Vocab).
func (m *Model) Embed(tokens []int32) []float32 {
	d := m.EmbedWidth()
	out := make([]float32, len(tokens)*d)
	for i, tok := range tokens {
		if tok < 0 || int(tok) >= m.Config.Vocab {
			panic(fmt.Sprintf("slicegpt: Embed: token %d at index %d outside vocabulary [0, %d)", tok, i, m.Config.Vocab))
		}
		copy(out[i*d:(i+1)*d], m.Embedding[int(tok)*d:(int(tok)+1)*d])
	}
	return out
}

// Block runs block i over b sequences of t tokens (positions 0…t-1, causal
// within each sequence): x is the residual entering it, [b·t, In]; the
// result is a new [b·t, Out] slice.
func (m *Model) Block(i int, x []float32, b, t int) []float32 {
	if i < 0 || i >= len(m.Layers) {
		panic(fmt.Sprintf("slicegpt: Block: layer %d out of range [0, %d)", i, len(m.Layers)))
	}
	l := &m.Layers[i]
	n := b * t
	if b < 0 || t < 0 || len(x) != n*l.In {
		panic(fmt.Sprintf("slicegpt: Block: residual holds %d floats, want b=%d × t=%d × %d", len(x), b, t, l.In))
	}
	a := l.attention(m.Config, x, b, t)
	h := l.attnResidual(m.Config, x, a, n)
	g := l.mlpHidden(m.Config, h, n)
	return l.mlpResidual(m.Config, h, g, n)
}

// Logits applies the final (scale-free) RMSNorm and the classifier to b·t
// rows of the last block's output and returns [b·t, Vocab].
func (m *Model) Logits(h []float32, b, t int) []float32 {
	c, w := m.Config, m.HeadWidth()
	n := b * t
	if b < 0 || t < 0 || len(h) != n*w {
		panic(fmt.Sprintf("slicegpt: Logits: residual holds %d floats, want b=%d × t=%d × %d", len(h), b, t, w))
	}
	xb := make([]float32, n*w)
	rmsRows(xb, h, w, c.Dim, c.NormEps)
	logits := make([]float32, n*c.Vocab)
	tensor.MatMul(logits, xb, m.Classifier, n, w, c.Vocab)
	return logits
}

// Forward runs the sliced model over b sequences of t tokens (tokens is
// [b·t], sequence-major) and returns the logits at every position,
// [b·t, Vocab].
func (m *Model) Forward(tokens []int32, b, t int) []float32 {
	if b < 0 || t < 0 || len(tokens) != b*t {
		panic(fmt.Sprintf("slicegpt: Forward: %d tokens, want b=%d × t=%d", len(tokens), b, t))
	}
	h := m.Embed(tokens)
	for i := range m.Layers {
		h = m.Block(i, h, b, t)
	}
	return m.Logits(h, b, t)
}

// attention normalizes x [n, In] and returns the attention heads' output
// before Wo, [n, QDim]: q, k, v projections (with the dense model's biases
// and per-head q/k norms), rotary embedding, causal attention. Calibration
// calls it on a block whose Wo is not rotated yet.
func (l *Layer) attention(c llama.Config, x []float32, b, t int) []float32 {
	return l.attentionKV(c, x, b, t, nil)
}

// attentionKV is attention, handing the rotated keys and values, [b·t,
// KVDim] each, to kv when it is not nil (Decoder.Prefill keeps them).
func (l *Layer) attentionKV(c llama.Config, x []float32, b, t int, kv func(k, v []float32)) []float32 {
	n := b * t
	qd, kvd, hd := c.QDim(), c.KVDim(), c.HeadDim()
	xb := make([]float32, n*l.In)
	rmsRows(xb, x, l.In, c.Dim, c.NormEps)
	q := make([]float32, n*qd)
	k := make([]float32, n*kvd)
	v := make([]float32, n*kvd)
	tensor.MatMul(q, xb, l.Wq, n, l.In, qd)
	tensor.MatMul(k, xb, l.Wk, n, l.In, kvd)
	tensor.MatMul(v, xb, l.Wv, n, l.In, kvd)
	if c.QKVBias {
		addRows(q, l.Bq)
		addRows(k, l.Bk)
		addRows(v, l.Bv)
	}
	if c.QKNorm {
		tensor.RMSNormRows(q, q, l.QNorm, c.NormEps)
		tensor.RMSNormRows(k, k, l.KNorm, c.NormEps)
	}
	freqs := llama.RopeFreqs(c)
	half := hd / 2
	cos, sin := make([]float32, t*half), make([]float32, t*half)
	for p := range t {
		ropeAt(cos[p*half:(p+1)*half], sin[p*half:(p+1)*half], freqs, p)
	}
	for r := range n {
		p := r % t
		cs, sn := cos[p*half:(p+1)*half], sin[p*half:(p+1)*half]
		rotate(q[r*qd:(r+1)*qd], cs, sn, c.RopeStyle)
		rotate(k[r*kvd:(r+1)*kvd], cs, sn, c.RopeStyle)
	}
	if kv != nil {
		kv(k, v)
	}
	att := make([]float32, n*qd)
	attention.Causal(att, q, k, v, b, t, c.Heads, c.KVHeads, hd)
	return att
}

// attnResidual returns h = x·AttnShortcutᵀ + att·Woᵀ, [n, Mid].
func (l *Layer) attnResidual(c llama.Config, x, att []float32, n int) []float32 {
	h := make([]float32, n*l.Mid)
	tensor.MatMul(h, att, l.Wo, n, c.QDim(), l.Mid)
	sc := make([]float32, n*l.Mid)
	tensor.MatMul(sc, x, l.AttnShortcut, n, l.In, l.Mid)
	tensor.Add(h, sc)
	return h
}

// mlpHidden returns SiLU(W1·rms(h)) ⊙ W3·rms(h), [n, HiddenDim].
func (l *Layer) mlpHidden(c llama.Config, h []float32, n int) []float32 {
	hid := c.HiddenDim
	xb := make([]float32, n*l.Mid)
	rmsRows(xb, h, l.Mid, c.Dim, c.NormEps)
	g := make([]float32, n*hid)
	u := make([]float32, n*hid)
	tensor.MatMul(g, xb, l.W1, n, l.Mid, hid)
	tensor.MatMul(u, xb, l.W3, n, l.Mid, hid)
	tensor.SwiGLU(g, u)
	return g
}

// mlpResidual returns h·MLPShortcutᵀ + g·W2ᵀ, [n, Out].
func (l *Layer) mlpResidual(c llama.Config, h, g []float32, n int) []float32 {
	out := make([]float32, n*l.Out)
	tensor.MatMul(out, g, l.W2, n, c.HiddenDim, l.Out)
	sc := make([]float32, n*l.Out)
	tensor.MatMul(sc, h, l.MLPShortcut, n, l.Mid, l.Out)
	tensor.Add(out, sc)
	return out
}

// rmsRows writes each row x/sqrt(Σx²/dim + eps) of the width-w rows of x
// into out: the reference's RMSN, whose mean divides by the dense width dim
// whatever the row's width. The sum of squares runs in float32 in index
// order, as tensor.RMSNorm's does, so that an unsliced model (w = dim)
// normalizes as the dense one.
func rmsRows(out, x []float32, w, dim int, eps float32) {
	for r := 0; r+w <= len(x); r += w {
		row := x[r : r+w]
		var ss float32
		for _, v := range row {
			ss += float32(v * v)
		}
		ss /= float32(dim)
		ss += eps
		s := 1 / tensor.Sqrt32(ss)
		o := out[r : r+w]
		for i, v := range row {
			o[i] = float32(s * v)
		}
	}
}

// addRows adds bias to every row of x, whose width is len(bias).
func addRows(x, bias []float32) {
	for r := 0; r+len(bias) <= len(x); r += len(bias) {
		tensor.Add(x[r:r+len(bias)], bias)
	}
}

// ropeAt writes cos and sin of pos·freq[i] for every pair of a head, the
// angle rounded to float32 first; the same steps as kernels/llama's, so an
// unsliced model rotates its queries and keys as the dense one does.
func ropeAt(cos, sin, freqs []float32, pos int) {
	for i, f := range freqs {
		a := float64(float32(pos) * f)
		cos[i] = float32(math.Cos(a))
		sin[i] = float32(math.Sin(a))
	}
}

// rotate applies the rotary embedding to every head of vec in the given
// pairing (llama.RopeInterleaved: (2i, 2i+1); llama.RopeHalf: (i, i+hd/2)).
func rotate(vec, cos, sin []float32, style llama.RopeStyle) {
	half := len(cos)
	hd := 2 * half
	for h := 0; h+hd <= len(vec); h += hd {
		v := vec[h : h+hd]
		for i := range cos {
			a, b := 2*i, 2*i+1
			if style == llama.RopeHalf {
				a, b = i, i+half
			}
			c, s := cos[i], sin[i]
			v0, v1 := v[a], v[b]
			v[a] = float32(v0*c) - float32(v1*s)
			v[b] = float32(v0*s) + float32(v1*c)
		}
	}
}
