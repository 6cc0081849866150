//go:build !purego

package gemm

import (
	"math"
	"math/rand/v2"
	"testing"

	"golang.org/x/sys/cpu"
)

// TestHalfDotKernelsAgree: the AVX-512 implementation falls back to the AVX2
// bf16 dot kernel on CPUs without AVX512BW, which is sound only if the two
// return the same bits (and the float32 kernel's on widened rows).
func TestHalfDotKernelsAgree(t *testing.T) {
	if !cpu.X86.HasAVX512F || !cpu.X86.HasAVX512BW || !cpu.X86.HasF16C {
		t.Skip("needs AVX512F, AVX512BW and F16C")
	}
	r := rand.New(rand.NewPCG(27, 28))
	kernels := []struct {
		name         string
		f            halfFormat
		avx2, avx512 func(x []float32, w0, w1, w2, w3 []uint16, out *[4]float32)
	}{
		{"bf16", halfFormats[0], bf16Dot4AVX2, bf16Dot4AVX512},
		{"f16", halfFormats[1], f16Dot4AVX2, f16Dot4AVX512},
	}
	for _, kern := range kernels {
		for _, k := range []int{1, 31, 32, 33, 64, 100, 1029} {
			x := randMatrix(r, k)
			var w [4][]uint16
			var wide [4][]float32
			for i := range w {
				w[i] = randHalf(r, kern.f, k)
				wide[i] = make([]float32, k)
				kern.f.widenGo(wide[i], w[i])
			}
			var a, b, want [4]float32
			kern.avx2(x, w[0], w[1], w[2], w[3], &a)
			kern.avx512(x, w[0], w[1], w[2], w[3], &b)
			avx512Impl.dot4(x, wide[0], wide[1], wide[2], wide[3], &want)
			for i := range want {
				if math.Float32bits(a[i]) != math.Float32bits(want[i]) || math.Float32bits(b[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s k=%d row %d: avx2 %x, avx512 %x, float32 kernel %x", kern.name, k, i,
						math.Float32bits(a[i]), math.Float32bits(b[i]), math.Float32bits(want[i]))
				}
			}
		}
	}
}
