package gemm

import "runtime"

// MatVecRows is the most rows of x that MatMul sends down its
// matrix-vector path, which reads whole rows of the [n×k] form: there
// MatMulNN allocates wᵀ after all, so a caller that repeats such products
// keeps the transpose in its own scratch and calls MatMul.
const MatVecRows = gemvMaxRows

// MatMulNN computes out[m×n] = x[m×k]·w[k×n] for w stored [k×n] row-major
// (not transposed, as a backward pass's dX = dY·W reads a [out×in] weight),
// using up to GOMAXPROCS threads. The result is bit for bit MatMul(out, x,
// wᵀ) with wᵀ the [n×k] transpose, with all of MatMul's guarantees, but no
// transpose is made for m above 16: the packed path's nr-wide, k-major
// panels of w are plain copies of row pieces of this layout, where from
// [n×k] they are a transpose.
func MatMulNN(out, x, w []float32, m, k, n int) {
	MatMulNNThreads(out, x, w, m, k, n, runtime.GOMAXPROCS(0))
}

// MatMulNNThreads is MatMulNN with an explicit number of threads (values
// below 1 mean 1). The result does not depend on threads.
func MatMulNNThreads(out, x, w []float32, m, k, n, threads int) {
	if trivial(out, x, len(w), m, k, n) {
		return
	}
	out = out[:m*n]
	im := current()
	w = w[:k*n]
	threads = max(1, min(threads, 2*m*n*k/minFlopsPerThread))
	if m <= MatVecRows {
		// The matrix-vector path reads whole rows of the [n×k] form.
		wt := make([]float32, n*k)
		for p := range k {
			for j, v := range w[p*n : (p+1)*n] {
				wt[j*k+p] = v
			}
		}
		matMul(im, wkernels[float32]{dots: im.dots}, out, x[:m*k], wt, m, k, n, threads)
		return
	}
	packed(im, out, x[:m*k], m, k, n, threads, func(ws *workspace, j, rows, pc, kc int) {
		packNN(ws.b, w, n, j, rows, pc, kc, im.nr)
	})
}

// packNN packs columns [j, j+rows) of rows [pc, pc+kc) of w [k×ld] into
// nr-wide k-major micro-panels, the layout packPanels gives the transpose:
// panel q holds, for p < kc, w[pc+p][j+q·nr+i] at q·nr·kc + p·nr + i, zero
// past the last column.
func packNN(dst, w []float32, ld, j, rows, pc, kc, nr int) {
	for q := 0; q*nr < rows; q++ {
		panel := dst[q*nr*kc : (q+1)*nr*kc]
		c0 := j + q*nr
		cols := min(nr, rows-q*nr)
		for p := range kc {
			row := w[(pc+p)*ld+c0:][:cols]
			copy(panel[p*nr:p*nr+cols], row)
			clear(panel[p*nr+cols : (p+1)*nr])
		}
	}
}
