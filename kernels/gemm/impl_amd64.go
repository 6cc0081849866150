//go:build !purego

package gemm

import "golang.org/x/sys/cpu"

// The tile shapes below must match the ones asmgen emits.
//
// AVX2: a 6×16 tile is 12 ymm accumulators plus 2 for B and 2 for
// broadcasts, the whole 16-register file. AVX-512: a 12×32 tile is 24 zmm
// accumulators; each k step issues 2 B loads and 12 broadcasts for 24 FMAs.
// Zen 4 executes a zmm FMA as two 256-bit halves, so there both reach the
// same FLOP rate in principle and the zmm kernel just needs fewer loads per
// FMA; Xeons with two 512-bit FMA ports run the zmm kernel twice as fast.
//
// Both use kc = 256, which keeps the two bit-identical. Blocking variants
// (kc 128–384, mc 96–480) measured within noise of each other on the shared
// development host (BenchmarkBlocking).
var (
	avx2Impl = &impl{
		name: "avx2", mr: 6, nr: 16, kc: 256, mc: 240, nc: 3072,
		kernel: func(kc int, a, b, c []float32, ldc int, accum bool) {
			checkTile(kc, a, b, c, ldc, 6, 16)
			gemmKernelAVX2(kc, &a[0], &b[0], &c[0], ldc, accum)
		},
		dot4: func(x, w0, w1, w2, w3 []float32, out *[4]float32) {
			dot4Asm(func(n int, x, w0, w1, w2, w3 *float32, out *[4]float32) {
				dot2AVX2(n, x, w0, w1, (*[2]float32)(out[:2]))
				dot2AVX2(n, x, w2, w3, (*[2]float32)(out[2:]))
			}, x, w0, w1, w2, w3, out)
		},
		transpose8: transpose8Asm,
		transpose4: transpose4Asm,
	}
	avx512Impl = &impl{
		name: "avx512", mr: 12, nr: 32, kc: 256, mc: 240, nc: 3072,
		kernel: func(kc int, a, b, c []float32, ldc int, accum bool) {
			checkTile(kc, a, b, c, ldc, 12, 32)
			gemmKernelAVX512(kc, &a[0], &b[0], &c[0], ldc, accum)
		},
		dot4: func(x, w0, w1, w2, w3 []float32, out *[4]float32) {
			dot4Asm(dot4AVX512, x, w0, w1, w2, w3, out)
		},
		transpose8: transpose8Asm,
		transpose4: transpose4Asm,
	}
)

func registerAsm() {
	// x/sys/cpu reports AVX, AVX2 and AVX-512 only when the OS also saves the
	// wider registers (XGETBV), so these flags are safe to act on.
	if !cpu.X86.HasAVX2 || !cpu.X86.HasFMA {
		return
	}
	// 16-bit weights. The AVX2 and AVX-512 dot kernels share one lane layout,
	// so whichever runs, the bits are the same; the AVX-512 bf16 one needs
	// AVX512BW (VPMOVZXWD on zmm), f16 needs F16C (its AVX-512 form is
	// AVX512F). Without F16C, f16 is widened in Go.
	bf16 := wkernels[uint16]{dot4: bf16Dot4AVX2, widen: widenBF16Asm}
	f16 := wkernels[uint16]{widen: widenF16Go}
	if cpu.X86.HasF16C {
		f16 = wkernels[uint16]{dot4: f16Dot4AVX2, widen: widenF16Asm}
	}
	avx2Impl.bf16, avx2Impl.f16 = bf16, f16
	register(avx2Impl)

	// The AVX-512 implementation still packs with the AVX2 transposes.
	if cpu.X86.HasAVX512F {
		if cpu.X86.HasAVX512BW {
			bf16.dot4 = bf16Dot4AVX512
		}
		if cpu.X86.HasF16C {
			f16.dot4 = f16Dot4AVX512
		}
		avx512Impl.bf16, avx512Impl.f16 = bf16, f16
		if cpu.X86.HasAVX512BF16 {
			avx512Impl.dpbf16 = dpbf16AVX512
		}
		register(avx512Impl)
	}
}

// dpbf16AVX512 is the VDPBF16PS dpbf16Kernel.
func dpbf16AVX512(n int, x, w0, w1, w2, w3 []uint16, tail *[5][64]uint16, out *[4]float32) {
	if n < 0 || n%64 != 0 || n == 0 && tail == nil || len(x) < n || len(w0) < n || len(w1) < n || len(w2) < n || len(w3) < n {
		panic("gemm: dpbf16 operands out of range")
	}
	if n == 0 {
		// No body: any valid address will do, the loop does not run.
		x, w0, w1, w2, w3 = tail[0][:], tail[0][:], tail[0][:], tail[0][:], tail[0][:]
	}
	dot4DPBF16AVX512(n, &x[0], &w0[0], &w1[0], &w2[0], &w3[0], tail, out)
}

// The 16-bit dot kernels: assembly over the largest multiple of 32 of k,
// then the float32 tail loop on the widened rest.
func bf16Dot4AVX2(x []float32, w0, w1, w2, w3 []uint16, out *[4]float32) {
	dot4HalfAsm(func(n int, x *float32, w0, w1, w2, w3 *uint16, out *[4]float32) {
		dot2BF16AVX2(n, x, w0, w1, (*[2]float32)(out[:2]))
		dot2BF16AVX2(n, x, w2, w3, (*[2]float32)(out[2:]))
	}, false, x, w0, w1, w2, w3, out)
}

