package tensor

import (
	"runtime"
	"sync"
)

// Parallel calls fn on contiguous, disjoint ranges that cover [0, n), using
// up to runtime.GOMAXPROCS(0) goroutines. Each range holds at least grain
// items (except when n itself is smaller), so tiny loops run inline on the
// calling goroutine instead of paying for goroutine start-up. fn must only
// write state owned by its own range; Parallel returns once all calls have.
func Parallel(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if grain < 1 {
		grain = 1
	}
	workers := min(runtime.GOMAXPROCS(0), (n+grain-1)/grain)
	if workers <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for lo := chunk; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	fn(0, min(chunk, n))
	wg.Wait()
}
