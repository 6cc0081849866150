package llama

import (
	"slices"
	"sync/atomic"
)

// The parts of a transformer block, exported for callers that run a block's
// attention and MLP on chosen rows only (kernels/dynamic's compute-skipping
// passes). blockRows and Decoder.Step are built from the same functions, so
// a caller that runs every part on every row computes the dense model's
// values bit for bit. Each function works on n rows; x, q, k, v and the
// outputs are row-major with the widths named.

// AttnNorm writes the attention-normed rows of h [n, Dim] into dst [n, Dim]
// (the input the query, key and value projections read).
func (m *Model) AttnNorm(i int, dst, h []float32) {
	normRows(dst, h, m.Layers[i].AttnNorm, m.Config.NormEps)
}

// Query writes q [n, QDim] = x·Wqᵀ for the normed rows x [n, Dim], with the
// query bias (Qwen2) and the per-head query norm (Qwen3), before the rotary
// embedding.
func (m *Model) Query(i int, q, x []float32, n int) {
	c, l := m.Config.Layer(i), &m.Layers[i]
	m.projections(i).wq.mul(q, x, n, c.Dim, c.QDim())
	if c.QKVBias {
		addRows(q[:n*c.QDim()], l.Bq)
	}
	if c.QKNorm {
		normRows(q[:n*c.QDim()], q[:n*c.QDim()], l.QNorm, c.NormEps)
	}
}

// KeyValue writes k and v [n, KVDim] = x·Wkᵀ, x·Wvᵀ for the normed rows x
// [n, Dim], with their biases (Qwen2) and the per-head key norm (Qwen3),
// before the rotary embedding.
func (m *Model) KeyValue(i int, k, v, x []float32, n int) {
	c, l, w := m.Config.Layer(i), &m.Layers[i], m.projections(i)
	kvd := c.KVDim()
	w.wk.mul(k, x, n, c.Dim, kvd)
	w.wv.mul(v, x, n, c.Dim, kvd)
	if c.QKVBias {
		addRows(k[:n*kvd], l.Bk)
		addRows(v[:n*kvd], l.Bv)
	}
	if c.QKNorm {
		normRows(k[:n*kvd], k[:n*kvd], l.KNorm, c.NormEps)
	}
}

// Rotate applies the rotary embedding to n rows of x (each a whole number
// of heads wide: queries or keys), row r at position pos(r). Rows are
// rotated in parallel, so pos must be safe to call concurrently.
func (m *Model) Rotate(i int, x []float32, n int, pos func(r int) int) {
	if n == 0 {
		return
	}
	c := m.Config.Layer(i)
	t := m.ropeTable(i, n, pos)
	w := len(x) / n
	forRows(n, w, func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			t.rotate(x[r*w:(r+1)*w], pos(r), c.RopeStyle)
		}
	})
}

// ropeTable is the rotary table of layer i covering the positions of rows
// 0…n-1 (n ≥ 1).
func (m *Model) ropeTable(i, n int, pos func(r int) int) ropeTable {
	lo, hi := pos(0), pos(0)
	for r := 1; r < n; r++ {
		lo, hi = min(lo, pos(r)), max(hi, pos(r))
	}
	return cachedRopeTable(m.Config.Layer(i), lo, hi+1)
}

// AttnOutput writes out [n, Dim] = att·Woᵀ (+ the output bias) for the
// attention outputs att [n, QDim]: the attention's contribution to the
// residual stream.
func (m *Model) AttnOutput(i int, out, att []float32, n int) {
	c := m.Config.Layer(i)
	m.projections(i).wo.mul(out, att, n, c.QDim(), c.Dim)
	if c.OutBias {
		addRows(out[:n*c.Dim], m.Layers[i].Bo)
	}
}

// MLPDelta writes out [n, Dim] = MLP(FFNNorm(h)) for the rows h [n, Dim]:
// the MLP's contribution to the residual stream (SwiGLU, down projection and
// its bias). out may not overlap h.
func (m *Model) MLPDelta(i int, out, h []float32, n int) {
	m.mlp(i, out, h, n, nil)
}

// mlp is MLPDelta, handing the MLP's linear inputs to tap.
func (m *Model) mlp(i int, out, h []float32, n int, tap Tap) {
	c := m.Config.Layer(i)
	s := getScratch()
	defer putScratch(s)
	xb := s.get(0, n*c.Dim)
	normRows(xb, h[:n*c.Dim], m.Layers[i].FFNNorm, c.NormEps)
	m.mlpNormed(i, out, xb, n, tap, s)
}

// mlpNormed is mlp from the normed rows xb [n, Dim], its other working
// buffers in s (buffer 0 may be xb's).
func (m *Model) mlpNormed(i int, out, xb []float32, n int, tap Tap, s *scratch) {
	c, l, w := m.Config.Layer(i), &m.Layers[i], m.projections(i)
	d, hid := c.Dim, c.HiddenDim
	tap.at(SiteMLPIn, xb, d)
	hb, hb2 := s.get(1, n*hid), s.get(2, n*hid)
	w.w1.mul(hb, xb, n, d, hid)
	w.w3.mul(hb2, xb, n, d, hid)
	swiGLU(hb, hb2)
	tap.at(SiteDownIn, hb, hid)
	w.w2.mul(out, hb, n, hid, d)
	if c.OutBias {
		addRows(out[:n*d], l.B2)
	}
}

// ropeTable holds cos and sin of positions lo…hi-1.
type ropeTable struct {
	lo, half int
	cos, sin []float32
	freqs    []float32 // the frequencies it was made from (its key)
}

// lastRope is the most recently made table. A prefill rotates the queries
// and keys of every block over the same positions with the same
// frequencies; a float64 cos and sin per position and pair cost several
// percent of a block when remade for each. Tables are never modified once
// made, so sharing one between goroutines is safe.
var lastRope atomic.Pointer[ropeTable]

// cachedRopeTable is newRopeTable(c, lo, hi), reusing the last table made
// when its frequencies (what Config says of the rotation) and positions
// cover the request.
func cachedRopeTable(c Config, lo, hi int) ropeTable {
	freqs := RopeFreqs(c)
	if t := lastRope.Load(); t != nil && t.lo <= lo && hi <= t.lo+len(t.cos)/max(t.half, 1) && slices.Equal(t.freqs, freqs) {
		return *t
	}
	t := newRopeTable(c, lo, hi)
	lastRope.Store(&t)
	return t
}

func newRopeTable(c Config, lo, hi int) ropeTable {
	freqs := RopeFreqs(c)
	half := c.HeadDim() / 2
	t := ropeTable{lo: lo, half: half, cos: make([]float32, (hi-lo)*half), sin: make([]float32, (hi-lo)*half), freqs: freqs}
	// A cos and a sin cost some tens of additions: weigh a position so.
	forRows(hi-lo, 32*half, func(p0, p1 int) {
		for p := lo + p0; p < lo+p1; p++ {
			o := (p - lo) * half
			ropeAt(t.cos[o:o+half], t.sin[o:o+half], freqs, p)
		}
	})
	return t
}

func (t ropeTable) rotate(vec []float32, pos int, style RopeStyle) {
	o := (pos - t.lo) * t.half
	rotate(vec, t.cos[o:o+t.half], t.sin[o:o+t.half], style)
}
