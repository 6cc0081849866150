package slicegpt

import (
	"context"
	"fmt"
	"slices"

	"gonum.org/v1/gonum/mat"

	"lrmc/kernels/llama"
)

// DefaultRoundInterval is the reference's --round-interval: d' is rounded
// down to a multiple of it (multiples of 8 suit SIMD widths and GEMM
// panels).
const DefaultRoundInterval = 8

// Width returns the sliced width for a dense width d and slicing ratio s as
// the reference's run_slicegpt.py computes it: ⌊(1−s)·d⌋ (Python's
// int((1 - s) * d), evaluated in float64 and truncated), then rounded down
// to a multiple of round. For d = 64: s = 0.2 gives ⌊51.2⌋ = 51 → 48,
// s = 0.25 gives 48, s = 0.4 gives ⌊38.4⌋ = 38 → 32. The kept fraction of the
// width is therefore at most 1−s, and the sliced model is a little smaller
// than the ratio alone says.
func Width(d int, s float64, round int) (int, error) {
	if !(s >= 0 && s < 1) {
		return 0, fmt.Errorf("slicegpt: slicing ratio %g outside [0, 1)", s)
	}
	if round < 1 {
		return 0, fmt.Errorf("slicegpt: round interval %d, must be at least 1", round)
	}
	w := int((1 - s) * float64(d))
	w -= w % round
	if w < 1 {
		return 0, fmt.Errorf("slicegpt: slicing ratio %g leaves no dimension of the %d-wide residual stream "+
			"(⌊(1−s)·d⌋ rounded down to a multiple of %d is 0)", s, d, round)
	}
	return w, nil
}

// Options are the slicing parameters.
type Options struct {
	// Sparsity is the slicing ratio s in [0, 1): the fraction of the
	// residual width removed.
	Sparsity float64
	// RoundInterval rounds the sliced width down to a multiple of it; 0
	// means DefaultRoundInterval.
	RoundInterval int
	// Progress, when set, is told after each pass over the calibration
	// windows how many of the total passes are done (three per block).
	Progress func(done, total int)
}

// Stats describes a slicing: the fraction of each PCA's calibration
// variance (Σ of the kept eigenvalues over Σ of all, undamped) that the kept
// coordinates carry.
type Stats struct {
	Embedding float64   // the first block's input
	Attn      []float64 // per block, the residual after attention
	MLP       []float64 // per block, the block's output (1 for the last: the head is not sliced)
}

// chunkTokens bounds the tokens run through a block at once during
// calibration: ⌈chunkTokens/seqLen⌉ windows, at least one. It is fixed, so
// the float64 sums (and the results) depend on the windows alone.
const chunkTokens = 4096

// InputCovariance accumulates the covariance of the first block's input
// (the token embeddings) over the calibration windows, the one statistic of
// SliceGPT that does not depend on the slicing ratio: every later one is
// measured on the output of blocks already sliced. tokens holds whole
// windows of seqLen tokens.
func InputCovariance(ctx context.Context, m *llama.Model, tokens []int32, seqLen int) (*Cov, error) {
	if err := checkCalibration(m, tokens, seqLen); err != nil {
		return nil, err
	}
	c := NewCov(m.Config.Dim)
	step := chunkWindows(seqLen) * seqLen
	for r := 0; r < len(tokens); r += step {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c.Add(m.Embed(tokens[r:min(r+step, len(tokens))], nil))
	}
	return c, nil
}

func chunkWindows(seqLen int) int { return max(1, chunkTokens/seqLen) }

func checkCalibration(m *llama.Model, tokens []int32, seqLen int) error {
	if seqLen < 1 || len(tokens) == 0 || len(tokens)%seqLen != 0 {
		return fmt.Errorf("slicegpt: calibration needs whole windows: %d tokens in windows of %d", len(tokens), seqLen)
	}
	for i, tok := range tokens {
		if tok < 0 || int(tok) >= m.Config.Vocab {
			return fmt.Errorf("slicegpt: calibration token %d at index %d outside the model's vocabulary [0, %d)",
				tok, i, m.Config.Vocab)
		}
	}
	return nil
}

