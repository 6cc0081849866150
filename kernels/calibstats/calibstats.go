// Package calibstats gathers the input statistics of a transformer block's
// linear layers over calibration tokens: per input channel the count, Σx and
// Σx² (in float64), and optionally the Gram matrix XᵀX that SparseGPT turns
// into its Hessian. Wanda scores with ‖X_j‖₂ = √Σx², Wanda-sp and FLAP with
// the mean and variance, SparseGPT with H = 2/n·XᵀX; all of them read the
// same four sites of a block (llama.Site), so one pass of the block's
// forward, through llama.Model.BlockTap, serves every method and ratio.
//
// Sums run in a fixed order, token by token in the order of the
// calibration windows, whatever the batch size or the number of threads,
// so the same tokens give bit-identical statistics on every run.
package calibstats

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"

	"lrmc/kernels/llama"
	"lrmc/kernels/tensor"
)

// DefaultMaxHessianBytes bounds the memory of one block's Gram matrices
// when Options.MaxHessianBytes is 0: 4 GiB, e.g. a Llama-3-8B block
// (4096² ×3 + 14336², 8 bytes each, 2 GiB) fits, while a model whose block
// would need more is refused before anything is allocated.
const DefaultMaxHessianBytes int64 = 4 << 30

// Options says what Collect gathers.
type Options struct {
	// Sites are the sites to gather, each at most once; nil means all four.
	Sites []llama.Site
	// Hessian adds XᵀX at every site (dim² float64 each).
	Hessian bool
	// MaxHessianBytes bounds the Gram matrices' memory per block; 0 means
	// DefaultMaxHessianBytes.
	MaxHessianBytes int64
}

// Site holds the statistics of one site's input over the tokens seen.
type Site struct {
	Site      llama.Site
	Width     int       // input channels
	Tokens    int64     // rows of X
	Sequences int64     // calibration windows the tokens came in
	Sum       []float64 // [Width] Σ_t x_tj
	SumSq     []float64 // [Width] Σ_t x_tj²
	// Gram is XᵀX, [Width × Width] row-major and symmetric, or nil when the
	// Hessian was not asked for.
	Gram []float64
}

// Layer holds the statistics of one block's sites, in the order of
// llama.Site.
type Layer struct {
	Layer int
	Sites []Site
}

// NewSite returns empty statistics of a site of the given width.
func NewSite(s llama.Site, width int, hessian bool) *Site {
	st := &Site{Site: s, Width: width, Sum: make([]float64, width), SumSq: make([]float64, width)}
	if hessian {
		st.Gram = make([]float64, width*width)
	}
	return st
}

// Add accumulates X, [rows × Width] row-major, that came from seqs
// calibration windows. Every sum is carried in float64 and grows one token
// at a time in row order (the Gram's rows are spread over threads, never a
// single entry's sum), so the result does not depend on how the tokens are
// split into calls or on the number of threads. A non-finite value is an
// error naming its site, row and channel.
func (s *Site) Add(x []float32, seqs int) error {
	w := s.Width
	if w < 1 || len(x)%w != 0 {
		return fmt.Errorf("calibration statistics: %s: %d values are not whole rows of width %d", s.Site, len(x), w)
	}
	rows := len(x) / w
	// Threads take ranges of channels, each walking every row in order, so
	// each channel's sums grow token by token as in one loop. The Gram
	// needs X transposed (xt, so the inner loop of each entry walks two
	// contiguous rows; float32·float32 is exact in float64), written in the
	// same pass.
	var xt []float64
	if s.Gram != nil {
		xt = make([]float64, w*rows)
	}
	type bad struct{ r, j int }
	var mu sync.Mutex
	first := bad{rows, 0}
	tensor.Parallel(w, max(1, (1<<16)/max(rows, 1)), func(lo, hi int) {
		sum, sq := s.Sum[lo:hi], s.SumSq[lo:hi]
		for r := range rows {
			for k, v := range x[r*w+lo : r*w+hi] {
				f := float64(v)
				if math.IsNaN(f) || math.IsInf(f, 0) {
					// This range's first non-finite value in row-major
					// order; the earliest of the ranges' is the error.
					mu.Lock()
					if r < first.r || r == first.r && lo+k < first.j {
						first = bad{r, lo + k}
					}
					mu.Unlock()
					return
				}
				sum[k] += f
				sq[k] += f * f
				if xt != nil {
					xt[(lo+k)*rows+r] = f
				}
			}
		}
	})
	if first.r < rows {
		return fmt.Errorf("calibration statistics: %s: row %d channel %d is %v", s.Site, first.r, first.j, x[first.r*w+first.j])
	}
	if s.Gram != nil && rows > 0 {
		g := s.Gram
		// Rows of the Gram in pairs: spreading pairs over threads
		// changes which thread adds to an entry, never the order of its
		// sum.
		tensor.Parallel((w+1)/2, 4, func(lo, hi int) {
			for p := lo; p < hi; p++ {
				gramRows(g, xt, w, rows, 2*p)
			}
		})
		for i := range w {
			for j := i + 1; j < w; j++ {
				g[j*w+i] = g[i*w+j]
			}
		}
	}
	s.Tokens += int64(rows)
	s.Sequences += int64(seqs)
	return nil
}

