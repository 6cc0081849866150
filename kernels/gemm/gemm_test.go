package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// reference returns x·wᵀ in float64 and, per element, Σ_p |x_ip|·|w_jp|, the
// scale of the rounding error bound.
func reference(x, w []float32, m, k, n int) (ref, abs []float64) {
	ref = make([]float64, m*n)
	abs = make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s, a float64
			for p := range k {
				prod := float64(x[i*k+p]) * float64(w[j*k+p])
				s += prod
				a += math.Abs(prod)
			}
			ref[i*n+j], abs[i*n+j] = s, a
		}
	}
	return ref, abs
}

// errorBound is the classic inner-product bound (Higham, Accuracy and
// Stability, eq. 3.5): any float32 evaluation of Σ_{p<k} x_p·w_p in which each
// product passes through at most k roundings has error at most
// γ_k·Σ|x_p||w_p|, γ_k = k·u/(1−k·u), u = 2⁻²⁴. Every path here qualifies: a
// sequential FMA chain over a kc block plus one rounded add per later block,
// a lane-split dot product with its reduction tree, and the plain-Go
// multiply-then-add loops. The float64 reference adds its own k·2⁻⁵³ at most.
func errorBound(k int, abs float64) float64 {
	const u = 0x1p-24
	ku := float64(k) * u
	return (ku/(1-ku) + float64(k)*0x1p-53) * abs
}

func randMatrix(r *rand.Rand, size int) []float32 {
	s := make([]float32, size)
	for i := range s {
		s[i] = float32(2*r.Float64() - 1)
	}
	return s
}

type shape struct{ m, k, n int }

func (s shape) String() string { return fmt.Sprintf("%dx%dx%d", s.m, s.k, s.n) }

// testShapes covers m=1 (decode), n=1, k=1, k not a multiple of any unroll or
// vector width, tiles ragged in m and n, more than one kc block (k > 256), more
// than one mc block (m > 240) and more than one nc block (n > 3072), both
// sides of gemvMaxRows, plus a seeded random sample.
func testShapes() []shape {
	shapes := []shape{
		{1, 1, 1}, {1, 7, 1}, {1, 1, 9}, {2, 1, 1}, {1, 1024, 3}, {1, 33, 17}, {1, 257, 64},
		{1, 100, 5}, {1, 32, 4}, {3, 5, 1}, {64, 64, 1}, {6, 16, 16}, {12, 32, 32},
		{7, 17, 33}, {13, 300, 31}, {25, 513, 47}, {250, 20, 70}, {2, 300, 3100}, {20, 300, 3100},
		{16, 40, 9}, {17, 40, 9},
		{37, 3, 100}, {5, 258, 9},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 40 {
		shapes = append(shapes, shape{1 + r.IntN(70), 1 + r.IntN(400), 1 + r.IntN(90)})
	}
	return shapes
}

func forEachImpl(t *testing.T, fn func(t *testing.T)) {
	t.Helper()
	for _, name := range Impls() {
		t.Run(name, func(t *testing.T) {
			restore, err := SetImpl(name)
			if err != nil {
				t.Fatal(err)
			}
			defer restore()
			fn(t)
		})
	}
}

func TestMatMulWithinRoundingBound(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	type tcase struct {
		s       shape
		x, w    []float32
		ref, ab []float64
	}
	var cases []tcase
	for _, s := range testShapes() {
		x, w := randMatrix(r, s.m*s.k), randMatrix(r, s.n*s.k)
		ref, ab := reference(x, w, s.m, s.k, s.n)
		cases = append(cases, tcase{s, x, w, ref, ab})
	}
	forEachImpl(t, func(t *testing.T) {
		for _, c := range cases {
			out := make([]float32, c.s.m*c.s.n)
			for i := range out {
				out[i] = float32(math.NaN()) // every element must be written
			}
			MatMulThreads(out, c.x, c.w, c.s.m, c.s.k, c.s.n, 2)
			for i, got := range out {
				err := math.Abs(float64(got) - c.ref[i])
				bound := errorBound(c.s.k, c.ab[i])
				if !(err <= bound) {
					t.Fatalf("%v: out[%d,%d] = %g, want %g ± %g (error %g)",
						c.s, i/c.s.n, i%c.s.n, got, c.ref[i], bound, err)
				}
			}
		}
	})
}

// TestMatMulExactIntegers uses small integers, whose products and sums are
// exact in float32, so every implementation must return the exact answer.
func TestMatMulExactIntegers(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	ints := func(size int) []float32 {
		s := make([]float32, size)
		for i := range s {
			s[i] = float32(r.IntN(7) - 3)
		}
		return s
	}
	forEachImpl(t, func(t *testing.T) {
		for _, s := range []shape{{1, 1000, 13}, {19, 777, 45}, {300, 40, 3}, {13, 2, 3100}, {19, 2, 3100}} {
			x, w := ints(s.m*s.k), ints(s.n*s.k)
			ref, _ := reference(x, w, s.m, s.k, s.n)
			out := make([]float32, s.m*s.n)
			MatMul(out, x, w, s.m, s.k, s.n)
			for i := range out {
				if float64(out[i]) != ref[i] {
					t.Fatalf("%v: out[%d] = %g, want exactly %g", s, i, out[i], ref[i])
				}
			}
		}
	})
}

func TestMatMulThreadCountIndependent(t *testing.T) {
	defer func(v int) { minFlopsPerThread = v }(minFlopsPerThread)
	minFlopsPerThread = 1 // let even small products split
	r := rand.New(rand.NewPCG(7, 8))
	shapes := []shape{
		{37, 300, 70},   // split along n
		{100, 513, 5},   // n narrower than threads·nr: split along m
		{1, 1000, 37},   // decode: split rows of w in groups of four
		{5, 300, 41},    // small batch, same path
		{17, 700, 3100}, // two nc blocks, ragged
		{300, 200, 70},  // more rows than columns: split along m
	}
	forEachImpl(t, func(t *testing.T) {
		for _, s := range shapes {
			x, w := randMatrix(r, s.m*s.k), randMatrix(r, s.n*s.k)
			want := make([]float32, s.m*s.n)
			MatMulThreads(want, x, w, s.m, s.k, s.n, 1)
			for _, threads := range []int{2, 3, 4, 7} {
				got := make([]float32, s.m*s.n)
				MatMulThreads(got, x, w, s.m, s.k, s.n, threads)
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%v: %d threads: out[%d] = %x, 1 thread gave %x",
							s, threads, i, math.Float32bits(got[i]), math.Float32bits(want[i]))
					}
				}
			}
		}
	})
}