// basisFunc turns a covariance into the rotation whose leading columns are
// kept; PCA in production, a random rotation in the tests' baseline.
type basisFunc func(c *Cov) (values []float64, q *mat.Dense, err error)

// Slice rotates and slices m with calibration windows tokens (whole
// windows of seqLen tokens), as the reference's rotate_and_slice_sequential
// with a constant slicing scheduler, PCA orientation and the head not
// sliced:
//
//   - Folding: every RMSNorm scale multiplies the columns of the layers
//     that read its output (the attention norm's Wq, Wk, Wv; the MLP
//     norm's W1, W3; the final norm's classifier); the norms become
//     scale-free RMSN dividing by the dense width.
//   - The embeddings are rotated by the PCA Q₀ of the first block's input
//     (in0, from InputCovariance; nil computes it) and sliced to d'.
//   - Block by block, sequentially through the blocks already sliced: the
//     sliced input feeds the block (Wq, Wk, Wv rotated by the previous Q
//     and sliced); the residual after attention, mapped back to the dense
//     basis, gives the PCA Q_a that rotates and slices Wo's rows and W1, W3's
//     columns; the block's output through the sliced attention and MLP
//     gives Q_m for W2's rows and the next block. The residual connections
//     carry the shortcuts Q_prevᵀ·Q_a and Q_aᵀ·Q_m, sliced to the widths
//     they connect. The last block's output keeps the full width and the
//     classifier is rotated by its Q_m, unsliced.
//
// All rotations and products of weights run in float64 and are rounded to
// float32 once. A 16-bit model is widened first. The result is
// deterministic: the same model and windows give bit-identical weights.
func Slice(ctx context.Context, m *llama.Model, tokens []int32, seqLen int, in0 *Cov, opt Options) (*Model, *Stats, error) {
	return slice(ctx, m, tokens, seqLen, in0, opt, (*Cov).PCA)
}

