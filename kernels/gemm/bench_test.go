package gemm

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"lrmc/internal/cputime"
)

// benchShapes are the transformer projections of issue 5: a 512-token
// prefill through a 1024→3072 and a 3072→1024 layer, and one decode token.
var benchShapes = []shape{{512, 1024, 3072}, {512, 3072, 1024}, {1, 1024, 3072}}

// flopMeter reports GFLOP/s of wall time and, because the development
// machines are shared (other processes time-slice the same two cores), also
// per second of this process's CPU time: "GFLOP/cpu-s" is robust to being
// descheduled and, for one thread, estimates the uncontended speed. For two
// threads it is per core; multiply by two for the product's rate.
type flopMeter struct {
	b     *testing.B
	flops float64
	cpu0  time.Duration
}

func startMeter(b *testing.B, s shape) *flopMeter {
	return &flopMeter{b: b, flops: 2 * float64(s.m) * float64(s.k) * float64(s.n), cpu0: cputime.Process()}
}

func (f *flopMeter) report() {
	total := f.flops * float64(f.b.N)
	f.b.ReportMetric(total/f.b.Elapsed().Seconds()/1e9, "GFLOP/s")
	if cpu := cputime.Process() - f.cpu0; cpu > 0 {
		f.b.ReportMetric(total/cpu.Seconds()/1e9, "GFLOP/cpu-s")
	}
}

func benchOperands(s shape) (out, x, w []float32) {
	r := rand.New(rand.NewPCG(11, 12))
	return make([]float32, s.m*s.n), randMatrix(r, s.m*s.k), randMatrix(r, s.n*s.k)
}

// BenchmarkMatMul: go test -run=NONE -bench=MatMul ./kernels/gemm
// (names: impl/shape m×k×n/threads).
func BenchmarkMatMul(b *testing.B) {
	for _, name := range Impls() {
		for _, s := range benchShapes {
			for _, threads := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/%v/t%d", name, s, threads), func(b *testing.B) {
					restore, err := SetImpl(name)
					if err != nil {
						b.Fatal(err)
					}
					defer restore()
					out, x, w := benchOperands(s)
					meter := startMeter(b, s)
					for b.Loop() {
						MatMulThreads(out, x, w, s.m, s.k, s.n, threads)
					}
					meter.report()
				})
			}
		}
	}
}

// BenchmarkGonumSgemm is the pure-Go baseline: gonum's Sgemm on the same
// NT product (it threads internally).
func BenchmarkGonumSgemm(b *testing.B) {
	for _, s := range benchShapes {
		b.Run(s.String(), func(b *testing.B) {
			out, x, w := benchOperands(s)
			var impl gonum.Implementation
			meter := startMeter(b, s)
			for b.Loop() {
				impl.Sgemm(blas.NoTrans, blas.Trans, s.m, s.n, s.k, 1, x, s.k, w, s.k, 0, out, s.n)
			}
			meter.report()
		})
	}
}

// BenchmarkNaive is the textbook triple loop, for scale.
func BenchmarkNaive(b *testing.B) {
	for _, s := range benchShapes {
		b.Run(s.String(), func(b *testing.B) {
			out, x, w := benchOperands(s)
			meter := startMeter(b, s)
			for b.Loop() {
				for i := range s.m {
					for j := range s.n {
						var sum float32
						for p := range s.k {
							sum += x[i*s.k+p] * w[j*s.k+p]
						}
						out[i*s.n+j] = sum
					}
				}
			}
			meter.report()
		})
	}
}
