package bench

import (
	"runtime"
	"slices"
	"time"

	"lrmc/internal/cputime"
)

// timing is one measured repetition.
type timing struct {
	wall, cpu time.Duration
}

// repeat runs fn once untimed (first-touch allocations, packing buffers,
// page faults), then reps timed repetitions, each calling fn calls times.
// It returns the repetition whose wall time is the median (the lower
// middle for even reps), so that wall and CPU time come from one run.
func repeat(reps, calls int, fn func()) timing {
	fn()
	ts := make([]timing, reps)
	for r := range ts {
		cpu0, t0 := cputime.Process(), time.Now()
		for range calls {
			fn()
		}
		ts[r] = timing{wall: time.Since(t0), cpu: cputime.Process() - cpu0}
	}
	slices.SortFunc(ts, func(a, b timing) int { return int(a.wall - b.wall) })
	return ts[(reps-1)/2]
}

// callsFor returns how many calls of fn make a repetition last at least
// minRep, judged from one timed call (which also serves as a warm-up).
func callsFor(minRep time.Duration, fn func()) int {
	t0 := time.Now()
	fn()
	one := time.Since(t0)
	if one <= 0 {
		one = time.Nanosecond
	}
	return max(1, int(minRep/one))
}

// withProcs runs fn with runtime.GOMAXPROCS set to threads and restores the
// previous value. Go-level parallelism in lrmc's kernels (tensor.Parallel,
// gemm.MatMul) and in gonum follows GOMAXPROCS.
func withProcs(threads int, fn func()) {
	prev := runtime.GOMAXPROCS(max(1, threads))
	defer runtime.GOMAXPROCS(prev)
	fn()
}

// ProcessCPUTime is the user+system CPU time of the whole process so far
// (zero off Unix): on a machine shared with other work, a phase's CPU time
// moves less than its wall time.
func ProcessCPUTime() time.Duration { return cputime.Process() }