// TestAsmImplsAgree: the AVX2 and AVX-512 kernels reduce each element in the
// same order (the packed path by one FMA chain per kc block, the dot path by the
// same lane layout and reduction tree), so they must agree bit for bit: a
// result does not depend on which of the two CPUs computed it.
func TestAsmImplsAgree(t *testing.T) {
	if !slices.Contains(Impls(), "avx2") || !slices.Contains(Impls(), "avx512") {
		t.Skip("needs both avx2 and avx512")
	}
	r := rand.New(rand.NewPCG(9, 10))
	run := func(name string, s shape, x, w []float32) []float32 {
		restore, err := SetImpl(name)
		if err != nil {
			t.Fatal(err)
		}
		defer restore()
		out := make([]float32, s.m*s.n)
		MatMul(out, x, w, s.m, s.k, s.n)
		return out
	}
	for _, s := range []shape{{29, 600, 77}, {2, 33, 5}, {1, 1000, 37}, {1, 77, 6}} {
		x, w := randMatrix(r, s.m*s.k), randMatrix(r, s.n*s.k)
		a, b := run("avx2", s, x, w), run("avx512", s, x, w)
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				t.Fatalf("%v: out[%d]: avx2 %x, avx512 %x", s, i, math.Float32bits(a[i]), math.Float32bits(b[i]))
			}
		}
	}
}

func TestMatMulZeroSizes(t *testing.T) {
	out := []float32{1, 2, 3, 4, 5, 6}
	MatMul(out, nil, nil, 2, 0, 3)
	if !slices.Equal(out, make([]float32, 6)) {
		t.Errorf("k=0: out = %v, want zeros", out)
	}
	MatMul(nil, nil, []float32{1}, 0, 1, 1) // m=0: nothing to do, must not panic
}

func TestMatMulShapePanics(t *testing.T) {
	cases := []struct {
		out, x, w []float32
		m, k, n   int
		want      string
	}{
		{make([]float32, 6), make([]float32, 5), make([]float32, 9), 2, 3, 3,
			"gemm: x has 5 elements, need m·k = 2·3 = 6"},
		{make([]float32, 6), make([]float32, 6), make([]float32, 8), 2, 3, 3,
			"gemm: w has 8 elements, need n·k = 3·3 = 9"},
		{make([]float32, 5), make([]float32, 6), make([]float32, 9), 2, 3, 3,
			"gemm: out has 5 elements, need m·n = 2·3 = 6"},
		{nil, nil, nil, -1, 3, 3, "gemm: negative dimension m=-1 k=3 n=3"},
	}
	for _, c := range cases {
		func() {
			defer func() {
				if got := recover(); got != c.want {
					t.Errorf("panic %v, want %q", got, c.want)
				}
			}()
			MatMul(c.out, c.x, c.w, c.m, c.k, c.n)
		}()
	}
}

