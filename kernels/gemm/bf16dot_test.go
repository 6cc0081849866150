package gemm

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// roundedShapes: m = 1 and batches, k around the kernel's 64-value blocks
// (the tail block is zero-padded; odd k splits a pair), ragged groups of
// four rows.
var roundedShapes = []shape{
	{1, 1, 1}, {1, 63, 5}, {1, 64, 4}, {1, 65, 7}, {1, 130, 9}, {3, 127, 13},
	{1, 1000, 37}, {16, 257, 21}, {40, 300, 6},
}

func roundedOperands(r *rand.Rand, s shape) ([]float32, []uint16) {
	return randMatrix(r, s.m*s.k), randHalf(r, halfFormats[0], s.n*s.k)
}

// TestMatMulBF16RoundedSameEverywhere: the VDPBF16PS kernel and the Go
// emulation give the same bits, for any thread count.
func TestMatMulBF16RoundedSameEverywhere(t *testing.T) {
	defer func(v int) { minFlopsPerThread = v }(minFlopsPerThread)
	minFlopsPerThread = 1
	r := rand.New(rand.NewPCG(31, 32))
	type tcase struct {
		s    shape
		x    []float32
		w    []uint16
		want []float32
	}
	var cases []tcase
	restore, err := SetImpl("go")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range roundedShapes {
		x, w := roundedOperands(r, s)
		want := make([]float32, s.m*s.n)
		MatMulBF16RoundedThreads(want, x, w, s.m, s.k, s.n, 1)
		cases = append(cases, tcase{s, x, w, want})
	}
	// Tiny operands: denormal products and sums, which VDPBF16PS flushes to
	// zero (x 2⁻¹⁴⁰..2⁻⁶⁰, w 2⁻¹³³..2⁻⁵⁸); and denormal x against w of
	// 2⁰..2²⁰, whose products would be normal if x were not read as zero.
	for _, c := range []struct {
		s            shape
		xExp, xRange int
		wExp, wRange int
	}{{shape{2, 192, 8}, -140, 80, 0, 70}, {shape{1, 77, 5}, -133, 7, 127, 20}} {
		s := c.s
		x, w := make([]float32, s.m*s.k), make([]uint16, s.n*s.k)
		for i := range x {
			x[i] = float32(r.NormFloat64() * math.Ldexp(1, c.xExp+r.IntN(c.xRange)))
		}
		for i := range w {
			e := uint16(c.wExp + r.IntN(c.wRange))
			w[i] = uint16(r.IntN(2))<<15 | e<<7 | uint16(r.IntN(1<<7))
		}
		want := make([]float32, s.m*s.n)
		MatMulBF16RoundedThreads(want, x, w, s.m, s.k, s.n, 1)
		cases = append(cases, tcase{s, x, w, want})
	}
	restore()
	hw := false
	for _, name := range Impls() {
		hw = hw || impls[name].dpbf16 != nil
	}
	if !hw {
		t.Log("no AVX512_BF16 here: only the emulation runs")
	}
	forEachImpl(t, func(t *testing.T) {
		for _, c := range cases {
			for _, threads := range []int{1, 2, 3} {
				got := make([]float32, len(c.want))
				MatMulBF16RoundedThreads(got, c.x, c.w, c.s.m, c.s.k, c.s.n, threads)
				for i := range got {
					if math.Float32bits(got[i]) != math.Float32bits(c.want[i]) {
						t.Fatalf("%v, %d threads: out[%d] = %x (%g), Go emulation %x (%g)", c.s, threads, i,
							math.Float32bits(got[i]), got[i], math.Float32bits(c.want[i]), c.want[i])
					}
				}
			}
		}
	})
}

// TestMatMulBF16RoundedWithinBound: the result is x rounded to bf16 times w,
// within float32 summation error; compared with the float64 product of the
// unrounded x, the difference stays within the 2⁻⁸ relative rounding of x.
func TestMatMulBF16RoundedWithinBound(t *testing.T) {
	r := rand.New(rand.NewPCG(33, 34))
	for _, s := range roundedShapes {
		x, w := roundedOperands(r, s)
		xr, wide := make([]float32, len(x)), make([]float32, len(w))
		for i, v := range x {
			xr[i] = math.Float32frombits(uint32(roundBF16(v)) << 16)
			if e := math.Abs(float64(xr[i] - v)); e > math.Abs(float64(v))*0x1p-8 {
				t.Fatalf("roundBF16(%g) = %g, off by more than 2⁻⁸", v, xr[i])
			}
		}
		widenBF16Go(wide, w)
		ref, abs := reference(xr, wide, s.m, s.k, s.n)
		refX, _ := reference(x, wide, s.m, s.k, s.n)
		out := make([]float32, s.m*s.n)
		MatMulBF16Rounded(out, x, w, s.m, s.k, s.n)
		for i, got := range out {
			if err, bound := math.Abs(float64(got)-ref[i]), errorBound(s.k, abs[i]); !(err <= bound) {
				t.Fatalf("%v: out[%d] = %g, want %g ± %g (rounded x)", s, i, got, ref[i], bound)
			}
			if err, bound := math.Abs(float64(got)-refX[i]), errorBound(s.k, abs[i])+0x1p-8*abs[i]; !(err <= bound) {
				t.Fatalf("%v: out[%d] = %g, want %g ± %g (float32 x)", s, i, got, refX[i], bound)
			}
		}
	}
}

