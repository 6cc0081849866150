package gemm

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestMatMulNNIsMatMulOnTranspose: x·w with w stored [k×n] gives, bit for
// bit, MatMul's x·(wᵀ)ᵀ on the explicit [n×k] transpose, for small batches
// (the matrix-vector path), ragged panels, several kc and nc blocks and
// every thread count, on each implementation.
func TestMatMulNNIsMatMulOnTranspose(t *testing.T) {
	defer func(v int) { minFlopsPerThread = v }(minFlopsPerThread)
	minFlopsPerThread = 1 // let even small products split
	r := rand.New(rand.NewPCG(9, 10))
	shapes := []shape{
		{1, 70, 33},     // decode
		{16, 300, 45},   // largest matrix-vector batch
		{17, 300, 45},   // smallest packed one, ragged panels
		{100, 513, 5},   // narrow n: rows of x split
		{37, 600, 70},   // kc blocks, split along n
		{29, 40, 3100},  // two nc blocks
		{250, 130, 100}, // more rows than columns
	}
	forEachImpl(t, func(t *testing.T) {
		for _, s := range shapes {
			x, w := randMatrix(r, s.m*s.k), randMatrix(r, s.k*s.n)
			wt := make([]float32, s.n*s.k)
			for p := range s.k {
				for j := range s.n {
					wt[j*s.k+p] = w[p*s.n+j]
				}
			}
			want := make([]float32, s.m*s.n)
			MatMulThreads(want, x, wt, s.m, s.k, s.n, 1)
			for _, threads := range []int{1, 2, 3, 7} {
				got := make([]float32, s.m*s.n)
				for i := range got {
					got[i] = float32(math.NaN()) // every element must be written
				}
				MatMulNNThreads(got, x, w, s.m, s.k, s.n, threads)
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%v, %d threads: out[%d] = %g, MatMul on the transpose %g", s, threads, i, got[i], want[i])
					}
				}
			}
		}
	})
}
