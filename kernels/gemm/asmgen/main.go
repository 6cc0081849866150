// Command asmgen generates the amd64 assembly micro-kernels of package gemm
// with avo. It is run by `go generate` in the parent folder:
//
//	go run ./asmgen -out kernel_amd64.s -stubs kernel_amd64_stub.go -pkg gemm
//
// Two families of kernels are emitted, each in an AVX2+FMA (ymm) and an
// AVX-512 (zmm) flavour:
//
//   - gemmKernel*: an MR×NR register-blocked tile of C = A·B over a packed,
//     k-major A micro-panel (MR floats per k step) and B micro-panel (NR floats
//     per k step). Every output element is reduced by one FMA chain in
//     increasing k, so the result does not depend on how the caller tiles m
//     and n, nor on which flavour ran (both use the same chain).
//   - dot*: dot products of one vector x against several rows of w, for the
//     matrix-vector path (decode, small batches) that must stream w exactly
//     once; both flavours reduce in the same order. Besides float32 rows,
//     dot*BF16* and dot*F16* read rows of 16-bit floats and widen them in
//     registers (exactly: bf16 by a 16-bit shift, f16 by VCVTPH2PS), so w
//     crosses the memory bus at half the bytes while the arithmetic, and so
//     every result bit, stays that of the float32 kernel on widened rows.
//   - widen*: bulk 16-bit to float32 conversion, used when packing a 16-bit w
//     for the blocked path.
//
// Vector registers are named physically so the register budget (16 ymm, 32
// zmm) is explicit; general-purpose registers are left to avo's allocator.
package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	"github.com/mmcloughlin/avo/ir"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// flavour describes one vector ISA level.
type flavour struct {
	suffix string
	lanes  int // float32 lanes per vector register
	nregs  int // architectural vector registers available
}

var (
	avx2   = flavour{suffix: "AVX2", lanes: 8, nregs: 16}
	avx512 = flavour{suffix: "AVX512", lanes: 16, nregs: 32}
)

func (f flavour) vec(i int) Register {
	z := []VecPhysical{Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15,
		Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31}[i]
	if f.lanes == 8 {
		return z.AsY()
	}
	return z
}

func (f flavour) zero(r Register) {
	if f.lanes == 16 {
		VPXORD(r, r, r) // VXORPS on zmm needs AVX512DQ; VPXORD is AVX512F.
		return
	}
	VXORPS(r, r, r)
}

func main() {
	ConstraintExpr("amd64,!purego")

	// The tile shapes must match the mr/nr constants in impl_amd64.go.
	gemmKernel(avx2, 6, 2, 4)
	gemmKernel(avx512, 12, 2, 4)
	for _, wf := range []weightFormat{wF32, wBF16, wF16} {
		dotRows(avx2, 2, wf)
		dotRows(avx512, 4, wf)
	}
	widen(wBF16)
	widen(wF16)
	dotBF16Pairs()
	tileBF16Pairs()
	roundBF16Vec()
	transpose8()
	transpose4()

	Generate()
}