// Norm returns ‖X_j‖₂ = √Σx² per channel, Wanda's input norm.
func (s *Site) Norm() []float64 {
	out := make([]float64, s.Width)
	for j, v := range s.SumSq {
		out[j] = math.Sqrt(v)
	}
	return out
}

// Mean returns Σx/n per channel (zeros before any token).
func (s *Site) Mean() []float64 {
	out := make([]float64, s.Width)
	if s.Tokens == 0 {
		return out
	}
	for j, v := range s.Sum {
		out[j] = v / float64(s.Tokens)
	}
	return out
}

// Variance returns the population variance Σx²/n − (Σx/n)² per channel,
// clamped at 0 against rounding (zeros before any token).
func (s *Site) Variance() []float64 {
	out := make([]float64, s.Width)
	if s.Tokens == 0 {
		return out
	}
	n := float64(s.Tokens)
	for j := range out {
		m := s.Sum[j] / n
		out[j] = max(0, s.SumSq[j]/n-m*m)
	}
	return out
}

// Hessian returns SparseGPT's H = 2/n·XᵀX with n the number of calibration
// windows, as its add_batch scales it (the pruning result does not depend
// on the scale: the dampening is relative to H's diagonal). It is an error
// when the Gram was not gathered or no window was seen.
func (s *Site) Hessian() ([]float64, error) {
	if s.Gram == nil {
		return nil, fmt.Errorf("calibration statistics: %s: XᵀX was not gathered (the statistics need hessian: true)", s.Site)
	}
	if s.Sequences == 0 {
		return nil, fmt.Errorf("calibration statistics: %s: no calibration window was seen", s.Site)
	}
	c := 2 / float64(s.Sequences)
	h := make([]float64, len(s.Gram))
	for i, v := range s.Gram {
		h[i] = c * v
	}
	return h, nil
}

// Site returns the statistics of site s, or an error naming the sites held.
func (l *Layer) Site(s llama.Site) (*Site, error) {
	for i := range l.Sites {
		if l.Sites[i].Site == s {
			return &l.Sites[i], nil
		}
	}
	held := make([]string, len(l.Sites))
	for i, st := range l.Sites {
		held[i] = st.Site.String()
	}
	return nil, fmt.Errorf("calibration statistics of block %d hold no %s (only %v)", l.Layer, s, held)
}

// sites returns o's sites, checked and in llama.Site order.
func (o Options) sites() ([]llama.Site, error) {
	if o.Sites == nil {
		return []llama.Site{llama.SiteAttnIn, llama.SiteOIn, llama.SiteMLPIn, llama.SiteDownIn}, nil
	}
	if len(o.Sites) == 0 {
		return nil, fmt.Errorf("calibration statistics: no site asked for")
	}
	out := slices.Clone(o.Sites)
	slices.Sort(out)
	for i, s := range out {
		if s < 0 || s >= llama.NumSites {
			return nil, fmt.Errorf("calibration statistics: site %d does not exist", int(s))
		}
		if i > 0 && out[i-1] == s {
			return nil, fmt.Errorf("calibration statistics: site %s asked for twice", s)
		}
	}
	return out, nil
}

// HessianBytes is the memory the Gram matrices of one block take under o
// in a model of configuration c (0 without the Hessian).
func HessianBytes(c llama.Config, o Options) (int64, error) {
	sites, err := o.sites()
	if err != nil || !o.Hessian {
		return 0, err
	}
	var n int64
	for _, s := range sites {
		w := int64(s.Width(c))
		n += w * w * 8
	}
	return n, nil
}

// Check refuses options whose Gram matrices would exceed the bound, with a
// message that says what they need and how to get under it.
func Check(c llama.Config, o Options) error {
	need, err := HessianBytes(c, o)
	if err != nil {
		return err
	}
	bound := o.MaxHessianBytes
	if bound == 0 {
		bound = DefaultMaxHessianBytes
	}
	if need > bound {
		return fmt.Errorf("calibration statistics: the XᵀX matrices of one block need %d bytes (dim %d, q %d, ffn %d; 8 bytes per entry), above the bound of %d bytes; raise the bound or gather fewer sites",
			need, c.Dim, c.QDim(), c.HiddenDim, bound)
	}
	return nil
}

// Batch is how many calibration windows go through the block at once: it
// bounds the activation buffers and paces progress; the statistics do not
// depend on it.
const Batch = 4

