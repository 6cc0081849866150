package attention

import (
	"math"
	"math/rand/v2"
	"testing"
)

// withAVX2 runs fn with the assembly kernels switched on or off.
func withAVX2(on bool, fn func()) {
	defer func(was bool) { useAVX2 = was }(useAVX2)
	useAVX2 = on
	fn()
}

// TestAVX2MatchesGo wants the assembly kernels' bits to be the portable
// code's, on random arguments across and below the clamp, for lengths with
// and without a tail.
func TestAVX2MatchesGo(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2")
	}
	r := rand.New(rand.NewPCG(9, 10))
	same := func(what string, n int, got, want []float32) {
		t.Helper()
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s, n=%d: element %d: AVX2 %g, Go %g", what, n, i, got[i], want[i])
			}
		}
	}
	for _, n := range []int{1, 7, 8, 9, 64, 131} {
		for range 200 {
			x := make([]float32, n)
			for i := range x {
				x[i] = -100 * r.Float32() * r.Float32()
			}
			shift, a := float32(r.NormFloat64()), r.Float32()
			o := make([]float32, n)
			for i := range o {
				o[i] = float32(r.NormFloat64())
			}

			var got, want [3][]float32
			var gotSum, wantSum, gotMax, wantMax float32
			for _, on := range []bool{false, true} {
				e, oo := append([]float32(nil), x...), append([]float32(nil), o...)
				var sum, mx float32
				withAVX2(on, func() {
					mx = rowMax(x, -50)
					sum = expShiftSum(e, shift)
					rescaleAdd(oo, x, a)
				})
				if on {
					got, gotSum, gotMax = [3][]float32{e, oo}, sum, mx
				} else {
					want, wantSum, wantMax = [3][]float32{e, oo}, sum, mx
				}
			}
			same("expShiftSum", n, got[0], want[0])
			same("rescaleAdd", n, got[1], want[1])
			same("sum", n, []float32{gotSum}, []float32{wantSum})
			same("rowMax", n, []float32{gotMax}, []float32{wantMax})
		}
	}
}

// TestCausalSameWithoutAVX2 wants Causal's bits on the portable path to be
// those with the assembly kernels.
func TestCausalSameWithoutAVX2(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2")
	}
	p := newProblem(rand.New(rand.NewPCG(13, 14)), 2, 131, 4, 2, 64, 4)
	want := p.causal()
	var got []float32
	withAVX2(false, func() { got = p.causal() })
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("out[%d]: portable %g, AVX2 %g", i, got[i], want[i])
		}
	}
}