func TestSetImplUnknown(t *testing.T) {
	_, err := SetImpl("sse9")
	if err == nil {
		t.Fatal("SetImpl(sse9) succeeded")
	}
	want := fmt.Sprintf("gemm: implementation \"sse9\" not available (have %v)", Impls())
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestSplitCoversRange(t *testing.T) {
	for units := range 20 {
		for parts := 1; parts < 6; parts++ {
			next := 0
			for p := range parts {
				lo, hi := split(units, parts, p)
				if lo != next || hi < lo || hi-lo > units/parts+1 {
					t.Fatalf("split(%d, %d, %d) = %d, %d after %d", units, parts, p, lo, hi, next)
				}
				next = hi
			}
			if next != units {
				t.Fatalf("split(%d, %d) ends at %d", units, parts, next)
			}
		}
	}
}

// TestMatMulConcurrentCallers: packed buffers come from a pool, so callers
// on many goroutines must not see each other's panels.
func TestMatMulConcurrentCallers(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	shapes := []shape{{40, 300, 50}, {7, 64, 130}, {1, 500, 33}, {100, 20, 3}}
	type job struct {
		s          shape
		x, w, want []float32
	}
	jobs := make([]job, len(shapes))
	for i, s := range shapes {
		x, w := randMatrix(r, s.m*s.k), randMatrix(r, s.n*s.k)
		want := make([]float32, s.m*s.n)
		MatMulThreads(want, x, w, s.m, s.k, s.n, 1)
		jobs[i] = job{s, x, w, want}
	}
	errs := make(chan error, 4*len(jobs))
	var wg sync.WaitGroup
	for range 4 {
		for _, j := range jobs {
			wg.Go(func() {
				for range 5 {
					got := make([]float32, len(j.want))
					MatMulThreads(got, j.x, j.w, j.s.m, j.s.k, j.s.n, 2)
					if !slices.Equal(got, j.want) {
						errs <- fmt.Errorf("%v: concurrent result differs", j.s)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestDefaultImplIsFastestAvailable: registration goes slowest to fastest.
func TestDefaultImplIsFastestAvailable(t *testing.T) {
	want := "go"
	for _, name := range []string{"avx2", "avx512"} {
		if slices.Contains(Impls(), name) {
			want = name
		}
	}
	if got := Impl(); got != want {
		t.Errorf("Impl() = %q with %v available, want %q", got, Impls(), want)
	}
}

// TestPackPanels checks the packed layout element by element, for every
// implementation's transpose kernels: dst[q·width·kc + p·width + i] =
// src[q·width+i][p0+p], zero past the last row.
func TestPackPanels(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	const ld = 70
	src := randMatrix(r, 45*ld)
	for _, name := range Impls() {
		im := impls[name]
		for _, width := range []int{4, 6, 12, 16, 32} {
			for _, rows := range []int{1, 5, 8, 13, 45} {
				for _, kc := range []int{1, 3, 8, 12, 37} {
					p0 := 70 - kc - 2
					panels := (rows + width - 1) / width
					dst := make([]float32, panels*width*kc)
					for i := range dst {
						dst[i] = float32(math.NaN())
					}
					packPanels(dst, src, ld, rows, p0, kc, width, im.transpose8, im.transpose4)
					for q := range panels {
						for p := range kc {
							for i := range width {
								want := float32(0)
								if row := q*width + i; row < rows {
									want = src[row*ld+p0+p]
								}
								if got := dst[q*width*kc+p*width+i]; math.Float32bits(got) != math.Float32bits(want) {
									t.Fatalf("%s width %d rows %d kc %d: panel %d p %d i %d = %g, want %g",
										name, width, rows, kc, q, p, i, got, want)
								}
							}
						}
					}
				}
			}
		}
	}
}

// TestSmallBatchRowsMatchSingleRows: up to gemvMaxRows rows of x take the
// decode path, so each row of a small batch is bit-identical to multiplying
// that row alone.
func TestSmallBatchRowsMatchSingleRows(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	const k, n = 301, 45
	forEachImpl(t, func(t *testing.T) {
		for _, m := range []int{2, 7, gemvMaxRows} {
			x, w := randMatrix(r, m*k), randMatrix(r, n*k)
			batch := make([]float32, m*n)
			MatMul(batch, x, w, m, k, n)
			for i := range m {
				single := make([]float32, n)
				MatMul(single, x[i*k:(i+1)*k], w, 1, k, n)
				for j := range n {
					if math.Float32bits(batch[i*n+j]) != math.Float32bits(single[j]) {
						t.Fatalf("m=%d: row %d col %d: batch %x, alone %x",
							m, i, j, math.Float32bits(batch[i*n+j]), math.Float32bits(single[j]))
					}
				}
			}
		}
	})
}
