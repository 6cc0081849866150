package train

import (
	"lrmc/kernels/gemm"
	"lrmc/kernels/tensor"
)

// products are the three matrix products of a linear layer y = x·Wᵀ, W
// [n×k], over m rows: the forward product, dX += dY·W and dW += dYᵀ·X. Both
// implementations are deterministic and give the same bits for any
// GOMAXPROCS.
type products interface {
	forward(y, x, w []float32, m, k, n int)
	dx(dx, dy, w []float32, m, n, k int)
	// dxFrozen is dx for a w that never changes while the Net lives (a
	// frozen base weight): it may keep what it derives from w.
	dxFrozen(dx, dy, w []float32, m, n, k int)
	dw(dw, dy, x []float32, m, n, k int)
}

// exactProducts use tensor.MatMul, llama's own kernel, so the training
// forward reproduces the inference prefill bit for bit, and MatMulDX and
// MatMulDW for the backward pass. Pure Go: a few GFLOP/s.
type exactProducts struct{}

func (exactProducts) forward(y, x, w []float32, m, k, n int)      { tensor.MatMul(y, x, w, m, k, n) }
func (exactProducts) dx(dx, dy, w []float32, m, n, k int)         { MatMulDX(dx, dy, w, m, n, k) }
func (exactProducts) dw(dw, dy, x []float32, m, n, k int)         { MatMulDW(dw, dy, x, m, n, k) }
func (p exactProducts) dxFrozen(dx, dy, w []float32, m, n, k int) { p.dx(dx, dy, w, m, n, k) }

// gemmChunk bounds, in floats, the transposed slices gemmProducts works on.
const gemmChunk = 1 << 18

// gemmProducts run every product through kernels/gemm's packed assembly
// kernels (tens of GFLOP/s). gemm contracts over the last dimension of both
// operands (out = x·wᵀ), so the backward products go through transposed
// copies, taken in slices along the output or contraction dimension so that
// the scratch stays bounded whatever the vocabulary: dX accumulates the
// products of successive row slices of W in order, dW is filled one slice of
// its rows at a time. Results differ from exactProducts in rounding (another
// summation order), not in determinism.
type gemmProducts struct {
	t1  []float32 // a transposed slice: W rows or dY columns, ≤ chunk floats
	t2  []float32 // Xᵀ, [k × m]
	tmp []float32 // a product before it is added in
	// chunk is the size of t1 (and tmp's floor): gemmChunk, or more when one
	// row of the widest operand needs it, or when a block's whole projection
	// fits in fewer floats than the model's weights already take.
	chunk int
	// frozen, when not nil (WithTransposeCache), keeps the transposed row
	// slices of each frozen weight, keyed by its first element, laid out as
	// dx takes them (slice J at J's first row times k): dxFrozen then skips
	// the transposes, which took a fifth of a Qwen3-0.6B LoRA step.
	frozen map[frozenKey][]float32
	// frozenBytes is what frozen holds.
	frozenBytes int64
}

// frozenKey names a frozen weight's transposed slices: its first element,
// its shape and the slicing, which depends on the rows of dY.
type frozenKey struct {
	w          *float32
	n, k, step int
}

// dxStep is how many of W's rows one dx slice takes.
func (g *gemmProducts) dxStep(m, k int) int { return max(1, g.chunk/max(k, m)) }

// newGEMMProducts sizes the scratch for products with at most rows rows of
// width at most width (the k of any product, and the m of dW). whole is
// the chunk that takes every block projection's dX and dW in one slice:
// one product over the full contraction and one add, instead of a pass
// over dX per slice (which cost Qwen3-0.6B-sized blocks a dozen each).
func newGEMMProducts(rows, width, whole int, alloc func(int) []float32) *gemmProducts {
	chunk := max(gemmChunk, rows, width, whole)
	return &gemmProducts{t1: alloc(chunk), t2: alloc(rows * width), tmp: alloc(max(chunk, rows*width)), chunk: chunk}
}

func (g *gemmProducts) forward(y, x, w []float32, m, k, n int) { gemm.MatMul(y, x, w, m, k, n) }

// dx: dX[m×k] += Σ over slices J of W's rows: dY[:, J]·W[J, :], with
// W[J, :]ᵀ [k×|J|] and dY[:, J] gathered [m×|J|] so gemm sees x·wᵀ.
func (g *gemmProducts) dx(dx, dy, w []float32, m, n, k int) {
	g.dxSlices(dx, dy, m, n, k, func(j0, c int) []float32 {
		wt := g.t1[:k*c] // W[J,:]ᵀ
		parTranspose(wt, c, w[j0*k:], k, c, k)
		return wt
	})
}

