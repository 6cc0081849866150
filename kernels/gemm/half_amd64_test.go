//go:build !purego

package gemm

import (
	"fmt"
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
		avx2, avx512 dotsFunc[uint16]
	}{
		{"bf16", halfFormats[0], bf16DotsAVX2, bf16DotsAVX512},
		{"f16", halfFormats[1], f16DotsAVX2, f16DotsAVX512},
	}
	for _, kern := range kernels {
		for _, k := range []int{1, 31, 32, 33, 64, 100, 1029} {
			// Rows ld = k+3 apart, 1 to 9 of them: whole passes of both
			// flavours and the rows left over.
			for _, rows := range []int{1, 2, 3, 4, 5, 9} {
				ld := k + 3
				x := randMatrix(r, k)
				w := randHalf(r, kern.f, rows*ld)
				wide := make([]float32, len(w))
				kern.f.widenGo(wide, w)
				a, b, want := make([]float32, rows), make([]float32, rows), make([]float32, rows)
				kern.avx2(a, x, w, ld)
				kern.avx512(b, x, w, ld)
				avx512Impl.dots(want, x, wide, ld)
				for i := range want {
					if math.Float32bits(a[i]) != math.Float32bits(want[i]) || math.Float32bits(b[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s k=%d rows=%d row %d: avx2 %x, avx512 %x, float32 kernel %x", kern.name, k, rows, i,
							math.Float32bits(a[i]), math.Float32bits(b[i]), math.Float32bits(want[i]))
					}
				}
			}
		}
	}
}

// BenchmarkDecodePrefetch compares prefetch distances of the dot kernels
// (tuning aid; 0 prefetches only the lines being read, i.e. none ahead):
//
//	go test -run=NONE -bench=DecodePrefetch ./kernels/gemm
func BenchmarkDecodePrefetch(b *testing.B) {
	defer func(v int) { prefetchBytes = v }(prefetchBytes)
	for _, c := range decodeShapes {
		for _, format := range []string{"f32", "bf16"} {
			for _, kib := range []int{0, 2, 4, 8, 16, 32} {
				b.Run(fmt.Sprintf("%s/%v/%dKiB", format, c, kib), func(b *testing.B) {
					prefetchBytes = kib << 10
					benchHalf(b, c, format, 1)
				})
			}
		}
	}
}

// TestDotKernelsAgree: the float32 dot kernels of both flavours return the
// same bits for rows ld apart, whole passes and leftover rows alike, and a
// row's result does not depend on the rows around it.
func TestDotKernelsAgree(t *testing.T) {
	if !cpu.X86.HasAVX512F {
		t.Skip("needs AVX512F")
	}
	r := rand.New(rand.NewPCG(29, 30))
	for _, k := range []int{1, 32, 33, 576, 1029} {
		for _, rows := range []int{1, 3, 4, 7, 12} {
			ld := k + 5
			x, w := randMatrix(r, k), randMatrix(r, rows*ld)
			a, b := make([]float32, rows), make([]float32, rows)
			avx2Impl.dots(a, x, w, ld)
			avx512Impl.dots(b, x, w, ld)
			for i := range a {
				var alone [1]float32
				avx512Impl.dots(alone[:], x, w[i*ld:i*ld+k], k)
				if math.Float32bits(a[i]) != math.Float32bits(b[i]) || math.Float32bits(alone[0]) != math.Float32bits(b[i]) {
					t.Fatalf("k=%d rows=%d row %d: avx2 %x, avx512 %x, alone %x", k, rows, i,
						math.Float32bits(a[i]), math.Float32bits(b[i]), math.Float32bits(alone[0]))
				}
			}
		}
	}
}
