package tensor

import (
	"fmt"

	"lrmc/kernels/gemm"
)

// parallelWork is the number of multiply-adds below which MatMul stays on one
// goroutine: starting goroutines costs microseconds, which a 64×64 decode
// step does not repay.
const parallelWork = 1 << 16

// panelBytes bounds the slice of weight rows one pass of the row blocks walks
// over, so that the panel stays in L2 while every x row streams past it.
const panelBytes = 256 << 10

// MatMul computes out[m×n] = x[m×k] · wᵀ, where w is [n×k] row-major: the
// [out, in] layout PyTorch and llama2.c store linear weights in.
//
// It runs on kernels/gemm: packed, cache-blocked Go-assembly kernels (AVX-512
// or AVX2+FMA, chosen by CPU feature; portable Go elsewhere). Every output
// element is reduced over k in the same blocked order however many threads
// share the work, so results are bit-identical for any GOMAXPROCS.
func MatMul(out, x, w []float32, m, k, n int) {
	if m < 0 || k < 0 || n < 0 {
		panic(fmt.Sprintf("tensor.MatMul: negative shape m=%d k=%d n=%d", m, k, n))
	}
	if len(out) < m*n || len(x) < m*k || len(w) < n*k {
		panic(fmt.Sprintf("tensor.MatMul: buffers too short for m=%d k=%d n=%d: len(out)=%d len(x)=%d len(w)=%d",
			m, k, n, len(out), len(x), len(w)))
	}
	if m == 0 || n == 0 {
		return
	}
	gemm.MatMul(out[:m*n], x[:m*k], w[:n*k], m, k, n)
}

// MatMulSequential is MatMul with every output element the float32 sum over
// p = 0, 1, …, k-1 of float32(x[i,p]·w[j,p]) in that order: slower, but
// its rounding is that of a plain loop, for references in tests.
func MatMulSequential(out, x, w []float32, m, k, n int) {
	if len(out) < m*n || len(x) < m*k || len(w) < n*k {
		panic(fmt.Sprintf("tensor.MatMulSequential: buffers too short for m=%d k=%d n=%d", m, k, n))
	}
	work := m * n * k
	if work < parallelWork {
		matmulRange(out, x, w, k, n, 0, m, 0, n)
		return
	}
	grainRows := func(other int) int { return max(1, parallelWork/(other*max(k, 1))) }
	if n >= m {
		Parallel(n, grainRows(m), func(lo, hi int) { matmulRange(out, x, w, k, n, 0, m, lo, hi) })
	} else {
		Parallel(m, grainRows(n), func(lo, hi int) { matmulRange(out, x, w, k, n, lo, hi, 0, n) })
	}
}

// matmulRange computes out[i,j] for i in [i0,i1), j in [j0,j1).
func matmulRange(out, x, w []float32, k, n, i0, i1, j0, j1 int) {
	panel := max(2, panelBytes/(4*max(k, 1)))
	for pj := j0; pj < j1; pj += panel {
		pend := min(pj+panel, j1)
		i := i0
		for ; i+4 <= i1; i += 4 {
			x0 := x[i*k : i*k+k]
			x1 := x[(i+1)*k : (i+1)*k+k]
			x2 := x[(i+2)*k : (i+2)*k+k]
			x3 := x[(i+3)*k : (i+3)*k+k]
			j := pj
			for ; j+2 <= pend; j += 2 {
				a00, a01, a10, a11, a20, a21, a30, a31 := dot4x2(x0, x1, x2, x3, w[j*k:j*k+k], w[(j+1)*k:(j+1)*k+k])
				out[i*n+j], out[i*n+j+1] = a00, a01
				out[(i+1)*n+j], out[(i+1)*n+j+1] = a10, a11
				out[(i+2)*n+j], out[(i+2)*n+j+1] = a20, a21
				out[(i+3)*n+j], out[(i+3)*n+j+1] = a30, a31
			}
			if j < pend {
				wj := w[j*k : j*k+k]
				out[i*n+j] = Dot(x0, wj)
				out[(i+1)*n+j] = Dot(x1, wj)
				out[(i+2)*n+j] = Dot(x2, wj)
				out[(i+3)*n+j] = Dot(x3, wj)
			}
		}
		for ; i < i1; i++ {
			xi := x[i*k : i*k+k]
			o := out[i*n : i*n+n]
			j := pj
			for ; j+4 <= pend; j += 4 {
				o[j], o[j+1], o[j+2], o[j+3] = dot1x4(xi, w[j*k:j*k+k], w[(j+1)*k:(j+1)*k+k], w[(j+2)*k:(j+2)*k+k], w[(j+3)*k:(j+3)*k+k])
			}
			for ; j < pend; j++ {
				o[j] = Dot(xi, w[j*k:j*k+k])
			}
		}
	}
}

// Dot returns the float32 sum over i = 0, 1, … of float32(a[i]·b[i]), in that
// order: the reduction every MatMul output element uses. len(b) must be at
// least len(a).
func Dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s float32
	for i, v := range a {
		s += float32(v * b[i])
	}
	return s
}

// dot4x2 computes the eight dot products of four x rows with two w rows,
// reading each w element once for four rows of x. Each accumulator sums in
// index order, exactly as Dot does.
func dot4x2(x0, x1, x2, x3, w0, w1 []float32) (a00, a01, a10, a11, a20, a21, a30, a31 float32) {
	k := len(x0)
	x1, x2, x3, w0, w1 = x1[:k], x2[:k], x3[:k], w0[:k], w1[:k]
	for p := 0; p < k; p++ {
		u, v := w0[p], w1[p]
		e0, e1, e2, e3 := x0[p], x1[p], x2[p], x3[p]
		a00 += float32(e0 * u)
		a01 += float32(e0 * v)
		a10 += float32(e1 * u)
		a11 += float32(e1 * v)
		a20 += float32(e2 * u)
		a21 += float32(e2 * v)
		a30 += float32(e3 * u)
		a31 += float32(e3 * v)
	}
	return
}

// dot1x4 computes one x row against four w rows (the decode shape, m = 1).
func dot1x4(x, w0, w1, w2, w3 []float32) (a0, a1, a2, a3 float32) {
	k := len(x)
	w0, w1, w2, w3 = w0[:k], w1[:k], w2[:k], w3[:k]
	for p := 0; p < k; p++ {
		e := x[p]
		a0 += float32(e * w0[p])
		a1 += float32(e * w1[p])
		a2 += float32(e * w2[p])
		a3 += float32(e * w3[p])
	}
	return
}
