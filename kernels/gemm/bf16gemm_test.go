package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestMatMulBF16RoundedTilesMatchEmulation: the 3×4 VDPBF16PS tile path
// (m ≥ 3) gives the Go emulation's bits over shapes with k around the 32-
// and 64-value blocks and ragged tile rows and columns, with NaNs,
// infinities, denormals and signed zeros among the operands, for 1–3
// threads; and every row equals that row multiplied alone (m = 1, the dot
// path), so the result does not depend on m.
func TestMatMulBF16RoundedTilesMatchEmulation(t *testing.T) {
	defer func(v int) { minFlopsPerThread = v }(minFlopsPerThread)
	minFlopsPerThread = 1
	r := rand.New(rand.NewPCG(41, 42))
	special := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.Copysign(0, -1)), 0x1p-130, -0x1p-127, 0x1p-126, 3e38}
	var shapes []shape
	for _, m := range []int{3, 4, 5, 7, 13} {
		for _, k := range []int{1, 31, 32, 63, 64, 65, 127, 128, 200, 576} {
			for _, n := range []int{4, 5, 7, 9, 13} {
				if (m*31+k*7+n)%3 == 0 || k == 65 || k == 576 {
					shapes = append(shapes, shape{m, k, n})
				}
			}
		}
	}
	shapes = append(shapes, shape{40, 300, 6}, shape{50, 1000, 37})
	emulate := func(out, x []float32, w []uint16, s shape, threads int) {
		restore, err := SetImpl("go")
		if err != nil {
			t.Fatal(err)
		}
		defer restore()
		MatMulBF16RoundedThreads(out, x, w, s.m, s.k, s.n, threads)
	}
	// A NaN result is a NaN, but its sign is not specified: VDPBF16PS
	// makes the x86 default NaN (negative) or passes an operand's on, the
	// emulation whatever Go's float64 arithmetic gives (documented).
	same := func(a, b float32) bool {
		return math.Float32bits(a) == math.Float32bits(b) || a != a && b != b
	}
	identical := func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }
	for si, s := range shapes {
		x, w := randMatrix(r, s.m*s.k), randHalf(r, halfFormats[0], s.n*s.k)
		if si%2 == 1 { // every other shape gets special values
			for range 1 + s.m*s.k/50 {
				x[r.IntN(len(x))] = special[r.IntN(len(special))]
				w[r.IntN(len(w))] = roundBF16(special[r.IntN(len(special))])
			}
		}
		want := make([]float32, s.m*s.n)
		emulate(want, x, w, s, 1)
		forEachImpl(t, func(t *testing.T) {
			got := make([]float32, len(want))
			for _, threads := range []int{1, 2, 3} {
				MatMulBF16RoundedThreads(got, x, w, s.m, s.k, s.n, threads)
				for i := range got {
					if !same(got[i], want[i]) {
						t.Fatalf("%v, %d threads: out[%d] = %x (%g), Go emulation %x (%g)", s, threads, i,
							math.Float32bits(got[i]), got[i], math.Float32bits(want[i]), want[i])
					}
				}
			}
			row := make([]float32, s.n)
			for i := range s.m {
				MatMulBF16RoundedThreads(row, x[i*s.k:], w, 1, s.k, s.n, 1)
				for j := range row {
					if !identical(row[j], got[i*s.n+j]) {
						t.Fatalf("%v: row %d alone: out[%d] = %x, in the batch %x", s, i, j,
							math.Float32bits(row[j]), math.Float32bits(got[i*s.n+j]))
					}
				}
			}
		})
	}
}

// BenchmarkBF16Compute compares, in one run, the float32 GEMM (MatMul), the
// bf16-weight GEMM that widens w to float32 (MatMulBF16) and the bf16
// compute GEMM (MatMulBF16Rounded, VDPBF16PS tiles where the CPU has
// AVX512_BF16) on the prefill shapes, with the default implementation:
//
//	go test -run=NONE -bench=BF16Compute -count=5 ./kernels/gemm
//
// Names: product/shape m×k×n/threads; the products alternate within each
// shape so drift on a shared host hits them alike.
func BenchmarkBF16Compute(b *testing.B) {
	for _, s := range append(benchShapes[:2:2], smolPrefillShapes...) {
		for _, threads := range []int{1, 2} {
			out, x, wf := benchOperands(s)
			w := make([]uint16, len(wf))
			roundRowBF16(w, wf)
			for _, p := range []struct {
				name string
				mul  func()
			}{
				{"f32", func() { MatMulThreads(out, x, wf, s.m, s.k, s.n, threads) }},
				{"bf16w", func() { MatMulBF16Threads(out, x, w, s.m, s.k, s.n, threads) }},
				{"bf16c", func() { MatMulBF16RoundedThreads(out, x, w, s.m, s.k, s.n, threads) }},
			} {
				b.Run(fmt.Sprintf("%s/%v/t%d", p.name, s, threads), func(b *testing.B) {
					meter := startMeter(b, s)
					for b.Loop() {
						p.mul()
					}
					meter.report()
				})
			}
		}
	}
}

// TestRoundRowBF16: the vector rounding gives roundBF16's bits for every
// class of float32 (ties both ways, denormals that round up to the smallest
// normal, the largest finite values that round to infinity, infinities,
// NaNs of both signs and payloads), at every length around 16.
func TestRoundRowBF16(t *testing.T) {
	r := rand.New(rand.NewPCG(43, 44))
	vals := []uint32{0, 0x80000000, 0x00008000, 0x00018000, 0x007fffff, 0x807fffff, 0x00000001,
		0x3f808000, 0x3f818000, 0x3f80ffff, 0x7f7fffff, 0xff7fffff, 0x7f800000, 0xff800000,
		0x7f800001, 0xff800001, 0x7fc00000, 0x7fffffff, 0xffbfffff, 0x7f808000}
	src := make([]float32, 1000)
	for i := range src {
		if i < len(vals) {
			src[i] = math.Float32frombits(vals[i])
		} else {
			src[i] = math.Float32frombits(r.Uint32())
		}
	}
	for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 33, 1000} {
		for _, off := range []int{0, 3} {
			if off+n > len(src) {
				continue
			}
			s := src[off : off+n]
			got := make([]uint16, n)
			roundRowBF16(got, s)
			for i, v := range s {
				if want := roundBF16(v); got[i] != want {
					t.Fatalf("n=%d off=%d: roundRowBF16(%#08x) = %#04x, roundBF16 %#04x", n, off, math.Float32bits(v), got[i], want)
				}
			}
		}
	}
	if roundBF16Vec == nil {
		t.Log("no AVX-512: only the Go rounding ran")
	}
}

// smolPrefillShapes are SmolLM-135M's projections in a 512-token prefill:
// q/o, FFN up, FFN down.
var smolPrefillShapes = []shape{{512, 576, 576}, {512, 576, 1536}, {512, 1536, 576}}
