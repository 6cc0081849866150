package bench

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"lrmc/kernels/gemm"
)

// GEMMShape is the product out[M×N] = x[M×K]·wᵀ with w stored [N×K], a
// linear layer over M tokens from K inputs to N outputs.
type GEMMShape struct{ M, K, N int }

// FLOPs counts one multiply and one add per term.
func (s GEMMShape) FLOPs() float64 { return 2 * float64(s.M) * float64(s.K) * float64(s.N) }

// String is M×K×N, the order of the product's loops (tokens × in × out).
func (s GEMMShape) String() string { return fmt.Sprintf("%d×%d×%d", s.M, s.K, s.N) }

// DefaultGEMMShapes are the projections of a 1024-wide model with a
// 3072-wide MLP: a 512-token prefill through the up and the down projection,
// and one decode token through the up projection.
var DefaultGEMMShapes = []GEMMShape{{512, 1024, 3072}, {512, 3072, 1024}, {1, 1024, 3072}}

// GEMMOptions says how to measure; the zero value of a field takes the
// default named beside it.
type GEMMOptions struct {
	// Reps is the number of timed repetitions, the median reported. Zero
	// means 5 repetitions of at least 50ms each (MinRep is then ignored).
	Reps int
	// MinRep is the least wall time of one repetition: a fast product is
	// called as many times within it as that takes, because a single call
	// of microseconds is below the clock's and the scheduler's resolution.
	// Zero times one call per repetition (smoke runs).
	MinRep time.Duration
	// NaiveMaxFLOPs skips the naive reference on shapes above this many
	// FLOPs (1e9): at about one GFLOP/s it would dominate the run.
	NaiveMaxFLOPs float64
	// Impls restricts the kernels measured, by name (all when empty):
	// gemm's implementations ("avx512", "avx2", "go"), "gonum", "naive".
	Impls []string
	// Progress, when set, receives a line per kernel measured.
	Progress io.Writer
}

func (o GEMMOptions) withDefaults() GEMMOptions {
	if o.Reps <= 0 {
		o.Reps, o.MinRep = 5, 50*time.Millisecond
	}
	if o.NaiveMaxFLOPs <= 0 {
		o.NaiveMaxFLOPs = 1e9
	}
	return o
}

// GEMMResult is one kernel measured on one shape at one thread count.
type GEMMResult struct {
	Impl    string `json:"impl"`
	M       int    `json:"m"`
	N       int    `json:"n"`
	K       int    `json:"k"`
	Threads int    `json:"threads"`
	Reps    int    `json:"reps"`
	// Calls is how many products one repetition timed.
	Calls int `json:"calls_per_rep"`
	// Seconds is the median repetition's wall time per product.
	Seconds float64 `json:"seconds"`
	// GFLOPS is the median repetition's rate over wall time.
	GFLOPS float64 `json:"gflops"`
	// CPUGFLOPS is the same repetition's rate per CPU-second of the whole
	// process: robust to being descheduled on a shared host; with T threads
	// busy it is about GFLOPS/T.
	CPUGFLOPS float64 `json:"cpu_gflops,omitempty"`
	// VsGonum is GFLOPS over gonum's in the same run, shape and threads.
	VsGonum float64 `json:"vs_gonum,omitempty"`
	// MaxAbsErr is the largest difference between sampled output elements
	// and the same elements summed in float64: a fast wrong kernel is
	// worth nothing.
	MaxAbsErr float64 `json:"max_abs_err"`
	// Skipped says why the kernel was not measured; the numbers are then
	// zero.
	Skipped string `json:"skipped,omitempty"`
}

// gemmKernel is one implementation of the NT product under test.
type gemmKernel struct {
	name string
	run  func(out, x, w []float32, s GEMMShape, threads int)
}

// gemmKernels lists gemm's implementations usable here, gonum's Sgemm and
// the naive loop, in that order.
func gemmKernels() []gemmKernel {
	var ks []gemmKernel
	for _, name := range gemm.Impls() {
		ks = append(ks, gemmKernel{name, func(out, x, w []float32, s GEMMShape, threads int) {
			gemm.MatMulThreads(out, x, w, s.M, s.K, s.N, threads)
		}})
	}
	// gonum is the pure-Go BLAS the project already depends on (for its
	// tests): the baseline every ratio is taken against. It parallelises
	// over GOMAXPROCS, which the caller sets to threads.
	var impl gonum.Implementation
	ks = append(ks,
		gemmKernel{"gonum", func(out, x, w []float32, s GEMMShape, _ int) {
			impl.Sgemm(blas.NoTrans, blas.Trans, s.M, s.N, s.K, 1, x, s.K, w, s.K, 0, out, s.N)
		}},
		gemmKernel{"naive", naive},
	)
	return ks
}

// naive is the textbook triple loop with a float32 accumulator, rows (or,
// for a single row, columns) split evenly over threads goroutines.
func naive(out, x, w []float32, s GEMMShape, threads int) {
	span := func(i0, i1, j0, j1 int) {
		for i := i0; i < i1; i++ {
			xi := x[i*s.K : (i+1)*s.K]
			for j := j0; j < j1; j++ {
				wj := w[j*s.K : (j+1)*s.K]
				var acc float32
				for p := range xi {
					acc += xi[p] * wj[p]
				}
				out[i*s.N+j] = acc
			}
		}
	}
	byRows := s.M >= threads
	n := s.N
	if byRows {
		n = s.M
	}
	threads = max(1, min(threads, n))
	var wg sync.WaitGroup
	for t := range threads {
		lo, hi := t*n/threads, (t+1)*n/threads
		wg.Go(func() {
			if byRows {
				span(lo, hi, 0, s.N)
			} else {
				span(0, s.M, lo, hi)
			}
		})
	}
	wg.Wait()
}

