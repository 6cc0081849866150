package gemm

import (
	"math"
	"runtime"
	"sync"

	"lrmc/kernels/half"
)

// Hugging Face checkpoints ship weights as bfloat16 or IEEE half precision.
// MatMulBF16 and MatMulF16 take such a w as its raw 16-bit patterns and widen
// it to float32 inside the kernels, so w is read from memory at half the
// bytes of a float32 copy (decode, which streams w once per token, is bound
// by exactly that) and never needs a float32 copy at all. The activations x
// stay float32 and all arithmetic is float32: widening is exact, so the
// result is bit for bit MatMul on the widened w, for every implementation
// and thread count.

// MatMulBF16 computes out[m×n] = x[m×k]·wᵀ where w is [n×k] row-major
// bfloat16 (the upper 16 bits of a float32), using up to GOMAXPROCS threads.
// The result equals MatMul(out, x, WidenBF16(w), m, k, n) bit for bit. It
// panics if a slice is shorter than its shape needs.
func MatMulBF16(out, x []float32, w []uint16, m, k, n int) {
	MatMulBF16Threads(out, x, w, m, k, n, runtime.GOMAXPROCS(0))
}

// MatMulBF16Threads is MatMulBF16 with an explicit number of threads (values
// below 1 mean 1). The result does not depend on threads.
func MatMulBF16Threads(out, x []float32, w []uint16, m, k, n, threads int) {
	matMulHalf(out, x, w, m, k, n, threads, current().bf16)
}

// MatMulF16 computes out[m×n] = x[m×k]·wᵀ where w is [n×k] row-major IEEE
// 754 half precision (binary16), using up to GOMAXPROCS threads. The result
// equals MatMul(out, x, WidenF16(w), m, k, n) bit for bit. It panics if a
// slice is shorter than its shape needs.
func MatMulF16(out, x []float32, w []uint16, m, k, n int) {
	MatMulF16Threads(out, x, w, m, k, n, runtime.GOMAXPROCS(0))
}

// MatMulF16Threads is MatMulF16 with an explicit number of threads (values
// below 1 mean 1). The result does not depend on threads.
func MatMulF16Threads(out, x []float32, w []uint16, m, k, n, threads int) {
	matMulHalf(out, x, w, m, k, n, threads, current().f16)
}

func matMulHalf(out, x []float32, w []uint16, m, k, n, threads int, wk wkernels[uint16]) {
	if trivial(out, x, len(w), m, k, n) {
		return
	}
	out = out[:m*n]
	matMul(current(), wk, out, x[:m*k], w[:n*k], m, k, n, threads)
}

// WidenBF16 sets dst[i] to the bfloat16 src[i] as a float32 (exact: the bits
// shifted left by 16) for i < len(src). It panics if dst is shorter than src.
func WidenBF16(dst []float32, src []uint16) {
	current().bf16.widen(dst[:len(src)], src)
}

// WidenF16 sets dst[i] to the IEEE half-precision src[i] as a float32 for
// i < len(src). Every half, subnormals included, is exactly representable;
// infinities stay infinite and NaNs keep sign and payload but are made quiet,
// as the F16C instruction does. It panics if dst is shorter than src.
func WidenF16(dst []float32, src []uint16) {
	current().f16.widen(dst[:len(src)], src)
}

func widenBF16Go(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = math.Float32frombits(uint32(h) << 16)
	}
}

func widenF16Go(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	t := f16Table()
	for i, h := range src {
		dst[i] = t[h]
	}
}

// f16Table holds every binary16 value as a float32 (256 KiB, built on first
// use): a lookup is several times faster than converting field by field,
// which made the portable f16 product four times slower than the bf16 one.
var f16Table = sync.OnceValue(func() *[1 << 16]float32 {
	t := new([1 << 16]float32)
	for h := range t {
		t[h] = f16ToFloat32(uint16(h))
	}
	return t
})

// f16ToFloat32 converts one binary16 value exactly, matching VCVTPH2PS:
// kernels/half's conversion, with a NaN made quiet as the instruction does.
func f16ToFloat32(h uint16) float32 {
	f := half.ToFloat32F16(h)
	if f != f {
		f = math.Float32frombits(math.Float32bits(f) | 1<<22)
	}
	return f
}