// gemmKernel emits gemmKernel<suffix>: for an mr × (nvec·lanes) tile,
//
//	acc[i][j] = Σ_{p<kc} a[p·mr+i]·b[p·nr+j]   (one FMA chain per element, p ascending)
//	c[i·ldc+j] = acc[i][j]            if accum is false
//	c[i·ldc+j] = c[i·ldc+j]+acc[i][j] if accum is true
//
// The accumulators start at zero rather than at c so the rounding of a k block
// is the same whether the tile is written in place or through a scratch tile
// for ragged edges.
func gemmKernel(f flavour, mr, nvec, unroll int) {
	nr := nvec * f.lanes
	name := "gemmKernel" + f.suffix
	TEXT(name, NOSPLIT, "func(kc int, a, b, c *float32, ldc int, accum bool)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s computes a %d×%d tile of C from packed panels (%s).", name, mr, nr, f.suffix))

	nacc := mr * nvec
	if nacc+nvec+1 > f.nregs {
		panic(fmt.Sprintf("%s: %d accumulators do not fit", name, nacc))
	}
	acc := func(i, j int) Register { return f.vec(i*nvec + j) }
	breg := func(j int) Register { return f.vec(nacc + j) }
	// Broadcast targets rotate over the remaining registers so consecutive
	// broadcasts do not serialize on one architectural name.
	nbc := f.nregs - nacc - nvec
	bc := func(i int) Register { return f.vec(nacc + nvec + i%nbc) }

	kc := Load(Param("kc"), GP64())
	a := Load(Param("a"), GP64())
	b := Load(Param("b"), GP64())
	c := Load(Param("c"), GP64())
	ldc := Load(Param("ldc"), GP64())
	SHLQ(U8(2), ldc)

	// Touch the C tile now so its lines (rows ldc apart, usually out of L2 for
	// transformer widths) arrive while the k loop runs instead of stalling
	// the stores at the end. First and last float of each row cover an
	// unaligned row.
	row := GP64()
	MOVQ(c, row)
	for i := 0; i < mr; i++ {
		PREFETCHT0(Mem{Base: row})
		PREFETCHT0(Mem{Base: row, Disp: 4*nr - 4})
		if i+1 < mr {
			ADDQ(ldc, row)
		}
	}

	for i := 0; i < nacc; i++ {
		f.zero(f.vec(i))
	}

	step := func(u int) {
		for j := 0; j < nvec; j++ {
			VMOVUPS(Mem{Base: b, Disp: 4 * (u*nr + j*f.lanes)}, breg(j))
		}
		for i := 0; i < mr; i++ {
			VBROADCASTSS(Mem{Base: a, Disp: 4 * (u*mr + i)}, bc(i))
			for j := 0; j < nvec; j++ {
				VFMADD231PS(breg(j), bc(i), acc(i, j))
			}
		}
	}

	CMPQ(kc, Imm(uint64(unroll)))
	JL(LabelRef("tail"))
	Label("loop")
	for u := 0; u < unroll; u++ {
		step(u)
	}
	ADDQ(U32(uint64(4*unroll*mr)), a)
	ADDQ(U32(uint64(4*unroll*nr)), b)
	SUBQ(Imm(uint64(unroll)), kc)
	CMPQ(kc, Imm(uint64(unroll)))
	JGE(LabelRef("loop"))

	Label("tail")
	TESTQ(kc, kc)
	JZ(LabelRef("store"))
	Label("tailloop")
	step(0)
	ADDQ(U32(uint64(4*mr)), a)
	ADDQ(U32(uint64(4*nr)), b)
	DECQ(kc)
	JNZ(LabelRef("tailloop"))

	Label("store")
	accum := Load(Param("accum"), GP8())
	TESTB(accum, accum)
	JZ(LabelRef("overwrite"))
	for i := 0; i < mr; i++ {
		for j := 0; j < nvec; j++ {
			m := Mem{Base: c, Disp: 4 * j * f.lanes}
			VADDPS(m, acc(i, j), acc(i, j))
			VMOVUPS(acc(i, j), m)
		}
		if i+1 < mr {
			ADDQ(ldc, c)
		}
	}
	VZEROUPPER()
	RET()

	Label("overwrite")
	for i := 0; i < mr; i++ {
		for j := 0; j < nvec; j++ {
			VMOVUPS(acc(i, j), Mem{Base: c, Disp: 4 * j * f.lanes})
		}
		if i+1 < mr {
			ADDQ(ldc, c)
		}
	}
	VZEROUPPER()
	RET()
}

// weightFormat is how the dot kernels read w: float32, or a 16-bit float
// format widened to float32 in registers before the FMA.
type weightFormat struct {
	name string // function-name infix: "", "BF16" or "F16"
	size int    // bytes per element
}

var (
	wF32  = weightFormat{name: "", size: 4}
	wBF16 = weightFormat{name: "BF16", size: 2}
	wF16  = weightFormat{name: "F16", size: 2}
)

func (wf weightFormat) goType() string {
	if wf.size == 4 {
		return "float32"
	}
	return "uint16"
}

// operand returns the vector of w at m as an FMA source: m itself for
// float32, else tmp after widening m into it. Both widenings are exact: a
// bf16 is the top half of a float32, so zero-extending each 16-bit lane to 32
// bits and shifting left by 16 rebuilds it; every f16 (subnormals included)
// is representable in float32 and VCVTPH2PS converts it exactly.
func (wf weightFormat) operand(m Mem, tmp Register) Op {
	switch wf {
	case wBF16:
		VPMOVZXWD(m, tmp)
		VPSLLD(U8(16), tmp, tmp)
		return tmp
	case wF16:
		VCVTPH2PS(m, tmp)
		return tmp
	}
	return m
}

