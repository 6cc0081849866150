package llama

import (
	"fmt"

	"lrmc/kernels/tensor"
)

// Decoder runs the model one token at a time over a key/value cache, as
// llama2.c's run.c does. Each block's cache is as wide as that block's
// key/value heads; the scratch buffers are sized by the widest block. It is
// not safe for concurrent use.
type Decoder struct {
	m      *Model
	maxSeq int
	freqs  []float32
	// Per-layer caches, [held, KVDim] each, grown as positions are fed.
	kc, vc [][]float32
	held   int // positions the caches (and scores) have room for
	// Scratch, reused every step.
	x, xb, xb2, q, att, hb, hb2, cos, sin, scores, logits []float32
}

// initialPositions is the room a new decoder's caches have; they double as
// positions past it are fed.
const initialPositions = 256

// NewDecoder makes a decoder for positions 0…maxSeq-1. Its cache takes
// 2·Layers·KVDim floats per position fed (at most maxSeq): it is sized by
// the positions used, not by maxSeq, which callers take from a model's
// declared context (millions of positions for some headers).
func NewDecoder(m *Model, maxSeq int) *Decoder {
	c := m.Config
	d := &Decoder{
		m:      m,
		maxSeq: maxSeq,
		freqs:  RopeFreqs(c),
		kc:     make([][]float32, len(m.Layers)),
		vc:     make([][]float32, len(m.Layers)),
		x:      make([]float32, c.Dim),
		xb:     make([]float32, c.Dim),
		xb2:    make([]float32, c.Dim),
		q:      make([]float32, c.QDim()),
		att:    make([]float32, c.QDim()),
		hb:     make([]float32, c.HiddenDim),
		hb2:    make([]float32, c.HiddenDim),
		cos:    make([]float32, c.HeadDim()/2),
		sin:    make([]float32, c.HeadDim()/2),
		logits: make([]float32, c.Vocab),
	}
	d.reserve(min(maxSeq, initialPositions))
	return d
}

// reserve makes room in the caches for positions 0…n-1, growing them to at
// least twice their size so that feeding positions one by one copies each
// value O(1) times.
func (d *Decoder) reserve(n int) {
	if n <= d.held {
		return
	}
	n = min(d.maxSeq, max(n, 2*d.held))
	grow := func(s []float32, size int) []float32 {
		t := make([]float32, size)
		copy(t, s)
		return t
	}
	for i := range d.kc {
		kvd := d.m.Config.Layer(i).KVDim()
		d.kc[i] = grow(d.kc[i], n*kvd)
		d.vc[i] = grow(d.vc[i], n*kvd)
	}
	d.scores = grow(d.scores, n)
	d.held = n
}

// Step feeds token at position pos and returns the logits for the next
// token. Positions 0…pos-1 must have been fed before (in any earlier calls;
// feeding pos again overwrites it and forgets what came after). The returned
// slice is the decoder's own buffer, overwritten by the next Step.
func (d *Decoder) Step(token int32, pos int) []float32 {
	m, c := d.m, d.m.Config
	if pos < 0 || pos >= d.maxSeq {
		panic(fmt.Sprintf("llama: Decoder.Step: position %d outside [0, %d)", pos, d.maxSeq))
	}
	d.reserve(pos + 1)
	dim, hd := c.Dim, c.HeadDim()
	x := m.Embed([]int32{token}, d.x)
	ropeAt(d.cos, d.sin, d.freqs, pos)
	for i := range m.Layers {
		c := m.Config.Layer(i)
		qd, kvd, hid, kvMul := c.QDim(), c.KVDim(), c.HiddenDim, c.Heads/c.KVHeads
		q, att, hb, hb2 := d.q[:qd], d.att[:qd], d.hb[:hid], d.hb2[:hid]
		l, w := &m.Layers[i], m.projections(i)
		tensor.RMSNorm(d.xb, x, l.AttnNorm, c.NormEps)
		krow := d.kc[i][pos*kvd : (pos+1)*kvd]
		vrow := d.vc[i][pos*kvd : (pos+1)*kvd]
		m.Query(i, q, d.xb, 1)
		m.KeyValue(i, krow, vrow, d.xb, 1)
		rotate(q, d.cos, d.sin, c.RopeStyle)
		rotate(krow, d.cos, d.sin, c.RopeStyle)
		for h := range c.Heads {
			off := (h / kvMul) * hd
			Attend(att[h*hd:(h+1)*hd], q[h*hd:(h+1)*hd], d.kc[i][off:], d.vc[i][off:], pos+1, kvd, d.scores)
		}
		w.wo.mul(d.xb2, att, 1, qd, dim)
		if c.OutBias {
			tensor.Add(d.xb2, l.Bo)
		}
		tensor.Add(x, d.xb2)

		tensor.RMSNorm(d.xb, x, l.FFNNorm, c.NormEps)
		w.w1.mul(hb, d.xb, 1, dim, hid)
		w.w3.mul(hb2, d.xb, 1, dim, hid)
		tensor.SwiGLU(hb, hb2)
		w.w2.mul(d.xb, hb, 1, hid, dim)
		if c.OutBias {
			tensor.Add(d.xb, l.B2)
		}
		tensor.Add(x, d.xb)
	}
	tensor.RMSNorm(x, x, m.FinalNorm, c.NormEps)
	m.classifier().mul(d.logits, x, 1, dim, c.Vocab)
	return d.logits
}

// Prefill feeds tokens at positions 0…len(tokens)-1 in one batched pass
// (Block's GEMMs and flash attention, far faster than Step token by token
// over a long prompt), keeps their keys and values in the cache, and
// returns the logits for the next token; Step continues from
// len(tokens). The logits match Step's to float32 rounding, not bit for
// bit (the attention sums in another order). The returned slice is the
// decoder's own buffer, overwritten by the next Step.
func (d *Decoder) Prefill(tokens []int32) []float32 {
	m, c := d.m, d.m.Config
	n := len(tokens)
	if n == 0 || n > d.maxSeq {
		panic(fmt.Sprintf("llama: Decoder.Prefill: %d tokens outside [1, %d]", n, d.maxSeq))
	}
	d.reserve(n)
	h := m.Embed(tokens, nil)
	for i := range m.Layers {
		kvd := c.Layer(i).KVDim()
		h = m.block(i, h, 1, n, func(k, v []float32) {
			copy(d.kc[i][:n*kvd], k)
			copy(d.vc[i][:n*kvd], v)
		}, nil, nil, nil)
	}
	copy(d.logits, m.Logits(h[(n-1)*c.Dim:], 1, 1))
	return d.logits
}
