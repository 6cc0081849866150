package half

import (
	"math/rand/v2"
	"testing"
)

// benchN values: 4 MiB of float32, beyond L2 like a weight matrix.
const benchN = 1 << 20

func BenchmarkDecode(b *testing.B) {
	src := make([]byte, 2*benchN)
	for i := range src {
		src[i] = byte(rand.Uint32())
	}
	dst := make([]float32, benchN)
	for name, f := range map[string]func([]float32, []byte){"f16": DecodeF16, "bf16": DecodeBF16} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(2 * benchN)
			for b.Loop() {
				f(dst, src)
			}
		})
	}
}

func BenchmarkNarrow(b *testing.B) {
	src := make([]float32, benchN)
	for i := range src {
		src[i] = rand.Float32()*2 - 1
	}
	dst := make([]uint16, benchN)
	for name, f := range map[string]func([]uint16, []float32){"f16": NarrowF16, "bf16": NarrowBF16} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(4 * benchN)
			for b.Loop() {
				f(dst, src)
			}
		})
	}
}