// dotRows emits dot<format><suffix>, the matrix-vector kernel:
//
//	out[r] = Σ_{p<n} x[p]·w[r·ld+p]   for r < rows
//
// where n is a multiple of 32 (the caller finishes the tail) and rows a
// positive multiple of group, the rows one pass dots at a time. x is loaded
// once per 32-float block of a pass and shared by its rows, so w is the only
// stream that grows with n. One call sweeps every row of a decode product,
// so the per-call cost is paid once per product, not once per group.
//
// Each 64-byte line of w read is matched by a PREFETCHT0 of the line pf bytes
// further on, so the lines of the next rows are on their way while this pass
// computes (the prefetches of a pass's rows together cover its span of w
// shifted by pf, so pf need not be a whole number of rows). The hardware prefetchers alone
// fall short here: rows of decode's narrow layers are only 18–48 lines long,
// too short for a stream to be detected and run ahead before it ends, and
// the kernel then reads at about half the memory bandwidth. A prefetch never
// faults, so lines past the end of w are harmless.
//
// Both flavours reduce in the same order, so they return identical bits: per
// row, lane l of logical accumulator u (u = 0, 1; 16 lanes each) sums
// x[32b+16u+l]·w[32b+16u+l] over blocks b by one FMA chain; then
// u0+u1 lane-wise, lanes 0..7 + lanes 8..15, 0..3 + 4..7, and two horizontal
// adds. A zmm register holds one logical accumulator; AVX2 spreads it over two
// ymm registers, so its passes take two rows instead of four. The result of
// a row depends on nothing but x and that row.
//
// The 16-bit formats widen each vector of w into one of the spare registers
// (rotating, so consecutive widenings do not share a name) and then run the
// very same FMA, so they return the float32 kernel's bits on widened rows.
func dotRows(f flavour, group int, wf weightFormat) {
	name := fmt.Sprintf("dot%s%s", wf.name, f.suffix)
	TEXT(name, NOSPLIT, fmt.Sprintf("func(n int, x *float32, w *%s, ld, rows, pf int, out *float32)", wf.goType()))
	Pragma("noescape")
	kind := ""
	if wf != wF32 {
		kind = wf.name + " "
	}
	Doc(fmt.Sprintf("%s sets out[r] to the dot product of x with %srow r of w (rows ld elements apart) for r < rows, prefetching pf bytes ahead (%s); n must be a multiple of 32 and rows a positive multiple of %d.", name, kind, f.suffix, group))

	per := 32 / f.lanes // vectors per row per 32-float block
	if group*per+per+1 > f.nregs {
		panic(name + ": registers")
	}
	// Registers past the accumulators, x and the reduction temporary, kept
	// within zmm0-15 so VZEROUPPER leaves no dirty upper state behind.
	nwide := min(8, 16-(group*per+per+1))
	wide := func(i int) Register { return f.vec(group*per + per + 1 + i%nwide) }
	if wf != wF32 && nwide < 1 {
		panic(name + ": no register to widen into")
	}
	n := Load(Param("n"), GP64())
	x := Load(Param("x"), GP64())
	base := Load(Param("w"), GP64())
	ld := Load(Param("ld"), GP64())
	rows := Load(Param("rows"), GP64())
	pf := Load(Param("pf"), GP64())
	out := Load(Param("out"), GP64())
	switch wf.size {
	case 4:
		SHLQ(U8(2), ld)
	case 2:
		SHLQ(U8(1), ld)
	}
	cnt, xp := GP64(), GP64()
	w := make([]Register, group)
	for r := range w {
		w[r] = GP64()
	}
	acc := func(r, q int) Register { return f.vec(r*per + q) }
	xv := func(q int) Register { return f.vec(group*per + q) }
	tmp := f.vec(group*per + per).(VecPhysical)

	Label("pass")
	MOVQ(base, w[0])
	for r := 1; r < group; r++ {
		LEAQ(Mem{Base: w[r-1], Index: ld, Scale: 1}, w[r])
	}
	MOVQ(x, xp)
	MOVQ(n, cnt)
	for i := 0; i < group*per; i++ {
		f.zero(f.vec(i))
	}
	TESTQ(cnt, cnt)
	JZ(LabelRef("reduce"))
	Label("loop")
	for q := 0; q < per; q++ {
		VMOVUPS(Mem{Base: xp, Disp: 4 * q * f.lanes}, xv(q))
	}
	for r := 0; r < group; r++ {
		for line := 0; line < wf.size*32/64; line++ {
			PREFETCHT0(Mem{Base: w[r], Index: pf, Scale: 1, Disp: 64 * line})
		}
		for q := 0; q < per; q++ {
			src := wf.operand(Mem{Base: w[r], Disp: wf.size * q * f.lanes}, wide(r*per+q))
			VFMADD231PS(src, xv(q), acc(r, q))
		}
	}
	ADDQ(U32(4*32), xp)
	for r := 0; r < group; r++ {
		ADDQ(U32(uint64(wf.size*32)), w[r])
	}
	SUBQ(U32(32), cnt)
	JNZ(LabelRef("loop"))

	Label("reduce")
	for r := 0; r < group; r++ {
		// u0 + u1, lane-wise.
		for q := 0; q < per/2; q++ {
			VADDPS(acc(r, q+per/2), acc(r, q), acc(r, q))
		}
		s := acc(r, 0).(VecPhysical)
		// Lanes 0..7 + lanes 8..15.
		if f.lanes == 16 {
			VEXTRACTF64X4(U8(1), s, tmp.AsY())
			VADDPS(tmp.AsY(), s.AsY(), s.AsY())
		} else {
			VADDPS(acc(r, 1), s, s)
		}
		VEXTRACTF128(U8(1), s.AsY(), tmp.AsX())
		VADDPS(tmp.AsX(), s.AsX(), s.AsX())
		VHADDPS(s.AsX(), s.AsX(), s.AsX())
		VHADDPS(s.AsX(), s.AsX(), s.AsX())
		VMOVSS(s.AsX(), Mem{Base: out, Disp: 4 * r})
	}
	ADDQ(U32(uint64(4*group)), out)
	for r := 0; r < group; r++ {
		ADDQ(ld, base)
	}
	SUBQ(U32(uint64(group)), rows)
	JNZ(LabelRef("pass"))
	VZEROUPPER()
	RET()
}

