package tensor

import (
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

// swiGLUCheck runs SwiGLU and the scalar loop on copies of gate, up and
// reports the first element whose bits differ (NaNs compare as NaNs).
func swiGLUCheck(t *testing.T, gate, up []float32) {
	t.Helper()
	want := append([]float32(nil), gate...)
	swiGLUGo(want, up)
	got := append([]float32(nil), gate...)
	SwiGLU(got, up)
	for i := range want {
		w, g := want[i], got[i]
		if math.Float32bits(w) != math.Float32bits(g) && !(w != w && g != g) {
			t.Fatalf("SwiGLU(gate=%g (%#08x), up=%g)[%d] = %g (%#08x), scalar %g (%#08x)",
				gate[i], math.Float32bits(gate[i]), up[i], i, g, math.Float32bits(g), w, math.Float32bits(w))
		}
	}
}

// TestSwiGLUVectorBitIdentical pins the vector kernel to the scalar loop
// (float32(math.Exp) inside SiLU) bit for bit: a strided sweep over every
// sign and exponent of float32 (subnormals, the overflow and underflow
// edges of e^x, infinities and NaN included), a dense sweep where SiLU
// bends, and random activations of every length's tail.
func TestSwiGLUVectorBitIdentical(t *testing.T) {
	if swiGLUVector(make([]float32, 8), make([]float32, 8)) == 0 {
		t.Log("no vector kernel on this CPU: checking the scalar path against itself")
	}
	var gate []float32
	for b := uint64(0); b < 1<<32; b += 4093 {
		gate = append(gate, math.Float32frombits(uint32(b)))
	}
	for x := float32(-120); x <= 120; x += 1.0 / 1024 {
		gate = append(gate, x, math.Nextafter32(x, 200))
	}
	for _, x := range []float32{0, float32(math.Copysign(0, -1)), 88.72283, -88.72283, 103.97208, -103.97208, 104, -104,
		700, -700, 709.8, -709.8, 745.2, -745.2, math.MaxFloat32, -math.MaxFloat32, float32(math.Inf(1)), float32(math.Inf(-1))} {
		gate = append(gate, x)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	up := make([]float32, len(gate))
	for i := range up {
		up[i] = float32(rng.NormFloat64())
	}
	swiGLUCheck(t, gate, up)

	for n := range 40 {
		g, u := make([]float32, n), make([]float32, n)
		for i := range g {
			g[i], u[i] = float32(rng.NormFloat64()*4), float32(rng.NormFloat64())
		}
		swiGLUCheck(t, g, u)
	}
}

// TestSwiGLUVectorExhaustive checks every float32 gate value (up = 1.5,
// which scales exactly) when LRMC_SWIGLU_EXHAUSTIVE is set: about a
// minute of CPU, so not in the ordinary run.
func TestSwiGLUVectorExhaustive(t *testing.T) {
	if os.Getenv("LRMC_SWIGLU_EXHAUSTIVE") == "" {
		t.Skip("set LRMC_SWIGLU_EXHAUSTIVE=1 to check all 2³² gate values")
	}
	const chunk = 1 << 20
	gate, up := make([]float32, chunk), make([]float32, chunk)
	for i := range up {
		up[i] = 1.5
	}
	for base := uint64(0); base < 1<<32; base += chunk {
		for i := range gate {
			gate[i] = math.Float32frombits(uint32(base) + uint32(i))
		}
		swiGLUCheck(t, gate, up)
	}
}
