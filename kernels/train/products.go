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
	dw(dw, dy, x []float32, m, n, k int)
}

// exactProducts use tensor.MatMul, llama's own kernel, so the training
// forward reproduces the inference prefill bit for bit, and MatMulDX and
// MatMulDW for the backward pass. Pure Go: a few GFLOP/s.
type exactProducts struct{}

func (exactProducts) forward(y, x, w []float32, m, k, n int) { tensor.MatMul(y, x, w, m, k, n) }
func (exactProducts) dx(dx, dy, w []float32, m, n, k int)    { MatMulDX(dx, dy, w, m, n, k) }
func (exactProducts) dw(dw, dy, x []float32, m, n, k int)    { MatMulDW(dw, dy, x, m, n, k) }

// gemmChunk bounds, in floats, the slices gemmProducts works on.
const gemmChunk = 1 << 18

// gemmProducts run every product through kernels/gemm's packed assembly
// kernels (tens of GFLOP/s). dX = dY·W reads W as it is stored, [n×k]
// (gemm.MatMulNN); dW goes through transposed copies of dY and X, since
// gemm contracts over the last dimension of both operands. Both work in
// slices along the contraction or output dimension so that the scratch
// stays bounded whatever the vocabulary: dX accumulates the products of
// successive row slices of W in order, dW is filled one slice of its rows
// at a time. Results differ from exactProducts in rounding (another
// summation order), not in determinism.
type gemmProducts struct {
	t1  []float32 // a transposed slice of dY's columns (or of W's rows for few rows), ≤ chunk floats
	t2  []float32 // Xᵀ, [k × m], or a slice's dX product
	tmp []float32 // a product before it is added in, or dY's columns gathered
	// chunk is the size of t1 (and tmp's floor): gemmChunk, or more when one
	// row of the widest operand needs it, or when a block's whole projection
	// fits in fewer floats than the model's weights already take. It also
	// sets dX's slicing, and with it the order dX's terms are summed in.
	chunk int
}

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

// dx: dX[m×k] += Σ over slices J of W's rows, in order: dY[:, J]·W[J, :],
// with dY[:, J] gathered [m×|J|] and W[J, :] read in place, [|J|×k]
// row-major, which is what gemm.MatMulNN takes (bit for bit gemm.MatMul
// on W[J, :]ᵀ, without making it) above gemm.MatVecRows rows.
func (g *gemmProducts) dx(dx, dy, w []float32, m, n, k int) {
	step := max(1, g.chunk/max(k, m))
	for j0 := 0; j0 < n; j0 += step {
		j1 := min(j0+step, n)
		c := j1 - j0
		dyJ := g.tmp[:m*c]
		if c == n {
			dyJ = dy[:m*n]
		} else {
			for i := range m {
				copy(dyJ[i*c:(i+1)*c], dy[i*n+j0:i*n+j1])
			}
		}
		out := g.t2[:m*k]
		if m <= gemm.MatVecRows {
			// gemm's matrix-vector path reads W[J, :]ᵀ: made here in
			// scratch (MatMulNN would allocate it), the same bits.
			wt := g.t1[:k*c]
			parTranspose(wt, c, w[j0*k:], k, c, k)
			gemm.MatMul(out, dyJ, wt, m, c, k)
		} else {
			gemm.MatMulNN(out, dyJ, w[j0*k:j1*k], m, c, k)
		}
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