// transpose8 emits transpose8AVX2, the packing workhorse: it reads an 8-row
// strip of a row-major matrix, 8 columns at a time, transposes each 8×8 block
// in registers (the classic unpack/shuffle/permute network) and stores
// column p's 8 values contiguously at dst + p·ldd. Packing is a transpose
// for both operands (k is the contiguous axis of x and w, but the kernels
// want it outermost); done in scalar code it cost a fifth of the GEMM.
func transpose8() {
	TEXT("transpose8AVX2", NOSPLIT, "func(n int, src *float32, ld int, dst *float32, ldd int)")
	Pragma("noescape")
	Doc("transpose8AVX2 writes column p < n of the 8 rows at src (row stride ld floats) to dst[p·ldd : p·ldd+8]; n must be a positive multiple of 8.")
	n := Load(Param("n"), GP64())
	src := Load(Param("src"), GP64())
	ld := Load(Param("ld"), GP64())
	SHLQ(U8(2), ld)
	dst := Load(Param("dst"), GP64())
	ldd := Load(Param("ldd"), GP64())
	SHLQ(U8(2), ldd)
	rows := make([]Register, 8)
	rows[0] = src
	for i := 1; i < 8; i++ {
		rows[i] = GP64()
		MOVQ(rows[i-1], rows[i])
		ADDQ(ld, rows[i])
	}
	y := func(i int) Register { return avx2.vec(i) }
	Label("loop")
	for i := 0; i < 8; i++ {
		VMOVUPS(Mem{Base: rows[i]}, y(i))
	}
	// Interleave row pairs: t[2j] = (r2j[0],r2j+1[0],r2j[1],r2j+1[1] | same for lanes 4,5),
	// t[2j+1] the upper pairs.
	for j := 0; j < 4; j++ {
		VUNPCKLPS(y(2*j+1), y(2*j), y(8+2*j))
		VUNPCKHPS(y(2*j+1), y(2*j), y(8+2*j+1))
	}
	// Combine pairs of pairs: four rows' values for one column in each 128-bit lane.
	for h := 0; h < 2; h++ { // h=0 rows 0..3, h=1 rows 4..7
		a, b := y(8+4*h), y(8+4*h+2)
		c, d := y(8+4*h+1), y(8+4*h+3)
		VSHUFPS(U8(0x44), b, a, y(4*h+0))
		VSHUFPS(U8(0xEE), b, a, y(4*h+1))
		VSHUFPS(U8(0x44), d, c, y(4*h+2))
		VSHUFPS(U8(0xEE), d, c, y(4*h+3))
	}
	// Join the rows 0..3 and rows 4..7 halves: column p in lane half p/4.
	for p := 0; p < 8; p++ {
		lo, hi := y(p%4), y(4+p%4)
		out := y(8 + p)
		if p < 4 {
			VPERM2F128(U8(0x20), hi, lo, out)
		} else {
			VPERM2F128(U8(0x31), hi, lo, out)
		}
		VMOVUPS(out, Mem{Base: dst})
		ADDQ(ldd, dst)
	}
	for i := 0; i < 8; i++ {
		ADDQ(U8(32), rows[i])
	}
	SUBQ(U8(8), n)
	JNZ(LabelRef("loop"))
	VZEROUPPER()
	RET()
}

