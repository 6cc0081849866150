package llama

import "lrmc/kernels/tensor"

// The element-wise and row-wise steps of a block (norms, rotary embedding,
// SwiGLU, residual adds) are a quarter of a prefill's single-thread time;
// run serially they cap two-thread scaling near 1.3× while the GEMMs around
// them scale. Each helper below splits its rows (or elements) over
// tensor.Parallel: every row or element is computed by exactly the code and
// in exactly the order it was serially, so results are bit-identical for
// every thread count, and a small call (a decode step's single row) runs
// inline without starting goroutines.

// parallelGrain is the fewest floats a goroutine is handed: starting one
// costs about a microsecond, what the cheapest step here (a residual add)
// spends on some 4k floats. Tests lower it to split every call.
var parallelGrain = 16384

// forRows calls fn on disjoint ranges of [0, rows) covering it, in
// parallel when the rows, width floats each, are enough work.
func forRows(rows, width int, fn func(lo, hi int)) {
	tensor.Parallel(rows, max(1, parallelGrain/max(width, 1)), fn)
}

// normRows is tensor.RMSNormRows over the rows of x (each len(w) wide), in
// parallel. out may alias x.
func normRows(out, x, w []float32, eps float32) {
	d := len(w)
	forRows(len(x)/d, d, func(lo, hi int) {
		tensor.RMSNormRows(out[lo*d:hi*d], x[lo*d:hi*d], w, eps)
	})
}

// swiGLU is tensor.SwiGLU(gate, up) in parallel.
func swiGLU(gate, up []float32) {
	forRows(len(gate), 1, func(lo, hi int) { tensor.SwiGLU(gate[lo:hi], up[lo:hi]) })
}

// add is tensor.Add(dst, x) in parallel.
func add(dst, x []float32) {
	forRows(len(dst), 1, func(lo, hi int) { tensor.Add(dst[lo:hi], x[lo:hi]) })
}
