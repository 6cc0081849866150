// Written by hand: swiGLUAVX512 is tensor.SwiGLU eight elements at a time,
// with e^−g computed exactly as Go's math.Exp computes it on a CPU with FMA
// (math/exp_amd64.s, its avxfma path, instruction for instruction in
// float64 lanes), so every result has the scalar loop's bits.

#include "textflag.h"

#define BCAST8(name, bits) \
	DATA name<>+0(SB)/8, bits; \
	GLOBL name<>(SB), RODATA|NOPTR, $8

BCAST8(signbit, $0x8000000000000000)
BCAST8(clampHi, $700.0)
BCAST8(clampLo, $-700.0)
BCAST8(log2e, $1.4426950408889634073599246810018920)
BCAST8(ln2u, $0.69314718055966295651160180568695068359375)
BCAST8(ln2l, $0.28235290563031577122588448175013436025525412068e-12)
BCAST8(sixteenth, $0.0625)
BCAST8(c64, $2.4801587301587301587e-5)
BCAST8(c56, $1.9841269841269841270e-4)
BCAST8(c48, $1.3888888888888888889e-3)
BCAST8(c40, $8.3333333333333333333e-3)
BCAST8(c32, $4.1666666666666666667e-2)
BCAST8(c24, $1.6666666666666666667e-1)
BCAST8(half, $0.5)
BCAST8(one, $1.0)
BCAST8(two, $2.0)
BCAST8(bias, $1023)

DATA onef<>+0(SB)/4, $1.0
GLOBL onef<>(SB), RODATA|NOPTR, $4

// func swiGLUAVX512(gate, up *float32, n int)
TEXT ·swiGLUAVX512(SB), NOSPLIT, $0-24
	MOVQ gate+0(FP), SI
	MOVQ up+8(FP), DI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ   done
	VBROADCASTSD signbit<>(SB), Z20
	VBROADCASTSD clampHi<>(SB), Z21
	VBROADCASTSD clampLo<>(SB), Z22
	VBROADCASTSD log2e<>(SB), Z23
	VBROADCASTSD ln2u<>(SB), Z24
	VBROADCASTSD ln2l<>(SB), Z25
	VBROADCASTSD sixteenth<>(SB), Z26
	VBROADCASTSD two<>(SB), Z27
	VBROADCASTSD one<>(SB), Z28
	VPBROADCASTQ bias<>(SB), Z29
	VBROADCASTSS onef<>(SB), Y30

loop:
	VMOVUPS    (SI), Y0      // g
	VCVTPS2PD  Y0, Z1        // x = float64(g)
	VXORPD     Z20, Z1, Z1   // x = −x (exact)
	// Outside [−700, 700] e^x is 0 or +Inf once rounded to float32, as
	// math.Exp's own overflow and denormal branches give; inside, its
	// exponent stays normal, so only its main path is needed.
	VMINPD     Z21, Z1, Z1
	VMAXPD     Z22, Z1, Z1
	VMULPD     Z23, Z1, Z2
	VCVTPD2DQ  Z2, Y3        // exponent, rounded to nearest like CVTSD2SL
	VCVTDQ2PD  Y3, Z4
	VFNMADD231PD Z24, Z4, Z1 // x −= e·LN2U (fused)
	VFNMADD231PD Z25, Z4, Z1 // x −= e·LN2L (fused)
	VMULPD     Z26, Z1, Z1
	VBROADCASTSD c64<>(SB), Z5
	VFMADD213PD.BCST c56<>(SB), Z1, Z5
	VFMADD213PD.BCST c48<>(SB), Z1, Z5
	VFMADD213PD.BCST c40<>(SB), Z1, Z5
	VFMADD213PD.BCST c32<>(SB), Z1, Z5
	VFMADD213PD.BCST c24<>(SB), Z1, Z5
	VFMADD213PD.BCST half<>(SB), Z1, Z5
	VFMADD213PD  Z28, Z1, Z5
	VMULPD     Z5, Z1, Z1
	VADDPD     Z27, Z1, Z5
	VMULPD     Z5, Z1, Z1
	VADDPD     Z27, Z1, Z5
	VMULPD     Z5, Z1, Z1
	VADDPD     Z27, Z1, Z5
	VMULPD     Z5, Z1, Z1
	VADDPD     Z27, Z1, Z5
	VFMADD213PD  Z28, Z5, Z1 // x = x·(x+2) + 1
	// · 2^e through the exponent bits.
	VPMOVSXDQ  Y3, Z6
	VPADDQ     Z29, Z6, Z6
	VPSLLQ     $52, Z6, Z6
	VMULPD     Z6, Z1, Z1
	VCVTPD2PS  Z1, Y1        // Exp32(−g)
	// SiLU(g)·up in float32, each step rounded as in Go.
	VADDPS     Y30, Y1, Y1   // 1 + e
	VDIVPS     Y1, Y30, Y1   // 1 / (1+e)
	VMULPS     Y1, Y0, Y0    // g · that
	VMULPS     (DI), Y0, Y0  // · up
	VMOVUPS    Y0, (SI)
	ADDQ       $32, SI
	ADDQ       $32, DI
	DECQ       CX
	JNZ        loop
	VZEROUPPER

done:
	RET