// transpose4 emits transpose4AVX, the 4-row counterpart of transpose8 for
// micro-panels whose width is not a multiple of 8 (the 6- and 12-row x
// panels): 4×4 blocks through unpack and 64-bit moves, stores of 4 floats.
func transpose4() {
	TEXT("transpose4AVX", NOSPLIT, "func(n int, src *float32, ld int, dst *float32, ldd int)")
	Pragma("noescape")
	Doc("transpose4AVX writes column p < n of the 4 rows at src (row stride ld floats) to dst[p·ldd : p·ldd+4]; n must be a positive multiple of 4.")
	n := Load(Param("n"), GP64())
	src := Load(Param("src"), GP64())
	ld := Load(Param("ld"), GP64())
	SHLQ(U8(2), ld)
	dst := Load(Param("dst"), GP64())
	ldd := Load(Param("ldd"), GP64())
	SHLQ(U8(2), ldd)
	rows := make([]Register, 4)
	rows[0] = src
	for i := 1; i < 4; i++ {
		rows[i] = GP64()
		MOVQ(rows[i-1], rows[i])
		ADDQ(ld, rows[i])
	}
	x := func(i int) Register { return avx2.vec(i).(VecPhysical).AsX() }
	Label("loop")
	for i := 0; i < 4; i++ {
		VMOVUPS(Mem{Base: rows[i]}, x(i))
	}
	VUNPCKLPS(x(1), x(0), x(4)) // r0[0] r1[0] r0[1] r1[1]
	VUNPCKHPS(x(1), x(0), x(5)) // r0[2] r1[2] r0[3] r1[3]
	VUNPCKLPS(x(3), x(2), x(6)) // r2[0] r3[0] r2[1] r3[1]
	VUNPCKHPS(x(3), x(2), x(7)) // r2[2] r3[2] r2[3] r3[3]
	VMOVLHPS(x(6), x(4), x(0))  // column 0: low halves of t0, t2
	VMOVHLPS(x(4), x(6), x(1))  // column 1: high halves of t0, t2
	VMOVLHPS(x(7), x(5), x(2))  // column 2
	VMOVHLPS(x(5), x(7), x(3))  // column 3
	for p := 0; p < 4; p++ {
		VMOVUPS(x(p), Mem{Base: dst})
		ADDQ(ldd, dst)
	}
	for i := 0; i < 4; i++ {
		ADDQ(U8(16), rows[i])
	}
	SUBQ(U8(4), n)
	JNZ(LabelRef("loop"))
	RET()
}

// widen emits widen<format>AVX2: dst[i] = float32(src[i]) for i < n, n a
// positive multiple of 16, 16 values per iteration in two ymm registers
// (the f16 kernel needs F16C, which every AVX2 CPU this package targets
// has but which is checked separately).
func widen(wf weightFormat) {
	name := "widen" + wf.name + "AVX2"
	TEXT(name, NOSPLIT, "func(n int, src *uint16, dst *float32)")
	Pragma("noescape")
	Doc(fmt.Sprintf("%s converts n %s values at src to float32 at dst, exactly; n must be a positive multiple of 16.", name, wf.name))
	n := Load(Param("n"), GP64())
	src := Load(Param("src"), GP64())
	dst := Load(Param("dst"), GP64())
	y := func(i int) Register { return avx2.vec(i) }
	Label("loop")
	for i := 0; i < 2; i++ {
		v := wf.operand(Mem{Base: src, Disp: 16 * i}, y(i))
		VMOVUPS(v, Mem{Base: dst, Disp: 32 * i})
	}
	ADDQ(U8(32), src)
	ADDQ(U8(64), dst)
	SUBQ(U8(16), n)
	JNZ(LabelRef("loop"))
	VZEROUPPER()
	RET()
}

