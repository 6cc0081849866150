package slicegpt

import (
	"fmt"

	"lrmc/kernels/llama"
	"lrmc/kernels/tensor"
)

// Decoder runs a sliced model one token at a time over a key/value cache,
// for generation and decode-speed measurements. It is not safe for
// concurrent use.
type Decoder struct {
	m                *Model
	maxSeq           int
	freqs            []float32
	kc, vc           [][]float32 // per block, [held, KVDim]
	held             int
	cos, sin, scores []float32
}

// NewDecoder makes a decoder for positions 0…maxSeq-1; its caches grow
// with the positions fed.
func NewDecoder(m *Model, maxSeq int) *Decoder {
	hd := m.Config.HeadDim()
	return &Decoder{
		m: m, maxSeq: maxSeq, freqs: llama.RopeFreqs(m.Config),
		kc: make([][]float32, len(m.Layers)), vc: make([][]float32, len(m.Layers)),
		cos: make([]float32, hd/2), sin: make([]float32, hd/2),
	}
}

// reserve makes room for positions 0…n-1, at least doubling.
func (d *Decoder) reserve(n int) {
	if n <= d.held {
		return
	}
	n = min(d.maxSeq, max(n, 2*d.held, 64))
	kvd := d.m.Config.KVDim()
	grow := func(s []float32, size int) []float32 {
		t := make([]float32, size)
		copy(t, s)
		return t
	}
	for i := range d.kc {
		d.kc[i] = grow(d.kc[i], n*kvd)
		d.vc[i] = grow(d.vc[i], n*kvd)
	}
	d.scores = grow(d.scores, n)
	d.held = n
}

// Step feeds token at position pos (positions before it fed already) and
// returns the logits for the next token, a new slice.
func (d *Decoder) Step(token int32, pos int) []float32 {
	m, c := d.m, d.m.Config
	if pos < 0 || pos >= d.maxSeq {
		panic(fmt.Sprintf("slicegpt: Decoder.Step: position %d outside [0, %d)", pos, d.maxSeq))
	}
	d.reserve(pos + 1)
	qd, kvd, hd := c.QDim(), c.KVDim(), c.HeadDim()
	ropeAt(d.cos, d.sin, d.freqs, pos)
	x := m.Embed([]int32{token})
	q := make([]float32, qd)
	att := make([]float32, qd)
	group := c.Heads / c.KVHeads
	for i := range m.Layers {
		l := &m.Layers[i]
		xb := make([]float32, l.In)
		rmsRows(xb, x, l.In, c.Dim, c.NormEps)
		krow := d.kc[i][pos*kvd : (pos+1)*kvd]
		vrow := d.vc[i][pos*kvd : (pos+1)*kvd]
		tensor.MatMul(q, xb, l.Wq, 1, l.In, qd)
		tensor.MatMul(krow, xb, l.Wk, 1, l.In, kvd)
		tensor.MatMul(vrow, xb, l.Wv, 1, l.In, kvd)
		if c.QKVBias {
			tensor.Add(q, l.Bq)
			tensor.Add(krow, l.Bk)
			tensor.Add(vrow, l.Bv)
		}
		if c.QKNorm {
			tensor.RMSNormRows(q, q, l.QNorm, c.NormEps)
			tensor.RMSNormRows(krow, krow, l.KNorm, c.NormEps)
		}
		rotate(q, d.cos, d.sin, c.RopeStyle)
		rotate(krow, d.cos, d.sin, c.RopeStyle)
		for h := range c.Heads {
			off := (h / group) * hd
			llama.Attend(att[h*hd:(h+1)*hd], q[h*hd:(h+1)*hd], d.kc[i][off:], d.vc[i][off:], pos+1, kvd, d.scores)
		}
		hres := l.attnResidual(c, x, att, 1)
		x = l.mlpResidual(c, hres, l.mlpHidden(c, hres, 1), 1)
	}
	return m.Logits(x, 1, 1)
}

// Prefill feeds tokens at positions 0…len(tokens)-1 in one batched pass,
// keeps their keys and values, and returns the logits for the next token;
// Step continues from len(tokens).
func (d *Decoder) Prefill(tokens []int32) []float32 {
	m, c := d.m, d.m.Config
	n := len(tokens)
	if n == 0 || n > d.maxSeq {
		panic(fmt.Sprintf("slicegpt: Decoder.Prefill: %d tokens outside [1, %d]", n, d.maxSeq))
	}
	d.reserve(n)
	kvd := c.KVDim()
	x := m.Embed(tokens)
	for i := range m.Layers {
		l := &m.Layers[i]
		att := l.attentionKV(c, x, 1, n, func(k, v []float32) {
			copy(d.kc[i][:n*kvd], k)
			copy(d.vc[i][:n*kvd], v)
		})
		h := l.attnResidual(c, x, att, n)
		x = l.mlpResidual(c, h, l.mlpHidden(c, h, n), n)
	}
	w := m.HeadWidth()
	return m.Logits(x[(n-1)*w:], 1, 1)
}
