package gemm

import (
	"math"
	"runtime"
)

// MatMulBF16Rounded computes out[m×n] ≈ x[m×k]·wᵀ for a bfloat16 w [n×k] the
// way AVX512_BF16's VDPBF16PS does, and with it where the CPU has it: x is
// first rounded to bfloat16 too (to nearest, ties to even; NaNs made quiet),
// so every product of two bf16 values is exact, and the products are summed
// in float32 in a fixed order (see dpbf16Lanes) with denormal inputs read as
// zero and denormal results flushed to zero, as the instruction does.
//
// This is a separate, opt-in product: rounding keeps 8 of each activation's
// 24 significant bits (relative error up to 2⁻⁸), so results differ from MatMulBF16,
// which keeps x in float32 and equals MatMul on the widened w. In exchange
// one instruction does 32 multiply-adds straight from the 16-bit data. The
// result is the same on every CPU (elsewhere a Go emulation computes it bit
// for bit) and for every thread count, and a row's result does not depend on
// m: every m runs the dot-product path of decode. It uses up to GOMAXPROCS
// threads and panics if a slice is shorter than its shape needs.
func MatMulBF16Rounded(out, x []float32, w []uint16, m, k, n int) {
	MatMulBF16RoundedThreads(out, x, w, m, k, n, runtime.GOMAXPROCS(0))
}

// MatMulBF16RoundedThreads is MatMulBF16Rounded with an explicit number of
// threads (values below 1 mean 1). The result does not depend on threads.
func MatMulBF16RoundedThreads(out, x []float32, w []uint16, m, k, n, threads int) {
	checkShapes(out, x, len(w), m, k, n)
	if m == 0 || n == 0 {
		return
	}
	out = out[:m*n]
	if k == 0 {
		clear(out)
		return
	}
	x16 := make([]uint16, m*k)
	for i, v := range x[:m*k] {
		x16[i] = roundBF16(v)
	}
	w = w[:n*k]
	kern := current().dpbf16
	threads = max(1, min(threads, 2*m*n*k/minFlopsPerThread))
	groups := (n + 3) / 4
	threads = min(threads, groups)
	parallel(threads, func(t int) {
		lo, hi := split(groups, threads, t)
		var lanes [4][32]float32
		for g := lo; g < hi; g++ {
			j := 4 * g
			cols := min(4, n-j)
			// A ragged last group repeats its last row, as in gemv.
			var r [4][]uint16
			for i := range r {
				jj := j + min(i, cols-1)
				r[i] = w[jj*k : jj*k+k]
			}
			for i := range m {
				xi := x16[i*k : i*k+k]
				dpbf16Lanes(kern, xi, r[0], r[1], r[2], r[3], &lanes)
				for c := range cols {
					out[i*n+j+c] = reduceLanes(&lanes[c])
				}
			}
		}
	})
}

// dpbf16Kernel accumulates, for n a multiple of 64, the VDPBF16PS products of
// x with four rows into lanes: for each 32-value block b, lane l of
// accumulator b mod 2 (lanes[r][16·(b mod 2)+l]) gets the pair products 2l+1,
// then 2l, of the block, as float32 FMAs with denormals zeroed (dpbf16Step).
// The lanes start at zero.
type dpbf16Kernel func(n int, x, w0, w1, w2, w3 []uint16, lanes *[4][32]float32)

// dpbf16Lanes runs kern (nil: the Go emulation) over the largest multiple
// of 64 of k and emulates the rest, whose missing pair partners count as
// absent (not as zero products).
func dpbf16Lanes(kern dpbf16Kernel, x, w0, w1, w2, w3 []uint16, lanes *[4][32]float32) {
	k := len(x)
	body := k - k%64
	if kern == nil {
		kern = dpbf16Go
	}
	*lanes = [4][32]float32{}
	if body > 0 {
		kern(body, x, w0, w1, w2, w3, lanes)
	}
	ws := [4][]uint16{w0, w1, w2, w3}
	for p := body; p < k; p += 2 {
		lane := (p-body)/32%2*16 + p%32/2
		for r, w := range ws {
			acc := lanes[r][lane]
			if p+1 < k {
				acc = dpbf16Step(acc, x[p+1], w[p+1])
			}
			lanes[r][lane] = dpbf16Step(acc, x[p], w[p])
		}
	}
}

// dpbf16Go is the portable dpbf16Kernel.
func dpbf16Go(n int, x, w0, w1, w2, w3 []uint16, lanes *[4][32]float32) {
	x = x[:n]
	for r, w := range [4][]uint16{w0, w1, w2, w3} {
		w = w[:n]
		acc := &lanes[r]
		for p := 0; p < n; p += 2 {
			lane := p/32%2*16 + p%32/2
			acc[lane] = dpbf16Step(dpbf16Step(acc[lane], x[p+1], w[p+1]), x[p], w[p])
		}
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

// roundBF16 rounds a float32 to the nearest bfloat16, ties to even; NaNs
// keep their sign and top payload bits and are made quiet.
func roundBF16(v float32) uint16 {
	bits := math.Float32bits(v)
	if bits&0x7fffffff > 0x7f800000 {
		return uint16(bits>>16) | 0x40
	}
	return uint16((bits + 0x7fff + (bits >> 16 & 1)) >> 16)
}