// dotBF16Pairs emits dot4DPBF16AVX512, the kernel of MatMulBF16Rounded: x and
// four rows of w, all bfloat16, are multiplied with VDPBF16PS (AVX512_BF16),
// which for each float32 lane i of its accumulator adds the products of the
// bf16 pairs 2i+1 and then 2i, each as a float32 FMA with denormal inputs
// read as zero, denormal results flushed to zero and round-to-nearest-even.
// Per row, accumulator u (u = 0, 1) takes the 32-value blocks 64b+32u of the
// n values (n a multiple of 64), then, if tail is not nil, one more 64-value
// block from tail (x in tail[0], row r in tail[1+r]: the last k mod 64
// values, zero-padded by the caller). The reduction is the dot kernels':
// u0+u1 lane-wise, lanes 0..7 + 8..15, 0..3 + 4..7, two horizontal adds.
// dpbf16Go in package gemm emulates all of it bit for bit.
//
// Neither avo nor the Go assembler knows VDPBF16PS, so it is emitted as
// bytes (vdpbf16ps); all its operands are registers.
func dotBF16Pairs() {
	const name = "dot4DPBF16AVX512"
	TEXT(name, NOSPLIT, "func(n int, x, w0, w1, w2, w3 *uint16, tail *[5][64]uint16, out *[4]float32)")
	Pragma("noescape")
	Doc(name + " computes 4 dot products of bf16 x with bf16 rows w0..w3 by VDPBF16PS, over n values (a multiple of 64) and then the padded tail block if tail is not nil.")
	n := Load(Param("n"), GP64())
	x := Load(Param("x"), GP64())
	w := make([]Register, 4)
	for r := range w {
		w[r] = Load(Param(fmt.Sprintf("w%d", r)), GP64())
	}
	const acc0, x0, wt0, nwt = 0, 8, 10, 6 // zmm0-7 accumulators (row r: 2r, 2r+1), zmm8-9 x, zmm10-15 w
	acc := func(r, u int) Register { return avx512.vec(acc0 + 2*r + u) }
	for i := 0; i < 8; i++ {
		avx512.zero(avx512.vec(acc0 + i))
	}
	t := 0
	// block multiplies one 64-value block: x at xm, row r at wm(r).
	block := func(xm Mem, wm func(r int) Mem) {
		for u := 0; u < 2; u++ {
			VMOVUPS(xm.Offset(64*u), avx512.vec(x0+u))
		}
		for r := 0; r < 4; r++ {
			for u := 0; u < 2; u++ {
				wt := wt0 + t%nwt
				t++
				VMOVUPS(wm(r).Offset(64*u), avx512.vec(wt))
				vdpbf16ps(acc0+2*r+u, x0+u, wt)
			}
		}
	}
	TESTQ(n, n)
	JZ(LabelRef("tail"))
	Label("loop")
	block(Mem{Base: x}, func(r int) Mem { return Mem{Base: w[r]} })
	ADDQ(U8(128), x)
	for r := 0; r < 4; r++ {
		ADDQ(U8(128), w[r])
	}
	SUBQ(U8(64), n)
	JNZ(LabelRef("loop"))

	Label("tail")
	tail := Load(Param("tail"), GP64())
	TESTQ(tail, tail)
	JZ(LabelRef("reduce"))
	block(Mem{Base: tail}, func(r int) Mem { return Mem{Base: tail, Disp: 128 * (1 + r)} })

	Label("reduce")
	out := Load(Param("out"), GP64())
	tmp := avx512.vec(x0).(VecPhysical)
	for r := 0; r < 4; r++ {
		reducePairLanes(acc(r, 0), acc(r, 1), acc(r, 0).(VecPhysical), tmp, Mem{Base: out, Disp: 4 * r})
	}
	VZEROUPPER()
	RET()
}

