package gemm

import (
	"math"
	"runtime"
	"sync"
)

// MatMulBF16Rounded computes out[m×n] ≈ x[m×k]·wᵀ for a bfloat16 w [n×k] the
// way AVX512_BF16's VDPBF16PS does, and with it where the CPU has it: x is
// first rounded to bfloat16 too (to nearest, ties to even; NaNs made quiet),
// so every product of two bf16 values is exact, and the products are summed
// in float32 in a fixed order (see dpbf16Kernel; k is padded with zeros to a
// multiple of 64), denormal inputs read as zero and denormal results flushed
// to zero, as the instruction does. A NaN among the operands, or ∞·0, gives
// a NaN result whose sign and payload are not specified (the instruction
// and the emulation may differ there; every other bit pattern agrees).
//
// This is a separate, opt-in product: rounding keeps 8 of each activation's
// 24 significant bits (relative error up to 2⁻⁸), so results differ from
// MatMulBF16, which keeps x in float32 and equals MatMul on the widened w. In
// exchange one instruction does 32 multiply-adds straight from the 16-bit
// data, with no widening. The result is the same on every CPU (elsewhere a Go
// emulation computes it bit for bit) and for every thread count, and a row's
// result does not depend on m: decode runs the dot-product path, and for
// m ≥ 3 where AVX512_BF16 is present a register-blocked 3×4 tile kernel
// (bf16gemm.go) reduces every result in the same order, with the same bits.
// It uses up to GOMAXPROCS threads and panics if a slice is shorter than its
// shape needs.
func MatMulBF16Rounded(out, x []float32, w []uint16, m, k, n int) {
	MatMulBF16RoundedThreads(out, x, w, m, k, n, runtime.GOMAXPROCS(0))
}

// MatMulBF16RoundedThreads is MatMulBF16Rounded with an explicit number of
// threads (values below 1 mean 1). The result does not depend on threads.
func MatMulBF16RoundedThreads(out, x []float32, w []uint16, m, k, n, threads int) {
	if trivial(out, x, len(w), m, k, n) {
		return
	}
	out = out[:m*n]
	im := current()
	threads = max(1, min(threads, 2*m*n*k/minFlopsPerThread))
	if tile := im.dpbf16Tile; tile != nil && m >= tileRows && n >= tileCols {
		// Rows padded to whole 64-value blocks, as the dot path pads its
		// tail block, so both sum the same products in the same order.
		kp := (k + 63) &^ 63
		buf := getBF16Buf(m * kp)
		defer putBF16Buf(buf)
		x16 := *buf
		for i := range m {
			roundRowBF16(x16[i*kp:i*kp+k], x[i*k:i*k+k])
			clear(x16[i*kp+k : i*kp+kp])
		}
		matMulBF16Tiles(tile, out, x16, padRowsBF16(w, n, k, kp), m, kp, kp, n, threads)
		return
	}
	buf := getBF16Buf(m * k)
	defer putBF16Buf(buf)
	x16 := *buf
	roundRowBF16(x16, x[:m*k])
	w = w[:n*k]
	kern := im.dpbf16
	if kern == nil {
		kern = dpbf16Go
	}
	groups := (n + 3) / 4
	threads = min(threads, groups)
	body := k - k%64
	parallel(threads, func(t int) {
		lo, hi := split(groups, threads, t)
		var acc [4]float32
		// The last k mod 64 values of x and of the four rows, zero-padded
		// to one block; nil when k is a multiple of 64.
		var tail *[5][64]uint16
		if body < k {
			tail = new([5][64]uint16)
		}
		for g := lo; g < hi; g++ {
			j := 4 * g
			cols := min(4, n-j)
			// A ragged last group repeats its last row, as in gemv.
			var r [4][]uint16
			for i := range r {
				jj := j + min(i, cols-1)
				r[i] = w[jj*k : jj*k+k]
				if tail != nil {
					copy(tail[1+i][:], r[i][body:])
				}
			}
			for i := range m {
				xi := x16[i*k : i*k+k]
				if tail != nil {
					copy(tail[0][:], xi[body:])
				}
				kern(body, xi, r[0], r[1], r[2], r[3], tail, &acc)
				copy(out[i*n+j:i*n+j+cols], acc[:cols])
			}
		}
	})
}

