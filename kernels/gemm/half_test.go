package gemm

import (
	"math"
	"math/rand/v2"
	"testing"
)

// halfFormat bundles one 16-bit format's public entry points for table tests.
type halfFormat struct {
	name   string
	matMul func(out, x []float32, w []uint16, m, k, n, threads int)
	widen  func(dst []float32, src []uint16)
	// widenGo is the portable conversion, independent of the implementation.
	widenGo func(dst []float32, src []uint16)
	random  func(r *rand.Rand) uint16 // a finite value, zeros and subnormals included
}

var halfFormats = []halfFormat{
	{"bf16", MatMulBF16Threads, WidenBF16, widenBF16Go, func(r *rand.Rand) uint16 {
		// Exponents 2⁻²⁰..2⁴ (biased 107..131) and, one time in 32, zero or a
		// subnormal (biased exponent 0).
		e := uint16(107 + r.IntN(25))
		if r.IntN(32) == 0 {
			e = 0
		}
		return uint16(r.IntN(2))<<15 | e<<7 | uint16(r.IntN(1<<7))
	}},
	{"f16", MatMulF16Threads, WidenF16, widenF16Go, func(r *rand.Rand) uint16 {
		// Every finite exponent (biased 0..30: subnormals up to 65504).
		return uint16(r.IntN(2))<<15 | uint16(r.IntN(31))<<10 | uint16(r.IntN(1<<10))
	}},
}

func randHalf(r *rand.Rand, f halfFormat, size int) []uint16 {
	s := make([]uint16, size)
	for i := range s {
		s[i] = f.random(r)
	}
	return s
}

// f16Reference converts binary16 by its definition, in float64.
func f16Reference(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp, mant := int(h>>10)&0x1f, float64(h&0x3ff)
	switch exp {
	case 0x1f:
		if mant != 0 {
			return math.NaN()
		}
		return math.Inf(int(sign))
	case 0:
		return sign * math.Ldexp(mant, -24)
	}
	return sign * math.Ldexp(1+mant/1024, exp-15)
}

// TestWidenAllPatterns converts all 65536 bit patterns with every
// implementation's widening (assembly bodies and Go tails alike: 65536 is a
// multiple of 16, so a one-off slice shift sends the last values through the
// tail) and checks them against the formats' definitions.
func TestWidenAllPatterns(t *testing.T) {
	src := make([]uint16, 1<<16)
	for i := range src {
		src[i] = uint16(i)
	}
	forEachImpl(t, func(t *testing.T) {
		for _, f := range halfFormats {
			for _, off := range []int{0, 7} {
				dst := make([]float32, len(src)-off)
				f.widen(dst, src[off:])
				for i, got := range dst {
					h := src[off+i]
					var want float32
					if f.name == "bf16" {
						want = math.Float32frombits(uint32(h) << 16)
					} else {
						ref := f16Reference(h)
						want = float32(ref)
						if math.IsNaN(ref) {
							// Sign and payload kept, quiet bit set.
							want = math.Float32frombits(uint32(h&0x8000)<<16 | 0x7fc00000 | uint32(h&0x3ff)<<13)
						}
					}
					if math.Float32bits(got) != math.Float32bits(want) {
						t.Fatalf("%s off %d: widen(%#04x) = %#08x, want %#08x", f.name, off, h, math.Float32bits(got), math.Float32bits(want))
					}
				}
			}
		}
	})
}

func TestWidenKnownValues(t *testing.T) {
	cases := []struct {
		format string
		h      uint16
		want   float32
	}{
		{"bf16", 0x3f80, 1}, {"bf16", 0xc040, -3}, {"bf16", 0x7f7f, 0x1.fep127}, {"bf16", 0x0001, 0x1p-133},
		{"f16", 0x3c00, 1}, {"f16", 0xc200, -3}, {"f16", 0x7bff, 65504}, {"f16", 0x0001, 0x1p-24},
		{"f16", 0x03ff, 0x3ffp-24}, {"f16", 0x0400, 0x1p-14}, {"f16", 0x3555, 0x1.554p-2},
		{"f16", 0xfc00, float32(math.Inf(-1))},
	}
	for _, c := range cases {
		dst := make([]float32, 1)
		if c.format == "bf16" {
			WidenBF16(dst, []uint16{c.h})
		} else {
			WidenF16(dst, []uint16{c.h})
		}
		if dst[0] != c.want {
			t.Errorf("%s %#04x = %g, want %g", c.format, c.h, dst[0], c.want)
		}
	}
}

// halfShapes adds to testShapes the decode sizes around the dot kernels'
// 32-value blocks (k = 31, 32, 33, 64+5) with m from 1 to gemvMaxRows.
func halfShapes() []shape {
	s := testShapes()
	for _, k := range []int{31, 32, 33, 69} {
		for _, m := range []int{1, 4, gemvMaxRows} {
			s = append(s, shape{m, k, 13})
		}
	}
	return s
}

