package llama

import (
	"fmt"
	"sync"

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
	}
	// Checked first, copied in parallel: a capture embeds 32k tokens (128
	// MiB on the Qwen3-0.6B shape), serial time the other thread idled in.
	forRows(len(tokens), d, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			tok := int(tokens[i])
			row := dst[i*d : (i+1)*d]
			if m.Half != nil {
				// Only the rows looked up are widened.
				widenInto(m.Half.DType, row, m.Half.Embedding[tok*d:(tok+1)*d])
			} else {
				copy(row, m.Embedding[tok*d:(tok+1)*d])
			}
		}
	})
	return dst
}

// Block runs transformer block i over b independent sequences of t tokens
// (positions 0…t-1, causal attention within each sequence). h is the hidden
// state entering the block, [b·t, Dim]; it is not modified. The result is a
// new slice holding the hidden state leaving the block.
func (m *Model) Block(i int, h []float32, b, t int) []float32 {
	return m.block(i, h, b, t, nil, nil, nil, nil)
}

// BlockInto is Block writing the block's output into dst, which must hold
// exactly len(h) floats and not overlap h, instead of a new slice: a caller
// that gathers many batches' outputs into one buffer (calibration capture)
// saves the allocation and the copy. It returns dst. The block's working
// buffers come from ws when it is not nil (see Workspace), else from a
// pool shared by all calls.
func (m *Model) BlockInto(ws *Workspace, dst []float32, i int, h []float32, b, t int) []float32 {
	if len(dst) != len(h) {
		panic(fmt.Sprintf("llama: BlockInto: dst holds %d floats, the hidden state %d", len(dst), len(h)))
	}
	return m.block(i, h, b, t, nil, nil, dst, ws)
}

// Workspace holds a block's working buffers across calls, for a caller
// that runs many large blocks in a row: calibration capture runs 4
// sequences of 512 tokens at a time, whose buffers (some 110 MiB on the
// Qwen3-0.6B shape) are too large for the shared pool to keep (see
// maxPooledFloats), so each call allocated and zeroed them again, on one
// thread while the other waited, and faulted the pages in: several percent
// of a capture's wall time. A Workspace keeps them for as long as the
// caller keeps it (one capture op), then they are garbage. Every buffer is
// wholly written before it is read, so results are those of Block. A
// Workspace is used by one call at a time.
type Workspace struct{ block, mlp scratch }

// block is Block, handing the block's rotated keys and values, [b·t,
// KVDim] each, to kv when it is not nil (Decoder.Prefill keeps them), and
// every linear layer's input to tap when it is not nil (BlockTap), writing
// into dst when it is not nil (BlockInto).
func (m *Model) block(i int, h []float32, b, t int, kv func(k, v []float32), tap Tap, dst []float32, ws *Workspace) []float32 {
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
	return m.blockRows(i, h, dst, n, func(r int) int { return r % t }, tap, ws, func(att, q, k, v []float32) {
		if kv != nil {
			kv(k, v)
		}
		attention.Causal(att, q, k, v, b, t, c.Heads, c.KVHeads, c.HeadDim())
	})
}

// blockRows runs transformer block i over n rows of hidden state h, row r
// at position pos(r), with attn computing the attention output att [n,
// QDim] from the rotated q [n, QDim], k and v [n, KVDim]: which rows see
// which is attn's to say. Block (sequences) and ForwardForks (contexts with
// branches) differ only there. It computes what the exported parts
// (parts.go) that kernels/dynamic runs on chosen rows compute, bit for bit,
// with some of their row-wise steps fused into one parallel loop (one fork
// and join instead of several, each row still in cache for its next step):
// the query and key norms with the rotary embedding, and the residual add
// with the MLP's norm. Each row goes through the same operations in the
// same order as through the parts, so the fusions change no bits.
//
// tap, when not nil, is handed every linear layer's input (BlockTap). The
// result goes to out, [n, Dim], or to a new slice when out is nil. The
// working buffers are ws's when it is not nil.
func (m *Model) blockRows(i int, h, out []float32, n int, pos func(r int) int, tap Tap, ws *Workspace, attn func(att, q, k, v []float32)) []float32 {
	c := m.Config.Layer(i)
	d, qd, kvd := c.Dim, c.QDim(), c.KVDim()

	var s, ms *scratch
	if ws != nil {
		s, ms = &ws.block, &ws.mlp
	} else {
		s, ms = getScratch(), getScratch()
		defer putScratch(s)
		defer putScratch(ms)
	}

	// Attention.
	xb := s.get(0, n*d)
	m.AttnNorm(i, xb, h)
	tap.at(SiteAttnIn, xb, d)
	q, k, v := s.get(1, n*qd), s.get(2, n*kvd), s.get(3, n*kvd)
	m.projectQKV(i, q, k, v, xb, n, pos)
	att := s.get(4, n*qd)
	attn(att, q, k, v)
	tap.at(SiteOIn, att, qd)
	if out == nil {
		out = make([]float32, n*d)
	}
	m.AttnOutput(i, out, att, n)

	// SwiGLU MLP, its input the residual stream out = out + h, normed.
	xm := ms.get(0, n*d)
	addNorm(out, h, xm, m.Layers[i].FFNNorm, c.NormEps)
	m.mlpNormed(i, xb, xm, n, tap, ms)
	add(out, xb)
	return out
}