// dpbf16Kernel sets out[r] to the VDPBF16PS dot product of x with row r:
// for each 64-value block of the first n values (n a multiple of 64) and
// then, if tail is not nil, for the block tail holds (x in tail[0], row r in
// tail[1+r]), lane l of accumulator u gets the pair products 32u+2l+1, then
// 32u+2l, of the block (dpbf16Step); the 2×16 lanes, starting from zero, are
// then summed by reduceLanes.
type dpbf16Kernel func(n int, x, w0, w1, w2, w3 []uint16, tail *[5][64]uint16, out *[4]float32)

// dpbf16Go is the portable dpbf16Kernel, the emulation that defines
// MatMulBF16Rounded's bits.
func dpbf16Go(n int, x, w0, w1, w2, w3 []uint16, tail *[5][64]uint16, out *[4]float32) {
	var lanes [32]float32
	block := func(x, w []uint16) {
		for p := 0; p < 64; p += 2 {
			l := p/32*16 + p%32/2
			lanes[l] = dpbf16Step(dpbf16Step(lanes[l], x[p+1], w[p+1]), x[p], w[p])
		}
	}
	for r, w := range [4][]uint16{w0, w1, w2, w3} {
		lanes = [32]float32{}
		for p := 0; p < n; p += 64 {
			block(x[p:p+64], w[p:p+64])
		}
		if tail != nil {
			block(tail[0][:], tail[1+r][:])
		}
		out[r] = reduceLanes(&lanes)
	}
}

// dpbf16Step is one VDPBF16PS multiply-add: acc + a·b rounded once to float32
// (to nearest even), denormal operands (acc, a, b) read as zero and a
// denormal result flushed to zero of the same sign. The float64 arithmetic
// is exact up to its single final rounding here: a·b has at most 16
// significant bits, and when acc + a·b needs more than float64's 53, the
// smaller term lies far below half a float32 ulp of the larger, so rounding
// to float64 first cannot move the float32 result.
func dpbf16Step(acc float32, a, b uint16) float32 {
	fa, fb := daz(math.Float32frombits(uint32(a)<<16)), daz(math.Float32frombits(uint32(b)<<16))
	r := float32(float64(daz(acc)) + float64(fa)*float64(fb))
	return daz(r)
}

// daz replaces a denormal float32 by a zero of the same sign.
func daz(v float32) float32 {
	if bits := math.Float32bits(v); bits&0x7f800000 == 0 {
		return math.Float32frombits(bits & 0x80000000)
	}
	return v
}

// reduceLanes sums a row's 32 lanes in the order of the dot kernels'
// reduction: the two accumulators lane-wise, lanes 0..7 + 8..15, 0..3 +
// 4..7, then (0+1) + (2+3).
func reduceLanes(l *[32]float32) float32 {
	var s [16]float32
	for i := range s {
		s[i] = l[i] + l[16+i]
	}
	for i := range 8 {
		s[i] += s[8+i]
	}
	for i := range 4 {
		s[i] += s[4+i]
	}
	return (s[0] + s[1]) + (s[2] + s[3])
}

// bf16Bufs recycles the rounded activations between calls: a prefill makes
// hundreds of these products with the same few sizes, and fresh buffers of
// a megabyte each cost page faults and collections (measured in `lrmc bench
// model`: bf16 compute ran slower than f32 until they were reused).
var bf16Bufs sync.Pool

// getBF16Buf returns a buffer of n values (contents undefined).
func getBF16Buf(n int) *[]uint16 {
	if b, ok := bf16Bufs.Get().(*[]uint16); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]uint16, n)
	return &b
}

func putBF16Buf(b *[]uint16) { bf16Bufs.Put(b) }

// roundRowBF16 sets dst[i] = roundBF16(src[i]), the largest multiple of 16
// values with roundBF16Vec where there is one (same bits), the rest in Go.
func roundRowBF16(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	body := 0
	if roundBF16Vec != nil {
		body = len(src) - len(src)%16
		if body > 0 {
			roundBF16Vec(body, &src[0], &dst[0])
		}
	}
	for i, v := range src[body:] {
		dst[body+i] = roundBF16(v)
	}
}

// roundBF16Vec rounds n values (a multiple of 16) like roundBF16; nil
// where the CPU lacks AVX-512.
var roundBF16Vec func(n int, src *float32, dst *uint16)

// roundBF16 rounds a float32 to the nearest bfloat16, ties to even; NaNs
// keep their sign and top payload bits and are made quiet.
func roundBF16(v float32) uint16 {
	bits := math.Float32bits(v)
	if bits&0x7fffffff > 0x7f800000 {
		return uint16(bits>>16) | 0x40
	}
	return uint16((bits + 0x7fff + (bits >> 16 & 1)) >> 16)
}
