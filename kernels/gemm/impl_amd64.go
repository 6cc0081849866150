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
		dots: func(out, x, w []float32, ld int) {
			dotsAsm(dotAVX2, 2, false, out, x, w, ld)
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
		dots: func(out, x, w []float32, ld int) {
			dotsAsm(dotAVX512, 4, false, out, x, w, ld)
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
	bf16 := wkernels[uint16]{dots: bf16DotsAVX2, widen: widenBF16Asm}
	f16 := wkernels[uint16]{widen: widenF16Go}
	if cpu.X86.HasF16C {
		f16 = wkernels[uint16]{dots: f16DotsAVX2, widen: widenF16Asm}
	}
	avx2Impl.bf16, avx2Impl.f16 = bf16, f16
	register(avx2Impl)

	// The AVX-512 implementation still packs with the AVX2 transposes.
	if cpu.X86.HasAVX512F {
		if cpu.X86.HasAVX512BW {
			bf16.dots = bf16DotsAVX512
		}
		if cpu.X86.HasF16C {
			f16.dots = f16DotsAVX512
		}
		avx512Impl.bf16, avx512Impl.f16 = bf16, f16
		roundBF16Vec = roundBF16AVX512
		if cpu.X86.HasAVX512BF16 {
			avx512Impl.dpbf16 = dpbf16AVX512
			avx512Impl.dpbf16Tile = dpbf16TileAVX512
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

// dpbf16TileAVX512 is the VDPBF16PS dpbf16TileKernel.
func dpbf16TileAVX512(n int, x []uint16, ldx int, w []uint16, ldw int, out []float32, ldo int) {
	if n <= 0 || n%64 != 0 || ldx < n || ldw < n || ldo < 4 ||
		len(x) < 2*ldx+n || len(w) < 3*ldw+n || len(out) < 2*ldo+4 {
		panic("gemm: dpbf16 tile operands out of range")
	}
	tile3x4DPBF16AVX512(n, &x[0], ldx, &w[0], ldw, &out[0], ldo)
}

// The 16-bit dot kernels.
func bf16DotsAVX2(out, x []float32, w []uint16, ld int) {
	dotsAsm(dotBF16AVX2, 2, false, out, x, w, ld)
}

func bf16DotsAVX512(out, x []float32, w []uint16, ld int) {
	dotsAsm(dotBF16AVX512, 4, false, out, x, w, ld)
}

func f16DotsAVX2(out, x []float32, w []uint16, ld int) {
	dotsAsm(dotF16AVX2, 2, true, out, x, w, ld)
}

func f16DotsAVX512(out, x []float32, w []uint16, ld int) {
	dotsAsm(dotF16AVX512, 4, true, out, x, w, ld)
}

// checkTile bounds-checks a kernel call so the assembly never touches memory
// outside the slices it was given.
func checkTile(kc int, a, b, c []float32, ldc, mr, nr int) {
	if kc < 1 || len(a) < kc*mr || len(b) < kc*nr || ldc < nr || len(c) < (mr-1)*ldc+nr {
		panic("gemm: micro-kernel operands out of range")
	}
}

// prefetchBytes is how far past each line of w they read the dot kernels
// prefetch (see dotRows in asmgen). A pass reads its rows side by side, and
// the prefetches of all its rows together cover the same span of w shifted
// by prefetchBytes, so any distance works with any row length: a line
// prefetched is read after about prefetchBytes more of w. Far enough to
// cover memory latency, not so far that the lines evict each other from L1
// before use (8 rows of 1536 float32 values ahead, 48 KiB, was slower than
// no prefetch). BenchmarkDecodePrefetch on the shared Zen 4 host, GFLOP per
// CPU-second at 0 / 2 / 4 / 8 / 16 / 32 KiB on the SmolLM decode shapes:
// bf16 6–9 / 8–12 / 9–12 / 10–12 / 11–12 / 10–11, float32 5–7.5 / 5–6 /
// 5–6 / 6–7.7 / 6–8.4 / 5.5–8.2.
var prefetchBytes = 16 << 10

// dotsAsm is the dotsFunc around an assembly dot kernel kern, whose passes
// take group rows: kern runs over the largest prefix of each row that is a
// multiple of 32 values, for all rows in one call (and one more pass for
// the last rows%group), and the tail of each row is finished in Go, in
// ascending order, from the widened values (binary16 if f16, else bfloat16, for a
// 16-bit w). The widening functions are called directly, not through a func
// value, so the tail buffer stays on the stack.
func dotsAsm[T elem](kern func(n int, x *float32, w *T, ld, rows, pf int, out *float32),
	group int, f16 bool, out, x []float32, w []T, ld int) {
	const block = 32
	rows, k := len(out), len(x)
	if rows == 0 {
		return
	}
	if ld < k || len(w) < (rows-1)*ld+k {
		panic("gemm: dot operands out of range")
	}
	body := k - k%block
	if body == 0 {
		clear(out)
	} else {
		full := rows - rows%group
		if full > 0 {
			kern(body, &x[0], &w[0], ld, full, prefetchBytes, &out[0])
		}
		switch {
		case full == rows:
		case rows >= group:
			// The last group rows, again for some: a row's result depends
			// only on the row, so they are rewritten with the same bits.
			kern(body, &x[0], &w[(rows-group)*ld], ld, group, 0, &out[rows-group])
		default:
			// Fewer rows than a pass: with ld = 0 a pass reads one row group
			// times. (acc escapes through kern, so it is declared only here.)
			var acc [4]float32
			for r := range rows {
				kern(body, &x[0], &w[r*ld], 0, group, 0, &acc[0])
				out[r] = acc[0]
			}
		}
	}
	if body == k {
		return
	}
	var t [block]float32
	for r := range rows {
		var tw []float32
		switch wr := any(w[r*ld+body : r*ld+k]).(type) {
		case []float32:
			tw = wr
		case []uint16:
			if f16 {
				widenF16Go(t[:len(wr)], wr)
			} else {
				widenBF16Go(t[:len(wr)], wr)
			}
			tw = t[:len(wr)]
		}
		s := out[r]
		for p, xv := range x[body:] {
			s += xv * tw[p]
		}
		out[r] = s
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