// MeasureGEMM measures every kernel on every shape at every thread count. Results
// come grouped by shape, then threads, in gemmKernels' order; a kernel
// skipped for its cost is returned with Skipped set.
func MeasureGEMM(shapes []GEMMShape, threads []int, o GEMMOptions) ([]GEMMResult, error) {
	o = o.withDefaults()
	kernels := gemmKernels()
	if len(o.Impls) > 0 {
		want := map[string]bool{}
		for _, n := range o.Impls {
			want[n] = true
		}
		var sel []gemmKernel
		have := map[string]bool{}
		for _, k := range kernels {
			have[k.name] = true
			if want[k.name] {
				sel = append(sel, k)
			}
		}
		for _, n := range o.Impls {
			if !have[n] {
				return nil, fmt.Errorf("bench: GEMM kernel %q is not available here (have %v, gonum, naive)", n, gemm.Impls())
			}
		}
		kernels = sel
	}
	var results []GEMMResult
	for _, s := range shapes {
		if s.M <= 0 || s.K <= 0 || s.N <= 0 {
			return nil, fmt.Errorf("bench: GEMM shape m=%d k=%d n=%d: every dimension must be positive", s.M, s.K, s.N)
		}
		r := rand.New(rand.NewPCG(uint64(s.M), uint64(s.K)<<32|uint64(s.N)))
		x, w := gaussians(r, s.M*s.K), gaussians(r, s.N*s.K)
		probes := probeRefs(r, x, w, s)
		out := make([]float32, s.M*s.N)
		for _, t := range threads {
			first := len(results)
			for _, k := range kernels {
				res := GEMMResult{Impl: k.name, M: s.M, N: s.N, K: s.K, Threads: t}
				if k.name == "naive" && s.FLOPs() > o.NaiveMaxFLOPs {
					res.Skipped = fmt.Sprintf("%.2g GFLOP is above the naive budget of %.2g", s.FLOPs()/1e9, o.NaiveMaxFLOPs/1e9)
					results = append(results, res)
					continue
				}
				if err := measureGEMM(&res, k, out, x, w, s, t, o); err != nil {
					return nil, err
				}
				res.MaxAbsErr = probes.maxAbsErr(out, s)
				if o.Progress != nil {
					fmt.Fprintf(o.Progress, "bench: gemm %s %v t=%d: %.2f GFLOP/s\n", k.name, s, t, res.GFLOPS)
				}
				results = append(results, res)
			}
			ratios(results[first:])
		}
	}
	return results, nil
}

func measureGEMM(res *GEMMResult, k gemmKernel, out, x, w []float32, s GEMMShape, threads int, o GEMMOptions) error {
	if impl := k.name; impl != "gonum" && impl != "naive" {
		restore, err := gemm.SetImpl(impl)
		if err != nil {
			return fmt.Errorf("bench: GEMM %s: %w", impl, err)
		}
		defer restore()
	}
	clear(out)
	fn := func() { k.run(out, x, w, s, threads) }
	withProcs(threads, func() {
		calls := 1
		if o.MinRep > 0 {
			calls = callsFor(o.MinRep, fn)
		}
		tm := repeat(o.Reps, calls, fn)
		perCall := tm.wall.Seconds() / float64(calls)
		res.Reps, res.Calls, res.Seconds = o.Reps, calls, perCall
		res.GFLOPS = s.FLOPs() / perCall / 1e9
		if tm.cpu > 0 {
			res.CPUGFLOPS = s.FLOPs() * float64(calls) / tm.cpu.Seconds() / 1e9
		}
	})
	return nil
}

// ratios fills VsGonum for one shape and thread count.
func ratios(rs []GEMMResult) {
	var base float64
	for _, r := range rs {
		if r.Impl == "gonum" {
			base = r.GFLOPS
		}
	}
	if base == 0 {
		return
	}
	for i := range rs {
		if rs[i].Skipped == "" {
			rs[i].VsGonum = rs[i].GFLOPS / base
		}
	}
}

func gaussians(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// probe is one output element and its float64 value.
type probe struct {
	i, j int
	want float64
}

type probeSet []probe

// probeRefs picks up to 64 output elements, always including the corners,
// and sums them in float64.
func probeRefs(r *rand.Rand, x, w []float32, s GEMMShape) probeSet {
	pick := [][2]int{{0, 0}, {s.M - 1, s.N - 1}}
	for range 62 {
		pick = append(pick, [2]int{r.IntN(s.M), r.IntN(s.N)})
	}
	ps := make(probeSet, len(pick))
	for n, ij := range pick {
		var acc float64
		for p := range s.K {
			acc += float64(x[ij[0]*s.K+p]) * float64(w[ij[1]*s.K+p])
		}
		ps[n] = probe{ij[0], ij[1], acc}
	}
	return ps
}

func (ps probeSet) maxAbsErr(out []float32, s GEMMShape) float64 {
	var worst float64
	for _, p := range ps {
		worst = max(worst, math.Abs(float64(out[p.i*s.N+p.j])-p.want))
	}
	return worst
}