// projectQKV is Query, KeyValue and Rotate of q and k: the projections,
// then one parallel loop over the rows that norms (Qwen3) and rotates each
// row of q and of k.
func (m *Model) projectQKV(i int, q, k, v, x []float32, n int, pos func(r int) int) {
	c, l, w := m.Config.Layer(i), &m.Layers[i], m.projections(i)
	qd, kvd := c.QDim(), c.KVDim()
	w.wq.mul(q, x, n, c.Dim, qd)
	w.wk.mul(k, x, n, c.Dim, kvd)
	w.wv.mul(v, x, n, c.Dim, kvd)
	if c.QKVBias {
		addRows(q[:n*qd], l.Bq)
		addRows(k[:n*kvd], l.Bk)
		addRows(v[:n*kvd], l.Bv)
	}
	if n == 0 {
		return
	}
	t := m.ropeTable(i, n, pos)
	forRows(n, qd+kvd, func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			qr, kr := q[r*qd:(r+1)*qd], k[r*kvd:(r+1)*kvd]
			if c.QKNorm {
				tensor.RMSNormRows(qr, qr, l.QNorm, c.NormEps)
				tensor.RMSNormRows(kr, kr, l.KNorm, c.NormEps)
			}
			p := pos(r)
			t.rotate(qr, p, c.RopeStyle)
			t.rotate(kr, p, c.RopeStyle)
		}
	})
}

// addNorm is add(x, h) then normRows(out, x, w, eps) in one parallel loop:
// x += h, out = RMSNorm(x), rows len(w) wide, a few rows at a time so each
// is still in cache when it is normed.
func addNorm(x, h, out, w []float32, eps float32) {
	d := len(w)
	forRows(len(x)/d, 2*d, func(lo, hi int) {
		const rows = 8
		for r0 := lo; r0 < hi; r0 += rows {
			r1 := min(r0+rows, hi)
			tensor.Add(x[r0*d:r1*d], h[r0*d:r1*d])
			tensor.RMSNormRows(out[r0*d:r1*d], x[r0*d:r1*d], w, eps)
		}
	})
}

// addRows adds bias to every row of x, whose width is len(bias).
func addRows(x, bias []float32) {
	if len(bias) == 0 {
		panic("llama: addRows: empty bias (the model does not hold a bias its config declares)")
	}
	w := len(bias)
	forRows(len(x)/w, w, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			tensor.Add(x[r*w:(r+1)*w], bias)
		}
	})
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
	normRows(xb, h, m.FinalNorm, c.NormEps)
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

// scratch is a block's working buffers, reused from call to call: a prefill
// allocated (and the runtime zeroed, and the kernel faulted in) some
// megabytes per block, several percent of its time. Every buffer is wholly
// written before it is read, so what a previous call left in it never
// shows. Only the block's output, which the caller keeps, is fresh.
type scratch struct{ bufs [5][]float32 }

// scratchPool keeps the scratches of finished calls for the next ones. A
// short free list, not a sync.Pool: a sync.Pool's per-processor caches
// missed whenever the calling goroutine had moved to another thread since
// its last call (most calls at 2 threads), and it dropped everything at
// every other collection; each miss allocated a block's buffers again,
// zeroed on one thread while the others waited.
var scratchPool scratchList

// maxFreeScratch is how many scratches scratchPool keeps: a block holds
// two at once (its own and the MLP's), and two blocks may run at once
// (the executor's concurrent ops).
const maxFreeScratch = 4

type scratchList struct {
	mu   sync.Mutex
	free []*scratch
}

// Put keeps s unless the list is full.
func (l *scratchList) Put(s *scratch) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.free) < maxFreeScratch {
		l.free = append(l.free, s)
	}
}

// Get returns a kept scratch, or nil.
func (l *scratchList) Get() *scratch {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.free)
	if n == 0 {
		return nil
	}
	s := l.free[n-1]
	l.free[n-1] = nil
	l.free = l.free[:n-1]
	return s
}

// reset drops every kept scratch (tests: fresh buffers).
func (l *scratchList) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.free = nil
}

// maxPooledFloats bounds the buffers kept for the next call (8 MiB each: a
// Qwen3-0.6B-shaped prefill of 512 tokens fits). A larger buffer, from a
// capture of many sequences at once, is left to the collector: held
// between calls, it would raise the heap the collector lets grow by as
// much again, and a capture's peak memory with it (shortgpt's
// TestPeakMemoryFlat), for a gain that is small next to such a call.
const maxPooledFloats = 1 << 21

// putScratch returns s to the pool without its oversized buffers.
func putScratch(s *scratch) {
	for j, b := range s.bufs {
		if cap(b) >= maxPooledFloats {
			s.bufs[j] = nil
		}
	}
	scratchPool.Put(s)
}

func getScratch() *scratch {
	if s := scratchPool.Get(); s != nil {
		return s
	}
	return new(scratch)
}

// get returns buffer j resized to n floats, with undefined contents.
func (s *scratch) get(j, n int) []float32 {
	if cap(s.bufs[j]) < n {
		s.bufs[j] = make([]float32, n)
	}
	return s.bufs[j][:n]
}