// dxFrozen is dx with each W[J,:]ᵀ transposed once, at the first call for
// w, and kept: the same slices, the same products, the same bits.
func (g *gemmProducts) dxFrozen(dx, dy, w []float32, m, n, k int) {
	if g.frozen == nil {
		g.dx(dx, dy, w, m, n, k)
		return
	}
	key := frozenKey{&w[0], n, k, g.dxStep(m, k)}
	wts, ok := g.frozen[key]
	if ok {
		g.dxSlices(dx, dy, m, n, k, func(j0, c int) []float32 { return wts[j0*k : j0*k+k*c] })
		return
	}
	wts = make([]float32, n*k)
	g.frozenBytes += 4 * int64(n*k)
	g.frozen[key] = wts
	g.dxSlices(dx, dy, m, n, k, func(j0, c int) []float32 {
		wt := wts[j0*k : j0*k+k*c]
		parTranspose(wt, c, w[j0*k:], k, c, k)
		return wt
	})
}

// dxSlices runs dx's slices of W's rows, in order, taking W[J,:]ᵀ [k×|J|]
// from wt.
func (g *gemmProducts) dxSlices(dx, dy []float32, m, n, k int, wt func(j0, c int) []float32) {
	step := g.dxStep(m, k)
	for j0 := 0; j0 < n; j0 += step {
		j1 := min(j0+step, n)
		c := j1 - j0
		wJ := wt(j0, c)
		dyJ := g.tmp[:m*c]
		if c == n {
			dyJ = dy[:m*n]
		} else {
			for i := range m {
				copy(dyJ[i*c:(i+1)*c], dy[i*n+j0:i*n+j1])
			}
		}
		out := g.t2[:m*k]
		gemm.MatMul(out, dyJ, wJ, m, c, k)
		addRows(dx[:m*k], out)
	}
}

// dw: dW[J, :] += dY[:, J]ᵀ·X for slices J of dW's rows, with dY[:, J]ᵀ
// [|J|×m] and Xᵀ [k×m].
func (g *gemmProducts) dw(dw, dy, x []float32, m, n, k int) {
	xt := g.t2[:k*m]
	parTranspose(xt, m, x, k, m, k)
	step := max(1, g.chunk/max(k, m))
	for j0 := 0; j0 < n; j0 += step {
		j1 := min(j0+step, n)
		c := j1 - j0
		dyt := g.t1[:c*m]
		parTranspose(dyt, m, dy[j0:], n, m, c)
		out := g.tmp[:c*k]
		gemm.MatMul(out, dyt, xt, c, m, k)
		addRows(dw[j0*k:j1*k], out)
	}
}

// parTranspose is transpose with the source's columns (the destination's
// rows) split over threads in whole tiles: a copy, the same bits however
// it is split, which ran on one thread while the other cores waited.
func parTranspose(dst []float32, ds int, src []float32, ss, r, c int) {
	const tile = 32
	tiles := (c + tile - 1) / tile
	tensor.Parallel(tiles, max(1, rowsGrain/max(1, r*tile)), func(lo, hi int) {
		j0, j1 := lo*tile, min(hi*tile, c)
		transpose(dst[j0*ds:], ds, src[j0:], ss, r, j1-j0)
	})
}

// transpose writes the transpose of the r×c matrix in src (row stride ss)
// into dst (row stride ds), in 32×32 tiles so that both sides stay in cache,
// and within a tile four source rows at a time, so that each destination
// row receives four adjacent values per store group instead of one.
func transpose(dst []float32, ds int, src []float32, ss, r, c int) {
	const tile = 32
	for i0 := 0; i0 < r; i0 += tile {
		i1 := min(i0+tile, r)
		for j0 := 0; j0 < c; j0 += tile {
			j1 := min(j0+tile, c)
			i := i0
			for ; i+4 <= i1; i += 4 {
				s0 := src[i*ss+j0 : i*ss+j1]
				s1 := src[(i+1)*ss+j0 : (i+1)*ss+j1][:len(s0)]
				s2 := src[(i+2)*ss+j0 : (i+2)*ss+j1][:len(s0)]
				s3 := src[(i+3)*ss+j0 : (i+3)*ss+j1][:len(s0)]
				for j, v := range s0 {
					d := dst[(j0+j)*ds+i : (j0+j)*ds+i+4 : (j0+j)*ds+i+4]
					d[0], d[1], d[2], d[3] = v, s1[j], s2[j], s3[j]
				}
			}
			for ; i < i1; i++ {
				row := src[i*ss+j0 : i*ss+j1]
				for j, v := range row {
					dst[(j0+j)*ds+i] = v
				}
			}
		}
	}
}
