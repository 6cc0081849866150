package parallel

import (
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunCallsEveryPartOnce(t *testing.T) {
	for _, procs := range []int{1, 2, 3, 8} {
		prev := runtime.GOMAXPROCS(procs)
		for parts := 0; parts <= 40; parts++ {
			counts := make([]atomic.Int32, parts)
			Run(parts, func(p int) { counts[p].Add(1) })
			for p := range counts {
				if c := counts[p].Load(); c != 1 {
					t.Fatalf("GOMAXPROCS %d, %d parts: part %d ran %d times", procs, parts, p, c)
				}
			}
		}
		runtime.GOMAXPROCS(prev)
	}
}

// oldRanges is the split tensor.Parallel made before the pool (one
// goroutine per range): For must hand fn the same ranges.
func oldRanges(n, grain, procs int) [][2]int {
	workers := min(procs, (n+grain-1)/grain)
	if workers <= 1 {
		return [][2]int{{0, n}}
	}
	chunk := (n + workers - 1) / workers
	var r [][2]int
	for lo := 0; lo < n; lo += chunk {
		r = append(r, [2]int{lo, min(lo+chunk, n)})
	}
	return r
}

func TestForRangesAsBefore(t *testing.T) {
	for _, procs := range []int{1, 2, 3, 5} {
		prev := runtime.GOMAXPROCS(procs)
		for n := 1; n <= 60; n++ {
			for _, grain := range []int{1, 2, 7, 100} {
				seen := make([]atomic.Int32, n)
				got := make([]atomic.Int64, n+1) // got[lo] = hi+1
				For(n, grain, func(lo, hi int) {
					got[lo].Store(int64(hi) + 1)
					for i := lo; i < hi; i++ {
						seen[i].Add(1)
					}
				})
				for i := range seen {
					if seen[i].Load() != 1 {
						t.Fatalf("procs %d n %d grain %d: item %d covered %d times", procs, n, grain, i, seen[i].Load())
					}
				}
				want := oldRanges(n, grain, procs)
				ranges := 0
				for lo := range got {
					if got[lo].Load() != 0 {
						ranges++
					}
				}
				if ranges != len(want) {
					t.Fatalf("procs %d n %d grain %d: %d ranges, want %v", procs, n, grain, ranges, want)
				}
				for _, w := range want {
					if hi := got[w[0]].Load() - 1; hi != int64(w[1]) {
						t.Fatalf("procs %d n %d grain %d: range from %d ends at %d, want %v", procs, n, grain, w[0], hi, want)
					}
				}
			}
		}
		runtime.GOMAXPROCS(prev)
	}
	For(0, 1, func(lo, hi int) { t.Fatal("fn called for n = 0") })
}

// A parallel loop inside a part of another (a GEMM inside an attention
// job) must not deadlock, however many levels deep and however few
// workers are free.
func TestNestedRunsFinish(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(3))
	done := make(chan int64)
	go func() {
		var sum atomic.Int64
		Run(6, func(a int) {
			Run(5, func(b int) {
				For(40, 1, func(lo, hi int) {
					for i := lo; i < hi; i++ {
						sum.Add(int64(a*1000 + b*100 + i))
					}
				})
			})
		})
		done <- sum.Load()
	}()
	var want int64
	for a := range 6 {
		for b := range 5 {
			for i := range 40 {
				want += int64(a*1000 + b*100 + i)
			}
		}
	}
	select {
	case got := <-done:
		if got != want {
			t.Fatalf("nested sum %d, want %d", got, want)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("nested parallel loops did not finish (deadlock)")
	}
}

// The pool's workers run parts: part 0 waits until part 1 has started,
// which only a second goroutine can do while the caller is inside part 0.
func TestWorkersRunParts(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	// Earlier tests leave wake messages for calls their callers finished
	// alone (at GOMAXPROCS 1 no worker runs until the caller blocks), up to
	// a full buffer, and Run drops a message that does not fit: then no
	// worker would ever be told of this call. Wait until the workers have
	// read the stale ones (on a loaded machine that takes a while).
	for deadline := time.Now().Add(60 * time.Second); len(wake) > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d stale wake messages still unread after 60 s", len(wake))
		}
	}
	before := Read()
	started := make(chan struct{})
	ok := true
	Run(2, func(p int) {
		if p == 1 {
			close(started)
			return
		}
		select {
		case <-started:
		case <-time.After(30 * time.Second):
			ok = false
		}
	})
	if !ok {
		t.Fatal("no pool worker ran part 1 while the caller waited in part 0")
	}
	d := Read().Sub(before)
	if d.Forks != 1 || d.Parts != 2 || d.WorkerParts != 1 {
		t.Fatalf("stats %+v, want 1 fork of 2 parts, 1 run by a worker", d)
	}
	// Forked spans the fork, which lasted at least as long as part 0's
	// wait; the caller's join wait lies inside it.
	if d.Forked <= 0 || d.JoinWait < 0 || d.JoinWait > d.Forked {
		t.Fatalf("stats %+v: want 0 ≤ JoinWait ≤ Forked, Forked > 0", d)
	}
}

func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// Workers persist: once the pool is warm, calls start no goroutines.
func TestRunStartsNoGoroutines(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	var sink atomic.Int64
	body := func(p int) { sink.Add(int64(p)) }
	Run(4, body) // starts the workers
	// A first collection at this GOMAXPROCS would start the GC's mark
	// workers (goroutines) inside the loop below; have it happen here.
	runtime.GC()
	g0 := goroutinesCreated()
	for range 1000 {
		Run(4, body)
		For(1000, 10, func(lo, hi int) { sink.Add(int64(hi - lo)) })
	}
	if d := goroutinesCreated() - g0; d != 0 {
		t.Fatalf("2000 parallel calls started %d goroutines, want 0", d)
	}
}
