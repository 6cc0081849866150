package attention

import (
	"math"
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

// TestExpShiftSum checks the results and the lane order of the sum on the
// portable path: elements 0..7 go to lanes 0..7, element 8 to lane 0, and
// the tail after the last multiple of eight is added in order.
func TestExpShiftSum(t *testing.T) {
	x := make([]float32, 19)
	for i := range x {
		x[i] = -float32(i) / 4
	}
	want := append([]float32(nil), x...)
	expShiftGo(want, 0)
	var lanes [8]float32
	for i, e := range want[:16] {
		lanes[i%8] += e
	}
	wantSum := ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]))
	wantSum = wantSum + want[16] + want[17] + want[18]
	if got := expShiftSum(x, 0); got != wantSum {
		t.Errorf("sum %g, want %g", got, wantSum)
	}
	for i := range x {
		if x[i] != want[i] {
			t.Errorf("x[%d] = %g, want %g", i, x[i], want[i])
		}
	}
	if got := expShiftSum([]float32{}, 3); got != 0 {
		t.Errorf("empty sum %g", got)
	}
}