func bf16Dot4AVX512(x []float32, w0, w1, w2, w3 []uint16, out *[4]float32) {
	dot4HalfAsm(dot4BF16AVX512, false, x, w0, w1, w2, w3, out)
}

func f16Dot4AVX2(x []float32, w0, w1, w2, w3 []uint16, out *[4]float32) {
	dot4HalfAsm(func(n int, x *float32, w0, w1, w2, w3 *uint16, out *[4]float32) {
		dot2F16AVX2(n, x, w0, w1, (*[2]float32)(out[:2]))
		dot2F16AVX2(n, x, w2, w3, (*[2]float32)(out[2:]))
	}, true, x, w0, w1, w2, w3, out)
}

func f16Dot4AVX512(x []float32, w0, w1, w2, w3 []uint16, out *[4]float32) {
	dot4HalfAsm(dot4F16AVX512, true, x, w0, w1, w2, w3, out)
}

// checkTile bounds-checks a kernel call so the assembly never touches memory
// outside the slices it was given.
func checkTile(kc int, a, b, c []float32, ldc, mr, nr int) {
	if kc < 1 || len(a) < kc*mr || len(b) < kc*nr || ldc < nr || len(c) < (mr-1)*ldc+nr {
		panic("gemm: micro-kernel operands out of range")
	}
}

// dot4Asm runs an assembly dot kernel over the largest prefix of x that is a
// multiple of 32 and finishes the tail in Go, in ascending order.
func dot4Asm(kern func(n int, x, w0, w1, w2, w3 *float32, out *[4]float32),
	x, w0, w1, w2, w3 []float32, out *[4]float32) {
	const block = 32
	k := len(x)
	w0, w1, w2, w3 = w0[:k], w1[:k], w2[:k], w3[:k]
	body := k - k%block
	*out = [4]float32{}
	if body > 0 {
		kern(body, &x[0], &w0[0], &w1[0], &w2[0], &w3[0], out)
	}
	dotTail(x[body:], w0[body:], w1[body:], w2[body:], w3[body:], out)
}

// dot4HalfAsm is dot4Asm for 16-bit rows (binary16 if f16, else bfloat16):
// the tail (under 32 values) is widened in Go and finished by the same
// dotTail, so the result is dot4Asm's on the widened rows. The widening
// functions are called directly, not through a func value, so the tail
// buffer stays on the stack (through a func value it escaped, and the heap
// allocation cost more than the kernel on short rows).
func dot4HalfAsm(kern func(n int, x *float32, w0, w1, w2, w3 *uint16, out *[4]float32),
	f16 bool, x []float32, w0, w1, w2, w3 []uint16, out *[4]float32) {
	const block = 32
	k := len(x)
	w0, w1, w2, w3 = w0[:k], w1[:k], w2[:k], w3[:k]
	body := k - k%block
	*out = [4]float32{}
	if body > 0 {
		kern(body, &x[0], &w0[0], &w1[0], &w2[0], &w3[0], out)
	}
	tail := k - body
	if tail == 0 {
		return
	}
	var t [4][block]float32
	for i, w := range [4][]uint16{w0, w1, w2, w3} {
		if f16 {
			widenF16Go(t[i][:tail], w[body:])
		} else {
			widenBF16Go(t[i][:tail], w[body:])
		}
	}
	dotTail(x[body:], t[0][:tail], t[1][:tail], t[2][:tail], t[3][:tail], out)
}

// dotTail adds Σ_p x[p]·w_r[p] to out[r], p ascending, in plain Go.
func dotTail(x, w0, w1, w2, w3 []float32, out *[4]float32) {
	w0, w1, w2, w3 = w0[:len(x)], w1[:len(x)], w2[:len(x)], w3[:len(x)]
	for p := range x {
		out[0] += x[p] * w0[p]
		out[1] += x[p] * w1[p]
		out[2] += x[p] * w2[p]
		out[3] += x[p] * w3[p]
	}
}

// widenBF16Asm and widenF16Asm convert the largest multiple of 16 values in
// assembly and the rest in Go (both exact, so they agree).
func widenBF16Asm(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	body := len(src) - len(src)%16
	if body > 0 {
		widenBF16AVX2(body, &src[0], &dst[0])
	}
	widenBF16Go(dst[body:], src[body:])
}

func widenF16Asm(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	body := len(src) - len(src)%16
	if body > 0 {
		widenF16AVX2(body, &src[0], &dst[0])
	}
	widenF16Go(dst[body:], src[body:])
}

// transpose8Asm and transpose4Asm bounds-check and run the transpose kernels
// (AVX2 is implied by both assembly implementations).
func transpose8Asm(n int, src []float32, ld int, dst []float32, ldd int) {
	checkTranspose(8, n, src, ld, dst, ldd)
	transpose8AVX2(n, &src[0], ld, &dst[0], ldd)
}

func transpose4Asm(n int, src []float32, ld int, dst []float32, ldd int) {
	checkTranspose(4, n, src, ld, dst, ldd)
	transpose4AVX(n, &src[0], ld, &dst[0], ldd)
}

func checkTranspose(g, n int, src []float32, ld int, dst []float32, ldd int) {
	if n < g || n%g != 0 || ld < n || ldd < g || len(src) < (g-1)*ld+n || len(dst) < (n-1)*ldd+g {
		panic("gemm: transpose operands out of range")
	}
}