// tileBF16Pairs emits tile3x4DPBF16AVX512, the prefill kernel of
// MatMulBF16Rounded: 3 rows of x (ldx values apart) times 4 rows of w (ldw
// apart), all bfloat16 and all padded by the caller to n values (a multiple
// of 64), into out[i·ldo+j]. Every one of the 12 results is reduced exactly
// as dot4DPBF16AVX512 reduces a row (two accumulators of 16 lanes taking the
// 32-value halves of each 64-value block, then the same lane-wise tree), so
// the two kernels, and dpbf16Go, agree bit for bit; the tile only reuses each
// loaded register 3 or 4 times: 7 loads per 12 VDPBF16PS instead of 10 per 8,
// and 24 independent accumulator chains to hide the instruction's latency.
func tileBF16Pairs() {
	const name = "tile3x4DPBF16AVX512"
	// VPERMPS indices gathering result (i, j), in lane 4j+i, to lane 4i+j.
	tileRowsIdx = GLOBL("tileRowsIdx", RODATA|NOPTR)
	for l, src := range []uint32{0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15} {
		DATA(4*l, U32(src))
	}
	TEXT(name, NOSPLIT, "func(n int, x *uint16, ldx int, w *uint16, ldw int, out *float32, ldo int)")
	Pragma("noescape")
	Doc(name + " computes the 3×4 tile out[i·ldo+j] = VDPBF16PS dot of x row i with w row j over n values (a multiple of 64), reduced like dot4DPBF16AVX512.")
	n := Load(Param("n"), GP64())
	ldx := Load(Param("ldx"), GP64())
	ldw := Load(Param("ldw"), GP64())
	SHLQ(U8(1), ldx) // bytes
	SHLQ(U8(1), ldw)
	xr := make([]Register, 3)
	xr[0] = Load(Param("x"), GP64())
	for i := 1; i < 3; i++ {
		xr[i] = GP64()
		LEAQ(Mem{Base: xr[i-1], Index: ldx, Scale: 1}, xr[i])
	}
	wr := make([]Register, 4)
	wr[0] = Load(Param("w"), GP64())
	for j := 1; j < 4; j++ {
		wr[j] = GP64()
		LEAQ(Mem{Base: wr[j-1], Index: ldw, Scale: 1}, wr[j])
	}
	const x0, w0 = 24, 27 // zmm0-23 accumulators, zmm24-26 x, zmm27-30 w
	acc := func(i, j, u int) int { return 8*i + 2*j + u }
	for r := 0; r < 24; r++ {
		avx512.zero(avx512.vec(r))
	}
	off := GP64()
	XORQ(off, off)
	Label("loop")
	for u := 0; u < 2; u++ {
		for i := 0; i < 3; i++ {
			VMOVUPS(Mem{Base: xr[i], Index: off, Scale: 1, Disp: 64 * u}, avx512.vec(x0+i))
		}
		for j := 0; j < 4; j++ {
			VMOVUPS(Mem{Base: wr[j], Index: off, Scale: 1, Disp: 64 * u}, avx512.vec(w0+j))
			for i := 0; i < 3; i++ {
				vdpbf16ps(acc(i, j, u), x0+i, w0+j)
			}
		}
	}
	ADDQ(U8(128), off)
	SUBQ(U8(64), n)
	JNZ(LabelRef("loop"))

	out := Load(Param("out"), GP64())
	ldo := Load(Param("ldo"), GP64())
	SHLQ(U8(2), ldo)
	// The 12 reductions run side by side, each step on several results per
	// register, adding the same lanes in the same order as reducePairLanes
	// (so dpbf16Go emulates it too): a0+a1; lanes 0..7 + 8..15 (two results
	// per register); 0..3 + 4..7 (four results, one per 128-bit quad); then
	// (0+1) + (2+3) within each quad. The last step leaves result (i, j) in
	// lane 4j+i, and VPERMPS gathers each row into a quad for its store.
	v := avx512.vec
	for i := 0; i < 3; i++ {
		for j := 0; j < 4; j++ {
			VADDPS(v(acc(i, j, 1)), v(acc(i, j, 0)), v(acc(i, j, 0)))
		}
	}
	t1, t2 := v(24), v(25)
	// Lanes 0..7 + 8..15: results (i, 2h) and (i, 2h+1) into acc(i, 2h, 0).
	for i := 0; i < 3; i++ {
		for h := 0; h < 2; h++ {
			a, b := v(acc(i, 2*h, 0)), v(acc(i, 2*h+1, 0))
			VSHUFF32X4(U8(0x44), b, a, t1) // a lanes 0..7, b lanes 0..7
			VSHUFF32X4(U8(0xee), b, a, t2) // a lanes 8..15, b lanes 8..15
			VADDPS(t2, t1, a)
		}
	}
	// Lanes 0..3 + 4..7: quad j of row i's register = result (i, j).
	rows := make([]Register, 3)
	for i := 0; i < 3; i++ {
		p, q := v(acc(i, 0, 0)), v(acc(i, 2, 0))
		VSHUFF32X4(U8(0x88), q, p, t1)
		VSHUFF32X4(U8(0xdd), q, p, t2)
		VADDPS(t2, t1, p)
		rows[i] = p
	}
	// (0+1) + (2+3) within each quad, rows 0 and 1 together, row 2 with
	// itself: quad j ends as (r0, r1, r2, r2) of column j.
	pairs := func(a, b, dst Register) {
		VSHUFPS(U8(0x88), b, a, t1)
		VSHUFPS(U8(0xdd), b, a, t2)
		VADDPS(t2, t1, dst)
	}
	y01, y22 := v(26), v(27)
	pairs(rows[0], rows[1], y01)
	pairs(rows[2], rows[2], y22)
	z := v(28)
	pairs(y01, y22, z)
	idx := v(29)
	VMOVDQU32(tileRowsIdx, idx)
	VPERMPS(z, idx, z)
	// Row i is quad i of z now.
	VMOVUPS(z.(VecPhysical).AsX(), Mem{Base: out})
	ADDQ(ldo, out)
	VEXTRACTF32X4(U8(1), z, Mem{Base: out})
	ADDQ(ldo, out)
	VEXTRACTF32X4(U8(2), z, Mem{Base: out})
	VZEROUPPER()
	RET()
}