// TestMatMulBF16RoundedExactIntegers: small integers are exact in bf16 and
// so are their products and sums, whatever the order.
func TestMatMulBF16RoundedExactIntegers(t *testing.T) {
	r := rand.New(rand.NewPCG(35, 36))
	forEachImpl(t, func(t *testing.T) {
		s := shape{3, 999, 11}
		x, w := make([]float32, s.m*s.k), make([]uint16, s.n*s.k)
		for i := range x {
			x[i] = float32(r.IntN(9) - 4)
		}
		wide := make([]float32, len(w))
		for i := range w {
			wide[i] = float32(r.IntN(9) - 4)
			w[i] = uint16(math.Float32bits(wide[i]) >> 16)
		}
		ref, _ := reference(x, wide, s.m, s.k, s.n)
		out := make([]float32, s.m*s.n)
		MatMulBF16Rounded(out, x, w, s.m, s.k, s.n)
		for i := range out {
			if float64(out[i]) != ref[i] {
				t.Fatalf("out[%d] = %g, want exactly %g", i, out[i], ref[i])
			}
		}
	})
}

// TestMatMulBF16RoundedRowsIndependent: a row's result does not depend on
// the other rows of the batch.
func TestMatMulBF16RoundedRowsIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(37, 38))
	s := shape{20, 200, 9}
	x, w := roundedOperands(r, s)
	batch := make([]float32, s.m*s.n)
	MatMulBF16Rounded(batch, x, w, s.m, s.k, s.n)
	for i := range s.m {
		single := make([]float32, s.n)
		MatMulBF16Rounded(single, x[i*s.k:(i+1)*s.k], w, 1, s.k, s.n)
		if !slices.Equal(single, batch[i*s.n:(i+1)*s.n]) {
			t.Fatalf("row %d: alone %v, in batch %v", i, single, batch[i*s.n:(i+1)*s.n])
		}
	}
}

func TestRoundBF16(t *testing.T) {
	cases := []struct {
		bits uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1
		{0x3f808000, 0x3f80}, // tie, even below
		{0x3f818000, 0x3f82}, // tie, odd below: up
		{0x3f808001, 0x3f81}, // above the tie
		{0x3f807fff, 0x3f80}, // below the tie
		{0xbf818000, 0xbf82}, // sign kept
		{0x7f7fffff, 0x7f80}, // largest float32 rounds to infinity
		{0x7f800000, 0x7f80}, // infinity
		{0x7f800001, 0x7fc0}, // signaling NaN made quiet
		{0xffc00000, 0xffc0}, // quiet NaN
		{0x00000001, 0x0000}, // tiny denormal rounds to zero
	}
	for _, c := range cases {
		if got := roundBF16(math.Float32frombits(c.bits)); got != c.want {
			t.Errorf("roundBF16(%#08x) = %#04x, want %#04x", c.bits, got, c.want)
		}
	}
}

func TestDPBF16StepFlushesDenormals(t *testing.T) {
	const one, tiny = 0x3f80, 0x0001 // 1 and the smallest bf16 denormal
	if got := dpbf16Step(2, tiny, one); got != 2 {
		t.Errorf("2 + denormal·1 = %g, want 2", got)
	}
	// 2⁻¹²⁶ · 2⁻¹ is a denormal result: flushed to zero.
	if got := dpbf16Step(0, 0x0080, 0x3f00); got != 0 || math.Signbit(float64(got)) {
		t.Errorf("2⁻¹²⁶·2⁻¹ = %g, want +0", got)
	}
	if got := dpbf16Step(-0x1p-130, one, 0); got != 0 {
		t.Errorf("denormal accumulator + 0 = %g, want 0", got)
	}
	if got := dpbf16Step(1, 0x4040, 0x4000); got != 7 { // 1 + 3·2
		t.Errorf("1 + 3·2 = %g, want 7", got)
	}
}
