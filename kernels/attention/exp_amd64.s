// Written by hand: the AVX2 forms of expShiftGo, rowMax and rescaleAdd in exp.go, operation for operation.

#include "textflag.h"

DATA log2e<>+0(SB)/4, $0x3fb8aa3b
DATA log2e<>+4(SB)/4, $0x3fb8aa3b
DATA log2e<>+8(SB)/4, $0x3fb8aa3b
DATA log2e<>+12(SB)/4, $0x3fb8aa3b
DATA log2e<>+16(SB)/4, $0x3fb8aa3b
DATA log2e<>+20(SB)/4, $0x3fb8aa3b
DATA log2e<>+24(SB)/4, $0x3fb8aa3b
DATA log2e<>+28(SB)/4, $0x3fb8aa3b
GLOBL log2e<>(SB), RODATA|NOPTR, $32

DATA ln2Hi<>+0(SB)/4, $0x3f318000
DATA ln2Hi<>+4(SB)/4, $0x3f318000
DATA ln2Hi<>+8(SB)/4, $0x3f318000
DATA ln2Hi<>+12(SB)/4, $0x3f318000
DATA ln2Hi<>+16(SB)/4, $0x3f318000
DATA ln2Hi<>+20(SB)/4, $0x3f318000
DATA ln2Hi<>+24(SB)/4, $0x3f318000
DATA ln2Hi<>+28(SB)/4, $0x3f318000
GLOBL ln2Hi<>(SB), RODATA|NOPTR, $32

DATA ln2Lo<>+0(SB)/4, $0xb95e8083
DATA ln2Lo<>+4(SB)/4, $0xb95e8083
DATA ln2Lo<>+8(SB)/4, $0xb95e8083
DATA ln2Lo<>+12(SB)/4, $0xb95e8083
DATA ln2Lo<>+16(SB)/4, $0xb95e8083
DATA ln2Lo<>+20(SB)/4, $0xb95e8083
DATA ln2Lo<>+24(SB)/4, $0xb95e8083
DATA ln2Lo<>+28(SB)/4, $0xb95e8083
GLOBL ln2Lo<>(SB), RODATA|NOPTR, $32

DATA roundTo<>+0(SB)/4, $0x4b400000
DATA roundTo<>+4(SB)/4, $0x4b400000
DATA roundTo<>+8(SB)/4, $0x4b400000
DATA roundTo<>+12(SB)/4, $0x4b400000
DATA roundTo<>+16(SB)/4, $0x4b400000
DATA roundTo<>+20(SB)/4, $0x4b400000
DATA roundTo<>+24(SB)/4, $0x4b400000
DATA roundTo<>+28(SB)/4, $0x4b400000
GLOBL roundTo<>(SB), RODATA|NOPTR, $32

DATA clampLo<>+0(SB)/4, $0xc2ae0000
DATA clampLo<>+4(SB)/4, $0xc2ae0000
DATA clampLo<>+8(SB)/4, $0xc2ae0000
DATA clampLo<>+12(SB)/4, $0xc2ae0000
DATA clampLo<>+16(SB)/4, $0xc2ae0000
DATA clampLo<>+20(SB)/4, $0xc2ae0000
DATA clampLo<>+24(SB)/4, $0xc2ae0000
DATA clampLo<>+28(SB)/4, $0xc2ae0000
GLOBL clampLo<>(SB), RODATA|NOPTR, $32

DATA one<>+0(SB)/4, $0x3f800000
DATA one<>+4(SB)/4, $0x3f800000
DATA one<>+8(SB)/4, $0x3f800000
DATA one<>+12(SB)/4, $0x3f800000
DATA one<>+16(SB)/4, $0x3f800000
DATA one<>+20(SB)/4, $0x3f800000
DATA one<>+24(SB)/4, $0x3f800000
DATA one<>+28(SB)/4, $0x3f800000
GLOBL one<>(SB), RODATA|NOPTR, $32