func slice(ctx context.Context, m *llama.Model, tokens []int32, seqLen int, in0 *Cov, opt Options, basis basisFunc) (*Model, *Stats, error) {
	if m.Half != nil {
		m = m.Float32()
	}
	if err := m.Validate(); err != nil {
		return nil, nil, fmt.Errorf("slicegpt: %w", err)
	}
	c := m.Config
	if c.Layers < 1 {
		return nil, nil, fmt.Errorf("slicegpt: the model has no blocks to slice")
	}
	round := opt.RoundInterval
	if round == 0 {
		round = DefaultRoundInterval
	}
	d, qd, kvd, hid, vocab := c.Dim, c.QDim(), c.KVDim(), c.HiddenDim, c.Vocab
	dp, err := Width(d, opt.Sparsity, round)
	if err != nil {
		return nil, nil, err
	}
	if err := checkCalibration(m, tokens, seqLen); err != nil {
		return nil, nil, err
	}
	if in0 == nil {
		if in0, err = InputCovariance(ctx, m, tokens, seqLen); err != nil {
			return nil, nil, err
		}
	} else if in0.Dim != d {
		return nil, nil, fmt.Errorf("slicegpt: input covariance is %d wide, the model %d", in0.Dim, d)
	}
	windows := len(tokens) / seqLen
	per := chunkWindows(seqLen)
	total, done := 3*c.Layers, 0
	pass := func() {
		done++
		if opt.Progress != nil {
			opt.Progress(done, total)
		}
	}
	// chunks calls fn on every run of up to per windows: the row offset
	// of its first token, its windows and their tokens.
	chunks := func(fn func(r0, b int, toks []int32) error) error {
		for w := 0; w < windows; w += per {
			if err := ctx.Err(); err != nil {
				return err
			}
			b := min(per, windows-w)
			if err := fn(w*seqLen, b, tokens[w*seqLen:(w+b)*seqLen]); err != nil {
				return err
			}
		}
		return nil
	}

	stats := &Stats{}
	vals, q, err := basis(in0)
	if err != nil {
		return nil, nil, err
	}
	stats.Embedding = kept(vals, dp)
	sm := &Model{Config: c, Width: dp, Sparsity: opt.Sparsity, Layers: make([]Layer, c.Layers)}
	sm.Embedding = rotateIn(m.Embedding, vocab, d, nil, q, dp)
	sm.Layers[0].In = dp // Embed reads the width from the first block
	n := len(tokens)
	x := make([]float32, n*dp)
	if err := chunks(func(r0, _ int, toks []int32) error {
		copy(x[r0*dp:], sm.Embed(toks))
		return nil
	}); err != nil {
		return nil, nil, err
	}

	in := dp
	for i := range c.Layers {
		dl, l := &m.Layers[i], &sm.Layers[i]
		l.In = in
		l.Wq = rotateIn(dl.Wq, qd, d, dl.AttnNorm, q, in)
		l.Wk = rotateIn(dl.Wk, kvd, d, dl.AttnNorm, q, in)
		l.Wv = rotateIn(dl.Wv, kvd, d, dl.AttnNorm, q, in)
		l.Bq, l.Bk, l.Bv = slices.Clone(dl.Bq), slices.Clone(dl.Bk), slices.Clone(dl.Bv)
		l.QNorm, l.KNorm = slices.Clone(dl.QNorm), slices.Clone(dl.KNorm)

		// The residual after attention in the dense basis: the sliced
		// input mapped back by Q_prev's kept columns, plus the unrotated
		// Wo's output.
		back := columns(q, in) // [d, in]
		covA := NewCov(d)
		if err := chunks(func(r0, b int, _ []int32) error {
			xc := x[r0*in : (r0+b*seqLen)*in]
			att := l.attention(c, xc, b, seqLen)
			unrotated := Layer{In: in, Mid: d, Wo: dl.Wo, AttnShortcut: back}
			covA.Add(unrotated.attnResidual(c, xc, att, b*seqLen))
			return nil
		}); err != nil {
			return nil, nil, err
		}
		pass()
		vals, qa, err := basis(covA)
		if err != nil {
			return nil, nil, fmt.Errorf("slicegpt: block %d attention output: %w", i, err)
		}
		stats.Attn = append(stats.Attn, kept(vals, dp))
		l.Mid = dp
		l.Wo = rotateOut(dl.Wo, d, qd, qa, dp)
		l.AttnShortcut = shortcut(qa, dp, q, in)
		l.W1 = rotateIn(dl.W1, hid, d, dl.FFNNorm, qa, dp)
		l.W3 = rotateIn(dl.W3, hid, d, dl.FFNNorm, qa, dp)

		// The block's output in the dense basis, through the sliced
		// attention: the MLP's input kept in h for the last pass.
		backA := columns(qa, dp) // [d, dp]
		h := make([]float32, n*dp)
		covM := NewCov(d)
		if err := chunks(func(r0, b int, _ []int32) error {
			rows := b * seqLen
			xc := x[r0*in : (r0+rows)*in]
			hc := l.attnResidual(c, xc, l.attention(c, xc, b, seqLen), rows)
			copy(h[r0*dp:], hc)
			g := l.mlpHidden(c, hc, rows)
			unrotated := Layer{Mid: dp, Out: d, W2: dl.W2, MLPShortcut: backA}
			covM.Add(unrotated.mlpResidual(c, hc, g, rows))
			return nil
		}); err != nil {
			return nil, nil, err
		}
		pass()
		vals, qm, err := basis(covM)
		if err != nil {
			return nil, nil, fmt.Errorf("slicegpt: block %d output: %w", i, err)
		}
		out := dp
		if i == c.Layers-1 {
			out = d // the head is not sliced
		}
		stats.MLP = append(stats.MLP, kept(vals, out))
		l.Out = out
		l.W2 = rotateOut(dl.W2, d, hid, qm, out)
		l.MLPShortcut = shortcut(qm, out, qa, dp)

		// The next block's input: this block's sliced output.
		next := make([]float32, n*out)
		if err := chunks(func(r0, b int, _ []int32) error {
			rows := b * seqLen
			hc := h[r0*dp : (r0+rows)*dp]
			copy(next[r0*out:], l.mlpResidual(c, hc, l.mlpHidden(c, hc, rows), rows))
			return nil
		}); err != nil {
			return nil, nil, err
		}
		pass()
		x, q, in = next, qm, out
	}
	sm.Classifier = rotateIn(m.Classifier, vocab, d, m.FinalNorm, q, in)
	if err := sm.Validate(); err != nil {
		return nil, nil, err
	}
	return sm, stats, nil
}