// roundBF16Vec emits roundBF16AVX512: n float32 values (n a multiple of 16)
// rounded to bfloat16 as roundBF16 in package gemm does, by integer
// arithmetic (no VCVTNEPS2BF16: it reads denormals as zero, roundBF16 does
// not): bits + 0x7fff + (bits>>16 & 1), the upper half; a NaN keeps its top
// bits with the quiet bit set.
func roundBF16Vec() {
	const name = "roundBF16AVX512"
	TEXT(name, NOSPLIT, "func(n int, src *float32, dst *uint16)")
	Pragma("noescape")
	Doc(name + " rounds n float32 values (a multiple of 16) to bfloat16 like roundBF16.")
	n := Load(Param("n"), GP64())
	src := Load(Param("src"), GP64())
	dst := Load(Param("dst"), GP64())
	c := GP32()
	bcast := func(v uint32, z VecPhysical) {
		MOVL(U32(v), c)
		VPBROADCASTD(c, z)
	}
	one, bias, abs, inf, quiet := Z8, Z9, Z10, Z11, Z12
	bcast(1, one)
	bcast(0x7fff, bias)
	bcast(0x7fffffff, abs)
	bcast(0x7f800000, inf)
	bcast(0x40, quiet)
	TESTQ(n, n)
	JZ(LabelRef("done"))
	Label("loop")
	VMOVDQU32(Mem{Base: src}, Z0)
	VPSRLD(U8(16), Z0, Z1)
	VPANDD(one, Z1, Z2)
	VPADDD(Z0, Z2, Z2)
	VPADDD(bias, Z2, Z2)
	VPSRLD(U8(16), Z2, Z2)
	VPORD(quiet, Z1, Z1) // the NaN result
	VPANDD(abs, Z0, Z3)
	VPCMPUD(U8(6), inf, Z3, K1) // |bits| > 0x7f800000: NaN
	VPBLENDMD(Z1, Z2, K1, Z2)
	VPMOVDW(Z2, Mem{Base: dst})
	ADDQ(U8(64), src)
	ADDQ(U8(32), dst)
	SUBQ(U8(16), n)
	JNZ(LabelRef("loop"))
	Label("done")
	VZEROUPPER()
	RET()
}

// tileRowsIdx is tile3x4DPBF16AVX512's permutation of results to rows.
var tileRowsIdx Mem

// reducePairLanes stores to dst the sum of the 32 lanes of accumulators a0
// and a1 in the order dpbf16Go's reduceLanes emulates: a0+a1 lane-wise
// (into s, a register 0-15, which may be a0), lanes 0..7 + 8..15, 0..3 +
// 4..7, then two horizontal adds ((0+1) + (2+3)); tmp (0-15) is scratch.
func reducePairLanes(a0, a1 Register, s, tmp VecPhysical, dst Mem) {
	VADDPS(a1, a0, s)
	VEXTRACTF64X4(U8(1), s, tmp.AsY())
	VADDPS(tmp.AsY(), s.AsY(), s.AsY())
	VEXTRACTF128(U8(1), s.AsY(), tmp.AsX())
	VADDPS(tmp.AsX(), s.AsX(), s.AsX())
	VHADDPS(s.AsX(), s.AsX(), s.AsX())
	VHADDPS(s.AsX(), s.AsX(), s.AsX())
	VMOVSS(s.AsX(), dst)
}

// vdpbf16ps emits VDPBF16PS zmm(acc) += dot pairs of zmm(src1), zmm(src2):
// EVEX.512.F3.0F38.W0 52 /r, all operands registers 0-31.
func vdpbf16ps(acc, src1, src2 int) {
	inv := func(v, bit int) byte { return byte(^(v >> bit) & 1) }
	p0 := inv(acc, 3)<<7 | inv(src2, 4)<<6 | inv(src2, 3)<<5 | inv(acc, 4)<<4 | 0b10 // mm = 0F38
	p1 := byte(^src1&0xf)<<3 | 1<<2 | 0b10                                           // W0, vvvv, pp = F3
	p2 := byte(0b10)<<5 | inv(src1, 4)<<3                                            // L'L = 512 bits
	modrm := byte(0xc0) | byte(acc&7)<<3 | byte(src2&7)
	Comment(fmt.Sprintf("VDPBF16PS Z%d, Z%d, Z%d", src2, src1, acc))
	for _, b := range []byte{0x62, p0, p1, p2, 0x52, modrm} {
		Instruction(&ir.Instruction{Opcode: "BYTE", Operands: []Op{U8(b)}})
	}
}