DATA bias<>+0(SB)/4, $0x4b3fff81
DATA bias<>+4(SB)/4, $0x4b3fff81
DATA bias<>+8(SB)/4, $0x4b3fff81
DATA bias<>+12(SB)/4, $0x4b3fff81
DATA bias<>+16(SB)/4, $0x4b3fff81
DATA bias<>+20(SB)/4, $0x4b3fff81
DATA bias<>+24(SB)/4, $0x4b3fff81
DATA bias<>+28(SB)/4, $0x4b3fff81
GLOBL bias<>(SB), RODATA|NOPTR, $32

DATA p0<>+0(SB)/4, $0x39506967
DATA p0<>+4(SB)/4, $0x39506967
DATA p0<>+8(SB)/4, $0x39506967
DATA p0<>+12(SB)/4, $0x39506967
DATA p0<>+16(SB)/4, $0x39506967
DATA p0<>+20(SB)/4, $0x39506967
DATA p0<>+24(SB)/4, $0x39506967
DATA p0<>+28(SB)/4, $0x39506967
GLOBL p0<>(SB), RODATA|NOPTR, $32

DATA p1<>+0(SB)/4, $0x3ab743ce
DATA p1<>+4(SB)/4, $0x3ab743ce
DATA p1<>+8(SB)/4, $0x3ab743ce
DATA p1<>+12(SB)/4, $0x3ab743ce
DATA p1<>+16(SB)/4, $0x3ab743ce
DATA p1<>+20(SB)/4, $0x3ab743ce
DATA p1<>+24(SB)/4, $0x3ab743ce
DATA p1<>+28(SB)/4, $0x3ab743ce
GLOBL p1<>(SB), RODATA|NOPTR, $32

DATA p2<>+0(SB)/4, $0x3c088908
DATA p2<>+4(SB)/4, $0x3c088908
DATA p2<>+8(SB)/4, $0x3c088908
DATA p2<>+12(SB)/4, $0x3c088908
DATA p2<>+16(SB)/4, $0x3c088908
DATA p2<>+20(SB)/4, $0x3c088908
DATA p2<>+24(SB)/4, $0x3c088908
DATA p2<>+28(SB)/4, $0x3c088908
GLOBL p2<>(SB), RODATA|NOPTR, $32

DATA p3<>+0(SB)/4, $0x3d2aa9c1
DATA p3<>+4(SB)/4, $0x3d2aa9c1
DATA p3<>+8(SB)/4, $0x3d2aa9c1
DATA p3<>+12(SB)/4, $0x3d2aa9c1
DATA p3<>+16(SB)/4, $0x3d2aa9c1
DATA p3<>+20(SB)/4, $0x3d2aa9c1
DATA p3<>+24(SB)/4, $0x3d2aa9c1
DATA p3<>+28(SB)/4, $0x3d2aa9c1
GLOBL p3<>(SB), RODATA|NOPTR, $32

DATA p4<>+0(SB)/4, $0x3e2aaaaa
DATA p4<>+4(SB)/4, $0x3e2aaaaa
DATA p4<>+8(SB)/4, $0x3e2aaaaa
DATA p4<>+12(SB)/4, $0x3e2aaaaa
DATA p4<>+16(SB)/4, $0x3e2aaaaa
DATA p4<>+20(SB)/4, $0x3e2aaaaa
DATA p4<>+24(SB)/4, $0x3e2aaaaa
DATA p4<>+28(SB)/4, $0x3e2aaaaa
GLOBL p4<>(SB), RODATA|NOPTR, $32

DATA p5<>+0(SB)/4, $0x3f000000
DATA p5<>+4(SB)/4, $0x3f000000
DATA p5<>+8(SB)/4, $0x3f000000
DATA p5<>+12(SB)/4, $0x3f000000
DATA p5<>+16(SB)/4, $0x3f000000
DATA p5<>+20(SB)/4, $0x3f000000
DATA p5<>+24(SB)/4, $0x3f000000
DATA p5<>+28(SB)/4, $0x3f000000
GLOBL p5<>(SB), RODATA|NOPTR, $32

