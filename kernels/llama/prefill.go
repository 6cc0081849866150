package llama

import (
	"fmt"
	"lrmc/kernels/attention"

	"lrmc/kernels/tensor"
)

// Embed looks up the embedding row of every token into dst, which must hold
// len(tokens)·Dim floats (it is allocated when nil), and returns dst. It
// panics on a token outside [0, Vocab).
func (m *Model) Embed(tokens []int32, dst []float32) []float32 {
	d := m.Config.Dim
	if dst == nil {
		dst = make([]float32, len(tokens)*d)
	}
	if len(dst) < len(tokens)*d {
		panic(fmt.Sprintf("llama: Embed: dst holds %d floats, %d tokens need %d", len(dst), len(tokens), len(tokens)*d))
	}
	for i, tok := range tokens {
		if tok < 0 || int(tok) >= m.Config.Vocab {
			panic(fmt.Sprintf("llama: Embed: token %d at index %d outside vocabulary [0, %d)", tok, i, m.Config.Vocab))
		}
		row := dst[i*d : (i+1)*d]
		if m.Half != nil {
			// Only the rows looked up are widened.
			widenInto(m.Half.DType, row, m.Half.Embedding[int(tok)*d:(int(tok)+1)*d])
		} else {
			copy(row, m.Embedding[int(tok)*d:(int(tok)+1)*d])
		}
	}
	return dst
}

// Block runs transformer block i over b independent sequences of t tokens
// (positions 0…t-1, causal attention within each sequence). h is the hidden
// state entering the block, [b·t, Dim]; it is not modified. The result is a
// new slice holding the hidden state leaving the block.
func (m *Model) Block(i int, h []float32, b, t int) []float32 {
	return m.block(i, h, b, t, nil, nil)
}

// block is Block, handing the block's rotated keys and values, [b·t,
// KVDim] each, to kv when it is not nil (Decoder.Prefill keeps them), and
// every linear layer's input to tap when it is not nil (BlockTap).
func (m *Model) block(i int, h []float32, b, t int, kv func(k, v []float32), tap Tap) []float32 {
	n := b * t
	if i < 0 || i >= len(m.Layers) {
		panic(fmt.Sprintf("llama: Block: layer %d out of range [0, %d)", i, len(m.Layers)))
	}
	c := m.Config.Layer(i)
	if b < 0 || t < 0 || len(h) != n*c.Dim {
		panic(fmt.Sprintf("llama: Block: hidden state holds %d floats, want b=%d × t=%d × dim=%d", len(h), b, t, c.Dim))
	}
	// Causal attention, flash style: query × key tiles on the GEMM with an
	// online softmax, never a t×t score matrix (kernels/attention). The
	// Decoder keeps run.c's per-query order, which the reference test pins.
	return m.blockRows(i, h, n, t, func(r int) int { return r % t }, tap, func(att, q, k, v []float32) {
		if kv != nil {
			kv(k, v)
		}
		attention.Causal(att, q, k, v, b, t, c.Heads, c.KVHeads, c.HeadDim())
	})
}

