// Package parallel runs the kernels' parallel loops on one pool of
// persistent worker goroutines.
//
// A prefill block forks and joins some twenty times (each projection, the
// attention, the norms, the rotary embedding, SwiGLU, the residual adds).
// Starting a goroutine per part of each loop pays for the goroutine, for
// growing its stack again inside the kernels (a fresh goroutine starts with
// a few KiB) and for the runtime finding it a thread. The pool's workers
// are started once, keep their grown stacks, and park on a channel
// between calls.
//
// Run hands the parts of a call out from a shared counter: the caller
// claims parts too, so a call never waits for a worker that is busy
// elsewhere, and a loop run inside another loop's part (a GEMM inside an
// attention job) cannot deadlock: whoever waits at a join has already run
// every part nobody else claimed, and the parts others claimed are running.
// Which goroutine runs a part never changes what the part computes, so
// results do not depend on the pool.
package parallel

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// maxWorkers bounds the pool, whatever thread counts callers ask for.
const maxWorkers = 256

// call is one Run: parts claimed from next, counted off by wg.
type call struct {
	fn    func(part int)
	parts int64
	next  atomic.Int64
	wg    sync.WaitGroup
}

// drain runs parts of c until none is left to claim; it reports how many
// it ran.
func (c *call) drain() int64 {
	var ran int64
	for {
		p := c.next.Add(1) - 1
		if p >= c.parts {
			return ran
		}
		c.fn(int(p))
		c.wg.Done()
		ran++
	}
}

var (
	mu      sync.Mutex
	started int // workers started (never stopped: parked, they cost a stack)
	// wake carries calls to parked workers. A message for a call whose
	// parts are all claimed by the time a worker reads it is dropped.
	wake = make(chan *call, maxWorkers)
)

// ensure starts workers until there are at least n (capped).
func ensure(n int) {
	n = min(n, maxWorkers)
	mu.Lock()
	defer mu.Unlock()
	for ; started < n; started++ {
		go worker()
	}
}

func worker() {
	for c := range wake {
		if ran := c.drain(); ran > 0 {
			stats.workerParts.Add(ran)
		}
	}
}

// Run calls fn(0), …, fn(parts-1), each exactly once, on the calling
// goroutine and on up to parts-1 pool workers, and returns when all calls
// have returned. With parts ≤ 1 it calls fn(0) (if parts is 1) inline.
// Parts must not depend on running at the same time as one another (one
// part may run after another on the same goroutine).
func Run(parts int, fn func(part int)) {
	if parts <= 0 {
		return
	}
	if parts == 1 {
		fn(0)
		return
	}
	ensure(parts - 1)
	enter := time.Now()
	if stats.active.Add(1) == 1 {
		stats.since.Store(enter.UnixNano())
	}
	c := &call{fn: fn, parts: int64(parts)}
	c.wg.Add(parts)
	for range parts - 1 {
		select {
		case wake <- c:
		default: // the buffer is full, of messages for calls their callers already finished (workers got no CPU): the caller drains
		}
	}
	stats.forks.Add(1)
	stats.parts.Add(int64(parts))
	c.drain()
	t0 := time.Now()
	c.wg.Wait()
	end := time.Now()
	stats.joinWait.Add(int64(end.Sub(t0)))
	if stats.active.Add(-1) == 0 {
		stats.forked.Add(end.UnixNano() - stats.since.Load())
	}
}

// For calls fn on contiguous, disjoint ranges that cover [0, n), using up
// to runtime.GOMAXPROCS(0) goroutines. Each range holds at least grain
// items (except when n itself is smaller), so tiny loops run inline on the
// calling goroutine. fn must only write state owned by its own range.
// The ranges are ceil(n/parts) items each, the last one shorter.
func For(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	grain = max(grain, 1)
	parts := min(runtime.GOMAXPROCS(0), (n+grain-1)/grain)
	if parts <= 1 {
		fn(0, n)
		return
	}
	chunk := (n + parts - 1) / parts
	parts = (n + chunk - 1) / chunk
	Run(parts, func(p int) { fn(p*chunk, min((p+1)*chunk, n)) })
}

var stats struct {
	forks, parts, workerParts, joinWait atomic.Int64
	// active counts Runs in flight; since is when the count last left
	// zero, forked the time it has been above zero.
	active, since, forked atomic.Int64
}

// Stats are counters since the process started: how the kernels' parallel
// loops ran. Subtract two readings to cover a span of work.
type Stats struct {
	Forks       int64         // calls that ran more than one part (a fork and a join each)
	Parts       int64         // parts of those calls
	WorkerParts int64         // parts run by pool workers (the rest ran on the callers)
	JoinWait    time.Duration // callers' time blocked at joins, after running what they could claim
	// Forked is the wall time during which at least one fork was in
	// flight: over a span of work on one caller, the span's wall time
	// less Forked is the time it ran on that caller alone (its serial
	// sections).
	Forked time.Duration
}

// Read returns the counters.
func Read() Stats {
	return Stats{Forks: stats.forks.Load(), Parts: stats.parts.Load(), WorkerParts: stats.workerParts.Load(),
		JoinWait: time.Duration(stats.joinWait.Load()), Forked: time.Duration(stats.forked.Load())}
}

// Sub is s − o, field by field.
func (s Stats) Sub(o Stats) Stats {
	return Stats{s.Forks - o.Forks, s.Parts - o.Parts, s.WorkerParts - o.WorkerParts, s.JoinWait - o.JoinWait,
		s.Forked - o.Forked}
}