// func expShiftAVX2(x *float32, n int, shift float32, sums *[8]float32)
// x[i] = e^max(x[i]−shift, −87) for i < n, n a multiple of 8; every step is
// one IEEE operation in the order of expShiftGo, without FMA, so the bits
// are the same. sums[l] is the sum of lane l's results in index order.
TEXT ·expShiftAVX2(SB), NOSPLIT, $0-32
	MOVQ         x+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS shift+16(FP), Y15
	MOVQ         sums+24(FP), SI
	VXORPS       Y7, Y7, Y7
	VMOVUPS      clampLo<>(SB), Y14
	VMOVUPS      log2e<>(SB), Y13
	VMOVUPS      roundTo<>(SB), Y12
	VMOVUPS      ln2Hi<>(SB), Y11
	VMOVUPS      ln2Lo<>(SB), Y10
	VMOVUPS      bias<>(SB), Y9
	VMOVUPS      one<>(SB), Y8
	SHRQ         $3, CX
	JZ           done

loop:
	VMOVUPS (DI), Y0
	VSUBPS  Y15, Y0, Y0     // v = x − shift
	VMAXPS  Y0, Y14, Y0     // v = max(−87, v); a NaN v is kept
	VMULPS  Y13, Y0, Y1     // v·log2e
	VADDPS  Y12, Y1, Y1     // t = v·log2e + 1.5·2²³ rounds to an integer n
	VSUBPS  Y12, Y1, Y2     // fn = t − 1.5·2²³
	VPSUBD  Y9, Y1, Y1      // bits(t) − bits(1.5·2²³) + 127 = n + 127
	VPSLLD  $23, Y1, Y1     // 2ⁿ
	VMULPS  Y11, Y2, Y3
	VSUBPS  Y3, Y0, Y4      // r = v − fn·ln2Hi
	VMULPS  Y10, Y2, Y3
	VSUBPS  Y3, Y4, Y4      // r −= fn·ln2Lo
	VMULPS  p0<>(SB), Y4, Y5
	VADDPS  p1<>(SB), Y5, Y5
	VMULPS  Y4, Y5, Y5
	VADDPS  p2<>(SB), Y5, Y5
	VMULPS  Y4, Y5, Y5
	VADDPS  p3<>(SB), Y5, Y5
	VMULPS  Y4, Y5, Y5
	VADDPS  p4<>(SB), Y5, Y5
	VMULPS  Y4, Y5, Y5
	VADDPS  p5<>(SB), Y5, Y5
	VMULPS  Y4, Y4, Y6      // r²
	VMULPS  Y6, Y5, Y5      // p·r²
	VADDPS  Y4, Y5, Y5      // + r
	VADDPS  Y8, Y5, Y5      // + 1
	VMULPS  Y1, Y5, Y5      // · 2ⁿ
	VMOVUPS Y5, (DI)
	VADDPS  Y5, Y7, Y7      // lane sums
	ADDQ    $32, DI
	DECQ    CX
	JNZ     loop

done:
	VMOVUPS Y7, (SI)
	VZEROUPPER
	RET

// func maxAVX2(x *float32, n int, init float32) float32
// The largest of init and x[:n], n a multiple of 8 (x finite).
TEXT ·maxAVX2(SB), NOSPLIT, $0-28
	MOVQ         x+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS init+16(FP), Y0
	SHRQ         $3, CX
	JZ           reduce

maxloop:
	VMAXPS (DI), Y0, Y0
	ADDQ   $32, DI
	DECQ   CX
	JNZ    maxloop

reduce:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0x4e, X0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0xb1, X0, X1
	VMAXPS       X1, X0, X0
	VMOVSS       X0, ret+24(FP)
	VZEROUPPER
	RET

// func rescaleAddAVX2(o, x *float32, n int, a float32)
// o[i] = o[i]·a + x[i] for i < n, n a multiple of 8: a product rounded, then
// a sum rounded, as rescaleAddGo does.
TEXT ·rescaleAddAVX2(SB), NOSPLIT, $0-28
	MOVQ         o+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSS a+24(FP), Y15
	SHRQ         $3, CX
	JZ           radone

raloop:
	VMULPS  (DI), Y15, Y0
	VADDPS  (SI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	DECQ    CX
	JNZ     raloop

radone:
	VZEROUPPER
	RET
