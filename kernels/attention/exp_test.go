package attention

import (
	"math"
	"math/rand/v2"
	"testing"

	"lrmc/kernels/tensor"
)

// TestExpShiftMatchesFastExp32 checks expShiftGo against tensor.FastExp32
// (within 2 ulps of e^x, tested there) bit for bit on every float32 in
// [−87, 0] whose low 8 mantissa bits are zero (about 2.5 million values),
// and the clamp below −87.
func TestExpShiftMatchesFastExp32(t *testing.T) {
	lo := math.Float32bits(clampLo)
	buf := make([]float32, 1)
	for bits := uint32(0x80000000); bits <= lo; bits += 1 << 8 {
		x := math.Float32frombits(bits)
		buf[0] = x
		expShiftGo(buf, 0)
		if want := tensor.FastExp32(x); buf[0] != want {
			t.Fatalf("expShiftGo(%g) = %g, FastExp32 %g", x, buf[0], want)
		}
	}
	want := tensor.FastExp32(clampLo)
	for _, x := range []float32{-87.0001, -100, -1e30, float32(math.Inf(-1))} {
		buf[0] = x
		expShiftGo(buf, 0)
		if buf[0] != want {
			t.Errorf("expShiftGo(%g) = %g, want e^−87 = %g", x, buf[0], want)
		}
	}
	buf[0] = 1.5
	expShiftGo(buf, 2)
	if want := tensor.FastExp32(-0.5); buf[0] != want {
		t.Errorf("expShiftGo(1.5, shift 2) = %g, want FastExp32(−0.5) = %g", buf[0], want)
	}
}

// TestExpShiftAVX2MatchesGo wants the assembly's bits to be the Go code's,
// on random arguments across and below the range, for lengths with and
// without a tail.
func TestExpShiftAVX2MatchesGo(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2")
	}
	r := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{1, 7, 8, 9, 64, 1000} {
		for range 200 {
			x := make([]float32, n)
			for i := range x {
				x[i] = -100 * r.Float32() * r.Float32()
			}
			shift := float32(r.NormFloat64())
			want := append([]float32(nil), x...)
			expShiftGo(want, shift)
			expShift(x, shift)
			for i := range x {
				if math.Float32bits(x[i]) != math.Float32bits(want[i]) {
					t.Fatalf("n=%d: lane %d: AVX2 %g, Go %g", n, i, x[i], want[i])
				}
			}
		}
	}
}
