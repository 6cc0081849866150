package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

func randVec(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// eps32 is the float32 unit roundoff.
const eps32 = 1.0 / (1 << 24)

func TestMatMulAgainstFloat64(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range [][3]int{{1, 1, 1}, {1, 7, 5}, {3, 5, 2}, {4, 16, 2}, {5, 33, 9}, {9, 64, 7}, {17, 100, 31}, {64, 96, 130}} {
		m, k, n := s[0], s[1], s[2]
		x, w := randVec(r, m*k), randVec(r, n*k)
		out := make([]float32, m*n)
		MatMul(out, x, w, m, k, n)
		for i := range m {
			for j := range n {
				var ref, mag float64
				for p := range k {
					ref += float64(x[i*k+p]) * float64(w[j*k+p])
					mag += math.Abs(float64(x[i*k+p]) * float64(w[j*k+p]))
				}
				// Classic bound for recursive summation: |err| ≤ k·u·Σ|x·w| (+ the product roundings).
				if bound := float64(k+1) * eps32 * mag; math.Abs(float64(out[i*n+j])-ref) > bound {
					t.Fatalf("m=%d k=%d n=%d out[%d,%d]=%g, float64 %g, bound %g", m, k, n, i, j, out[i*n+j], ref, bound)
				}
				// MatMulSequential's documented order: exactly Dot of the two rows.
				seq := make([]float32, m*n)
				MatMulSequential(seq, x, w, m, k, n)
				if want := Dot(x[i*k:i*k+k], w[j*k:j*k+k]); seq[i*n+j] != want {
					t.Fatalf("m=%d k=%d n=%d sequential[%d,%d]=%g differs from the sequential dot %g", m, k, n, i, j, seq[i*n+j], want)
				}
			}
		}
	}
}

// TestMatMulThreadIndependent checks bit-identical results whatever
// GOMAXPROCS is, on shapes that take both split directions.
func TestMatMulThreadIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, s := range [][3]int{{7, 300, 257}, {257, 300, 6}, {1, 512, 999}} {
		m, k, n := s[0], s[1], s[2]
		x, w := randVec(r, m*k), randVec(r, n*k)
		var ref []float32
		for _, procs := range []int{1, 2, 3, 8} {
			old := runtime.GOMAXPROCS(procs)
			out := make([]float32, m*n)
			MatMul(out, x, w, m, k, n)
			runtime.GOMAXPROCS(old)
			if ref == nil {
				ref = out
				continue
			}
			for i := range out {
				if math.Float32bits(out[i]) != math.Float32bits(ref[i]) {
					t.Fatalf("shape %v: GOMAXPROCS=%d gives out[%d]=%g, GOMAXPROCS=1 gives %g", s, procs, i, out[i], ref[i])
				}
			}
		}
	}
}

func TestMatMulShortBufferPanics(t *testing.T) {
	defer func() {
		want := "tensor.MatMul: buffers too short for m=2 k=3 n=2: len(out)=4 len(x)=5 len(w)=6"
		if got := fmt.Sprint(recover()); got != want {
			t.Fatalf("panic %q, want %q", got, want)
		}
	}()
	MatMul(make([]float32, 4), make([]float32, 5), make([]float32, 6), 2, 3, 2)
}

func TestRMSNorm(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	x, w := randVec(r, 37), randVec(r, 37)
	out := make([]float32, 37)
	RMSNorm(out, x, w, 1e-5)
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	rs := 1 / math.Sqrt(ss/37+1e-5)
	for i := range x {
		ref := float64(w[i]) * float64(x[i]) * rs
		if math.Abs(float64(out[i])-ref) > 1e-6*math.Abs(ref)+1e-7 {
			t.Fatalf("out[%d]=%g want %g", i, out[i], ref)
		}
	}
	// In place gives the same bits.
	RMSNorm(x, x, w, 1e-5)
	for i := range x {
		if x[i] != out[i] {
			t.Fatalf("in-place RMSNorm differs at %d", i)
		}
	}
}

func TestSoftmax(t *testing.T) {
	x := []float32{1, 2, 3, -1000, 50, 50}
	want := make([]float64, len(x))
	var sum float64
	for i, v := range x {
		want[i] = math.Exp(float64(v) - 50)
		sum += want[i]
	}
	Softmax(x)
	for i := range x {
		if math.Abs(float64(x[i])-want[i]/sum) > 1e-7 {
			t.Fatalf("softmax[%d]=%g want %g", i, x[i], want[i]/sum)
		}
	}
	if x[3] != 0 || x[4] != x[5] {
		t.Fatalf("softmax tails: %v", x)
	}
}

func TestSwiGLU(t *testing.T) {
	g := []float32{-3, -0.5, 0, 0.5, 4}
	u := []float32{2, -1, 7, 3, 0.25}
	want := make([]float64, len(g))
	for i := range g {
		a := float64(g[i])
		want[i] = a / (1 + math.Exp(-a)) * float64(u[i])
	}
	SwiGLU(g, u)
	for i := range g {
		if math.Abs(float64(g[i])-want[i]) > 1e-6*math.Abs(want[i])+1e-8 {
			t.Fatalf("swiglu[%d]=%g want %g", i, g[i], want[i])
		}
	}
}

func TestParallelCoversOnce(t *testing.T) {
	for _, n := range []int{0, 1, 5, 100, 1001} {
		hits := make([]int32, n)
		Parallel(n, 7, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				hits[i]++
			}
		})
		for i, h := range hits {
			if h != 1 {
				t.Fatalf("n=%d: index %d visited %d times", n, i, h)
			}
		}
	}
}

func BenchmarkMatMul(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, s := range [][3]int{{1, 1024, 3072}, {128, 1024, 1024}} {
		m, k, n := s[0], s[1], s[2]
		x, w, out := randVec(r, m*k), randVec(r, n*k), make([]float32, m*n)
		b.Run(fmt.Sprintf("%dx%dx%d", m, k, n), func(b *testing.B) {
			for b.Loop() {
				MatMul(out, x, w, m, k, n)
			}
			b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// TestRMSNormRowsBitIdentical: the four-row interleaved sums give each row
// exactly RMSNorm's bits, for every count of rows around the groups of
// four, out of place and in place.
func TestRMSNormRowsBitIdentical(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const d = 53
	w := randVec(r, d)
	for rows := range 10 {
		x := randVec(r, rows*d)
		for i := range x {
			x[i] *= float32(1 + i%7) // rows of different scales
		}
		want := make([]float32, len(x))
		for i := range rows {
			RMSNorm(want[i*d:(i+1)*d], x[i*d:(i+1)*d], w, 1e-5)
		}
		got := make([]float32, len(x))
		RMSNormRows(got, x, w, 1e-5)
		RMSNormRows(x, x, w, 1e-5)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) || math.Float32bits(x[i]) != math.Float32bits(want[i]) {
				t.Fatalf("rows=%d: element %d = %g (in place %g), RMSNorm row by row %g", rows, i, got[i], x[i], want[i])
			}
		}
	}
}
