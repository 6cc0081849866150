package train

import (
	"fmt"

	"lrmc/kernels/tensor"
)

// The forward product of a linear layer is tensor.MatMul (y = x·Wᵀ with W
// [out, in]). Its backward needs the two other products, written here with
// the same discipline as tensor.MatMul: every output element is accumulated
// in a fixed index order, each product rounded to float32 before it is added
// (explicit conversions forbid FMA fusion), and the work is split between
// goroutines only along output rows, so results are bit-identical for any
// GOMAXPROCS.

// parallelWork is the multiply-add count below which a product stays on the
// calling goroutine.
const parallelWork = 1 << 15

// MatMulDX accumulates dx[m×k] += dy[m×n]·w, with w [n×k] row-major: the
// input gradient of y = x·wᵀ. For each element, the terms dy[i,j]·w[j,p] are
// added onto the existing value for j = 0, 1, …, n-1 in that order.
func MatMulDX(dx, dy, w []float32, m, n, k int) {
	if m < 0 || n < 0 || k < 0 || len(dx) < m*k || len(dy) < m*n || len(w) < n*k {
		panic(fmt.Sprintf("train.MatMulDX: buffers too short for m=%d n=%d k=%d: len(dx)=%d len(dy)=%d len(w)=%d",
			m, n, k, len(dx), len(dy), len(w)))
	}
	run := func(lo, hi int) {
		i := lo
		for ; i+4 <= hi; i += 4 {
			d0, d1, d2, d3 := dx[i*k:(i+1)*k], dx[(i+1)*k:(i+2)*k], dx[(i+2)*k:(i+3)*k], dx[(i+3)*k:(i+4)*k]
			g0, g1, g2, g3 := dy[i*n:(i+1)*n], dy[(i+1)*n:(i+2)*n], dy[(i+2)*n:(i+3)*n], dy[(i+3)*n:(i+4)*n]
			for j := range n {
				axpy4(d0, d1, d2, d3, g0[j], g1[j], g2[j], g3[j], w[j*k:(j+1)*k])
			}
		}
		for ; i < hi; i++ {
			di, gi := dx[i*k:(i+1)*k], dy[i*n:(i+1)*n]
			for j, a := range gi {
				axpy(di, a, w[j*k:(j+1)*k])
			}
		}
	}
	if m*n*k < parallelWork {
		run(0, m)
		return
	}
	tensor.Parallel(m, max(4, parallelWork/max(1, n*k)), run)
}

// MatMulDW accumulates dw[n×k] += dyᵀ·x for dy [m×n] and x [m×k]: the weight
// gradient of y = x·wᵀ. For each element, the terms dy[i,j]·x[i,p] are added
// onto the existing value for i = 0, 1, …, m-1 in that order.
func MatMulDW(dw, dy, x []float32, m, n, k int) {
	if m < 0 || n < 0 || k < 0 || len(dw) < n*k || len(dy) < m*n || len(x) < m*k {
		panic(fmt.Sprintf("train.MatMulDW: buffers too short for m=%d n=%d k=%d: len(dw)=%d len(dy)=%d len(x)=%d",
			m, n, k, len(dw), len(dy), len(x)))
	}
	run := func(lo, hi int) {
		j := lo
		for ; j+4 <= hi; j += 4 {
			w0, w1, w2, w3 := dw[j*k:(j+1)*k], dw[(j+1)*k:(j+2)*k], dw[(j+2)*k:(j+3)*k], dw[(j+3)*k:(j+4)*k]
			for i := range m {
				g := dy[i*n+j : i*n+j+4]
				axpy4(w0, w1, w2, w3, g[0], g[1], g[2], g[3], x[i*k:(i+1)*k])
			}
		}
		for ; j < hi; j++ {
			wj := dw[j*k : (j+1)*k]
			for i := range m {
				axpy(wj, dy[i*n+j], x[i*k:(i+1)*k])
			}
		}
	}
	if m*n*k < parallelWork {
		run(0, n)
		return
	}
	tensor.Parallel(n, max(4, parallelWork/max(1, m*k)), run)
}

// axpy adds a·x into y element-wise, rounding each product to float32.
func axpy(y []float32, a float32, x []float32) {
	x = x[:len(y)]
	for p, v := range x {
		y[p] += float32(a * v)
	}
}

// axpy4 is four axpy calls sharing one x, each y element updated exactly as
// axpy would: the blocking only saves loads of x.
func axpy4(y0, y1, y2, y3 []float32, a0, a1, a2, a3 float32, x []float32) {
	k := len(x)
	y0, y1, y2, y3 = y0[:k], y1[:k], y2[:k], y3[:k]
	for p, v := range x {
		y0[p] += float32(a0 * v)
		y1[p] += float32(a1 * v)
		y2[p] += float32(a2 * v)
		y3[p] += float32(a3 * v)
	}
}

// addBias adds b to every row of y (rows of width len(b)).
func addBias(y, b []float32) {
	d := len(b)
	for r := 0; r+d <= len(y); r += d {
		tensor.Add(y[r:r+d], b)
	}
}

// biasGrad accumulates the column sums of dy (rows of width len(db)) into db,
// rows in order.
func biasGrad(db, dy []float32) {
	d := len(db)
	for r := 0; r+d <= len(dy); r += d {
		tensor.Add(db, dy[r:r+d])
	}
}