// TestMatMulHalfMatchesWidened is the contract of MatMulBF16 and MatMulF16:
// bit for bit MatMul on the widened weights, for every implementation, both
// paths (m ≤ gemvMaxRows and packed), ragged shapes and any thread count.
func TestMatMulHalfMatchesWidened(t *testing.T) {
	defer func(v int) { minFlopsPerThread = v }(minFlopsPerThread)
	minFlopsPerThread = 1 // let even small products split
	r := rand.New(rand.NewPCG(21, 22))
	type tcase struct {
		s    shape
		x    []float32
		w    []uint16
		wide []float32
	}
	for _, f := range halfFormats {
		var cases []tcase
		for _, s := range halfShapes() {
			w := randHalf(r, f, s.n*s.k)
			wide := make([]float32, len(w))
			f.widenGo(wide, w) // checked against the definitions by TestWidenAllPatterns
			cases = append(cases, tcase{s, randMatrix(r, s.m*s.k), w, wide})
		}
		t.Run(f.name, func(t *testing.T) {
			forEachImpl(t, func(t *testing.T) {
				for _, c := range cases {
					want := make([]float32, c.s.m*c.s.n)
					MatMulThreads(want, c.x, c.wide, c.s.m, c.s.k, c.s.n, 1)
					for _, threads := range []int{1, 2, 3} {
						got := make([]float32, len(want))
						for i := range got {
							got[i] = float32(math.NaN()) // every element must be written
						}
						f.matMul(got, c.x, c.w, c.s.m, c.s.k, c.s.n, threads)
						for i := range got {
							if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
								t.Fatalf("%v, %d threads: out[%d,%d] = %x (%g), MatMul on widened w %x (%g)",
									c.s, threads, i/c.s.n, i%c.s.n, math.Float32bits(got[i]), got[i],
									math.Float32bits(want[i]), want[i])
							}
						}
					}
				}
			})
		})
	}
}

// TestMatMulHalfWithinRoundingBound checks the values themselves against a
// float64 product of the exactly widened weights (not only against MatMul).
func TestMatMulHalfWithinRoundingBound(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	for _, f := range halfFormats {
		for _, s := range []shape{{1, 1000, 37}, {7, 301, 45}, {40, 600, 70}} {
			x, w := randMatrix(r, s.m*s.k), randHalf(r, f, s.n*s.k)
			wide := make([]float32, len(w))
			for i, h := range w {
				if f.name == "bf16" {
					wide[i] = math.Float32frombits(uint32(h) << 16)
				} else {
					wide[i] = float32(f16Reference(h))
				}
			}
			ref, abs := reference(x, wide, s.m, s.k, s.n)
			out := make([]float32, s.m*s.n)
			f.matMul(out, x, w, s.m, s.k, s.n, 2)
			for i, got := range out {
				if err, bound := math.Abs(float64(got)-ref[i]), errorBound(s.k, abs[i]); !(err <= bound) {
					t.Fatalf("%s %v: out[%d] = %g, want %g ± %g", f.name, s, i, got, ref[i], bound)
				}
			}
		}
	}
}

func TestMatMulHalfShapes(t *testing.T) {
	for _, f := range halfFormats {
		out := []float32{1, 2, 3, 4, 5, 6}
		f.matMul(out, nil, nil, 2, 0, 3, 1)
		for _, v := range out {
			if v != 0 {
				t.Fatalf("%s k=0: out = %v, want zeros", f.name, out)
			}
		}
		f.matMul(nil, nil, []uint16{1}, 0, 1, 1, 1) // m=0: nothing to do, must not panic
		want := "gemm: w has 8 elements, need n·k = 3·3 = 9"
		func() {
			defer func() {
				if got := recover(); got != want {
					t.Errorf("%s: panic %v, want %q", f.name, got, want)
				}
			}()
			f.matMul(make([]float32, 6), make([]float32, 6), make([]uint16, 8), 2, 3, 3, 1)
		}()
	}
}

// TestMatMulHalfDefaultThreads runs the GOMAXPROCS entry points once.
func TestMatMulHalfDefaultThreads(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	s := shape{20, 100, 50}
	x := randMatrix(r, s.m*s.k)
	for _, f := range []struct {
		halfFormat
		matMul func(out, x []float32, w []uint16, m, k, n int)
	}{{halfFormats[0], MatMulBF16}, {halfFormats[1], MatMulF16}} {
		w := randHalf(r, f.halfFormat, s.n*s.k)
		wide := make([]float32, len(w))
		f.widen(wide, w)
		got, want := make([]float32, s.m*s.n), make([]float32, s.m*s.n)
		f.matMul(got, x, w, s.m, s.k, s.n)
		MatMul(want, x, wide, s.m, s.k, s.n)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s: out[%d] = %g, MatMul on widened w %g", f.name, i, got[i], want[i])
			}
		}
	}
}
