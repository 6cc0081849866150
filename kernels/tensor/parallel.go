package tensor

import "lrmc/kernels/parallel"

// Parallel calls fn on contiguous, disjoint ranges that cover [0, n), using
// up to runtime.GOMAXPROCS(0) goroutines of the kernels' worker pool
// (kernels/parallel). Each range holds at least grain items (except when n
// itself is smaller), so tiny loops run inline on the calling goroutine. fn
// must only write state owned by its own range; Parallel returns once all
// calls have.
func Parallel(n, grain int, fn func(lo, hi int)) { parallel.For(n, grain, fn) }