// Collect runs block layer of m over h, the hidden state entering it from
// samples windows of seqLen tokens ([samples·seqLen × Dim]; the dense
// prefix's captured state), and gathers the statistics o asks for at each
// site. progress, when not nil, is told the windows done.
func Collect(ctx context.Context, m *llama.Model, layer int, h []float32, samples, seqLen int, o Options, progress func(done, total int64)) (*Layer, error) {
	c := m.Config
	if layer < 0 || layer >= len(m.Layers) {
		return nil, fmt.Errorf("calibration statistics: block %d does not exist in a model of %d blocks", layer, len(m.Layers))
	}
	if samples < 1 || seqLen < 1 || len(h) != samples*seqLen*c.Dim {
		return nil, fmt.Errorf("calibration statistics: block %d input holds %d values, want %d windows × %d tokens × dim %d",
			layer, len(h), samples, seqLen, c.Dim)
	}
	if err := Check(c, o); err != nil {
		return nil, err
	}
	sites, err := o.sites()
	if err != nil {
		return nil, err
	}
	out := &Layer{Layer: layer, Sites: make([]Site, len(sites))}
	at := map[llama.Site]*Site{}
	for i, s := range sites {
		out.Sites[i] = *NewSite(s, s.Width(c), o.Hessian)
		at[s] = &out.Sites[i]
	}
	seq := seqLen * c.Dim
	for s := 0; s < samples; s += Batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b := min(Batch, samples-s)
		var tapErr error
		m.BlockTap(layer, h[s*seq:(s+b)*seq], b, seqLen, func(site llama.Site, x []float32, width int) {
			st := at[site]
			if st == nil || tapErr != nil {
				return
			}
			if width != st.Width {
				tapErr = fmt.Errorf("calibration statistics: block %d %s is %d wide, want %d", layer, site, width, st.Width)
				return
			}
			tapErr = st.Add(x, b)
		})
		if tapErr != nil {
			return nil, fmt.Errorf("block %d: %w", layer, tapErr)
		}
		if progress != nil {
			progress(int64(s+b), int64(samples))
		}
	}
	return out, nil
}

// gramRows adds to the upper triangle of g the entries of rows i and i+1
// (when i+1 < w) of XᵀX, for xt = Xᵀ [w × rows]. Each entry's sum runs
// over the tokens in order, starting from the entry's current value, so
// the result is the plain loop's, bit for bit; the 2×4 tile only shares
// the loads. (The products of two float32 values are exact in float64, so
// a fused multiply-add rounds them the same way.)
func gramRows(g, xt []float64, w, rows, i int) {
	a0 := xt[i*rows : (i+1)*rows]
	if i+1 >= w {
		for j := i; j < w; j++ {
			b := xt[j*rows : (j+1)*rows]
			acc := g[i*w+j]
			for r, av := range a0 {
				acc += av * b[r]
			}
			g[i*w+j] = acc
		}
		return
	}
	a1 := xt[(i+1)*rows : (i+2)*rows]
	g0, g1 := g[i*w:(i+1)*w], g[(i+1)*w:(i+2)*w]
	j := i
	for ; j+4 <= w; j += 4 {
		b0, b1, b2, b3 := xt[j*rows:(j+1)*rows], xt[(j+1)*rows:(j+2)*rows], xt[(j+2)*rows:(j+3)*rows], xt[(j+3)*rows:(j+4)*rows]
		b0, b1, b2, b3 = b0[:len(a0)], b1[:len(a0)], b2[:len(a0)], b3[:len(a0)]
		a1 := a1[:len(a0)]
		s00, s01, s02, s03 := g0[j], g0[j+1], g0[j+2], g0[j+3]
		// Row i+1's entry at column i = j is below the diagonal: it is
		// computed alongside (from 0) and dropped.
		var s10 float64
		if j > i {
			s10 = g1[j]
		}
		s11, s12, s13 := g1[j+1], g1[j+2], g1[j+3]
		for r, x0 := range a0 {
			x1 := a1[r]
			y0, y1, y2, y3 := b0[r], b1[r], b2[r], b3[r]
			s00 += x0 * y0
			s01 += x0 * y1
			s02 += x0 * y2
			s03 += x0 * y3
			s10 += x1 * y0
			s11 += x1 * y1
			s12 += x1 * y2
			s13 += x1 * y3
		}
		g0[j], g0[j+1], g0[j+2], g0[j+3] = s00, s01, s02, s03
		if j > i {
			g1[j] = s10
		}
		g1[j+1], g1[j+2], g1[j+3] = s11, s12, s13
	}
	for ; j < w; j++ {
		b := xt[j*rows : (j+1)*rows]
		for k, a := range [][]float64{a0, a1} {
			row := i + k
			if j < row {
				continue
			}
			acc := g[row*w+j]
			for r, av := range a {
				acc += av * b[r]
			}
			g[row*w+j] = acc
		}
	}
}