// blockRows runs transformer block i over n rows of hidden state h, row r
// at position pos(r) < positions, with attn computing the attention output
// att [n, QDim] from the rotated q [n, QDim], k and v [n, KVDim]: which
// rows see which is attn's to say. Block (sequences) and ForwardForks
// (contexts with branches) differ only there.
//
// tap, when not nil, is handed every linear layer's input (BlockTap).
func (m *Model) blockRows(i int, h []float32, n, positions int, pos func(r int) int, tap Tap, attn func(att, q, k, v []float32)) []float32 {
	c := m.Config.Layer(i)
	l, w := &m.Layers[i], m.projections(i)
	d, qd, kvd, hid, hd := c.Dim, c.QDim(), c.KVDim(), c.HiddenDim, c.HeadDim()

	// Attention.
	xb := make([]float32, n*d)
	tensor.RMSNormRows(xb, h, l.AttnNorm, c.NormEps)
	tap.at(SiteAttnIn, xb, d)
	q := make([]float32, n*qd)
	k := make([]float32, n*kvd)
	v := make([]float32, n*kvd)
	w.wq.mul(q, xb, n, d, qd)
	w.wk.mul(k, xb, n, d, kvd)
	w.wv.mul(v, xb, n, d, kvd)
	l.qkPrep(c, q, k, v)

	freqs := RopeFreqs(c)
	cos, sin := make([]float32, positions*hd/2), make([]float32, positions*hd/2)
	for p := range positions {
		ropeAt(cos[p*hd/2:(p+1)*hd/2], sin[p*hd/2:(p+1)*hd/2], freqs, p)
	}
	for r := range n {
		p := pos(r)
		cs, sn := cos[p*hd/2:(p+1)*hd/2], sin[p*hd/2:(p+1)*hd/2]
		rotate(q[r*qd:(r+1)*qd], cs, sn, c.RopeStyle)
		rotate(k[r*kvd:(r+1)*kvd], cs, sn, c.RopeStyle)
	}
	att := make([]float32, n*qd)
	attn(att, q, k, v)
	tap.at(SiteOIn, att, qd)
	out := make([]float32, n*d)
	w.wo.mul(out, att, n, qd, d)
	if c.OutBias {
		addRows(out, l.Bo)
	}
	tensor.Add(out, h)

	// SwiGLU MLP.
	tensor.RMSNormRows(xb, out, l.FFNNorm, c.NormEps)
	tap.at(SiteMLPIn, xb, d)
	hb := make([]float32, n*hid)
	hb2 := make([]float32, n*hid)
	w.w1.mul(hb, xb, n, d, hid)
	w.w3.mul(hb2, xb, n, d, hid)
	tensor.SwiGLU(hb, hb2)
	tap.at(SiteDownIn, hb, hid)
	w.w2.mul(xb, hb, n, hid, d)
	if c.OutBias {
		addRows(xb, l.B2)
	}
	tensor.Add(out, xb)
	return out
}

// qkPrep applies what comes between the q, k, v projections and the rotary
// embedding, on any number of rows: the biases (Qwen2), then the per-head
// RMSNorm of q and k (Qwen3), in Hugging Face's order.
func (l *Layer) qkPrep(c Config, q, k, v []float32) {
	if c.QKVBias {
		addRows(q, l.Bq)
		addRows(k, l.Bk)
		addRows(v, l.Bv)
	}
	if c.QKNorm {
		tensor.RMSNormRows(q, q, l.QNorm, c.NormEps)
		tensor.RMSNormRows(k, k, l.KNorm, c.NormEps)
	}
}

// addRows adds bias to every row of x, whose width is len(bias).
func addRows(x, bias []float32) {
	if len(bias) == 0 {
		panic("llama: addRows: empty bias (the model does not hold a bias its config declares)")
	}
	for r := 0; r+len(bias) <= len(x); r += len(bias) {
		tensor.Add(x[r:r+len(bias)], bias)
	}
}

// Logits applies the final RMSNorm and the classifier to a hidden state of
// b·t rows and returns the logits, [b·t, Vocab]. h is not modified.
func (m *Model) Logits(h []float32, b, t int) []float32 {
	c := m.Config
	n := b * t
	if b < 0 || t < 0 || len(h) != n*c.Dim {
		panic(fmt.Sprintf("llama: Logits: hidden state holds %d floats, want b=%d × t=%d × dim=%d", len(h), b, t, c.Dim))
	}
	xb := make([]float32, n*c.Dim)
	tensor.RMSNormRows(xb, h, m.FinalNorm, c.NormEps)
	logits := make([]float32, n*c.Vocab)
	m.classifier().mul(logits, xb, n, c.Dim, c.Vocab)
	return logits
}

// Forward runs the whole model over b sequences of t tokens (tokens is
// [b·t], sequence-major) and returns the logits at every position,
// [b·t, Vocab].
func (m *Model) Forward(tokens []int32, b, t int) []float32 {
	if b < 0 || t < 0 || len(tokens) != b*t {
		panic(fmt.Sprintf("llama: Forward: %d tokens, want b=%d × t=%d", len(tokens), b, t))
	}
	h := m.Embed(tokens, nil)
	for i := range m.Layers {
		h = m.Block(i, h, b, t)
	}
	return m.Logits(h, b, t)
}