// kept is the fraction of Σ values carried by the first k.
func kept(values []float64, k int) float64 {
	var all, top float64
	for i, v := range values {
		all += v
		if i < k {
			top += v
		}
	}
	if all == 0 {
		return 1
	}
	return top / all
}

// rowBlock bounds the rows of a weight widened to float64 at once.
const rowBlock = 4096

// rotateIn returns (W·diag(scale))·Q[:, :k] rounded to float32, [rows, k],
// for W [rows, d] (scale nil: no scaling): a layer reading the rotated
// residual, with the norm that precedes it folded in.
func rotateIn(w []float32, rows, d int, scale []float32, q *mat.Dense, k int) []float32 {
	out := make([]float32, rows*k)
	qk := q.Slice(0, d, 0, k)
	for r0 := 0; r0 < rows; r0 += rowBlock {
		nr := min(rowBlock, rows-r0)
		blk := make([]float64, nr*d)
		for r := range nr {
			for j := range d {
				v := float64(w[(r0+r)*d+j])
				if scale != nil {
					v *= float64(scale[j])
				}
				blk[r*d+j] = v
			}
		}
		var p mat.Dense
		p.Mul(mat.NewDense(nr, d, blk), qk)
		round32(out[r0*k:(r0+nr)*k], &p)
	}
	return out
}

// rotateOut returns Q[:, :k]ᵀ·W rounded to float32, [k, cols], for W
// [d, cols]: a layer writing into the rotated residual.
func rotateOut(w []float32, d, cols int, q *mat.Dense, k int) []float32 {
	w64 := make([]float64, len(w))
	for i, v := range w {
		w64[i] = float64(v)
	}
	var p mat.Dense
	p.Mul(q.Slice(0, d, 0, k).T(), mat.NewDense(d, cols, w64))
	out := make([]float32, k*cols)
	round32(out, &p)
	return out
}

// shortcut returns the residual connection from a stream rotated by
// Q_from (first kin coordinates kept) to one rotated by Q_to (first kout
// kept), as a linear layer: Q_to[:, :kout]ᵀ·Q_from[:, :kin], [kout, kin].
func shortcut(to *mat.Dense, kout int, from *mat.Dense, kin int) []float32 {
	d, _ := to.Dims()
	var p mat.Dense
	p.Mul(to.Slice(0, d, 0, kout).T(), from.Slice(0, d, 0, kin))
	out := make([]float32, kout*kin)
	round32(out, &p)
	return out
}

// columns returns Q[:, :k] as float32 [d, k]: as a linear layer it maps a
// stream rotated by Q (k coordinates kept) back to the dense basis.
func columns(q *mat.Dense, k int) []float32 {
	d, _ := q.Dims()
	out := make([]float32, d*k)
	for i := range d {
		for j := range k {
			out[i*k+j] = float32(q.At(i, j))
		}
	}
	return out
}

// round32 writes a's elements, row-major, rounded to float32 into dst.
func round32(dst []float32, a *mat.Dense) {
	r, c := a.Dims()
	for i := range r {
		row := a.RawRowView(i)
		for j := range c {
			dst[i*c+j] = float32(row[j])
		}
	}
}
