// Package half converts between float32 and the two 16-bit floating-point
// formats that model checkpoints use: IEEE 754 binary16 ("f16") and
// bfloat16 ("bf16", the upper half of a float32).
//
// Widening is exact for both formats. Narrowing rounds to nearest with ties
// to even, as PyTorch and numpy do: values beyond the 16-bit range become
// infinite, f16 gets subnormals where the value needs them, and a NaN stays
// a NaN of the same sign, made quiet. The bulk functions are the fast
// portable paths (a lookup table for f16); kernels/gemm has vector widening
// of its own for its matrix kernels.
package half

import (
	"encoding/binary"
	"math"
	"sync"
)

// ToFloat32F16 widens an IEEE 754 binary16 value. Every half is exactly
// representable as a float32, so this never rounds; a NaN keeps its sign and
// payload bits as they are (a signalling NaN is not quieted).
func ToFloat32F16(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // infinity or NaN, payload kept
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0: // normal: rebias the exponent from 15 to 127
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	default: // zero or subnormal: mant × 2⁻²⁴, normal and exact in float32
		v := float32(mant) * 0x1p-24
		return math.Float32frombits(sign | math.Float32bits(v))
	}
}

// FromFloat32F16 rounds f to the nearest binary16, ties to even, with
// subnormal halves where the value needs them and infinity from 65520 (the
// largest finite half plus half its ulp) on. A NaN stays a NaN of the same
// sign, made quiet, keeping the top of its payload.
func FromFloat32F16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 | uint16(mant>>13)
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15 // the half's biased exponent if the result is normal
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// The result is subnormal (or zero): count in units of 2⁻²⁴. Below
		// 2⁻²⁵, half the smallest subnormal, everything rounds to zero; that
		// includes every float32 subnormal.
		if e < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - e)
		h := mant >> shift
		rem := mant & (1<<shift - 1)
		halfway := uint32(1) << (shift - 1)
		if rem > halfway || (rem == halfway && h&1 == 1) {
			h++ // may carry into the smallest normal, which is correct
		}
		return sign | uint16(h)
	}
	// Normal: rebias the exponent from 127 to 15 in place and round the 13
	// dropped bits the way FromFloat32BF16 rounds its 16, without a branch
	// (random weights make the rounding direction unpredictable, and a
	// mispredicted branch cost three times the conversion). A carry
	// propagates into the exponent: to the next binade, or from the largest
	// finite half to infinity.
	r := b&0x7fffffff - (127-15)<<23
	r += 0xfff + (r>>13)&1
	return sign | uint16(r>>13)
}

// ToFloat32BF16 widens a bfloat16 value: it is the top half of a float32.
func ToFloat32BF16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// FromFloat32BF16 rounds f to the nearest bfloat16, ties to even, as
// PyTorch's tensor.to(torch.bfloat16) does. A NaN stays a NaN of the same
// sign, made quiet: truncating its payload could otherwise leave an infinity.
func FromFloat32BF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	// Adding 0x7fff plus the lowest kept bit carries into the kept half
	// exactly when the dropped half is above one half, or equal to it with
	// an odd kept half. An overflow carries into the exponent: infinity.
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// f16Table maps every binary16 bit pattern to its float32 value: 256 KiB,
// built on first use and resident in L2, and several times faster than
// converting field by field.
var f16Table = sync.OnceValue(func() *[1 << 16]float32 {
	t := new([1 << 16]float32)
	for h := range t {
		t[h] = ToFloat32F16(uint16(h))
	}
	return t
})

// WidenF16 sets dst[i] = ToFloat32F16(src[i]) for i < len(src). It panics if
// dst is shorter than src.
func WidenF16(dst []float32, src []uint16) {
	dst = dst[:len(src)] // one bounds check instead of one per element
	t := f16Table()
	for i, h := range src {
		dst[i] = t[h]
	}
}

// WidenBF16 sets dst[i] = ToFloat32BF16(src[i]) for i < len(src). It panics
// if dst is shorter than src.
func WidenBF16(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = math.Float32frombits(uint32(h) << 16)
	}
}

// NarrowF16 sets dst[i] = FromFloat32F16(src[i]) for i < len(src). It panics
// if dst is shorter than src.
func NarrowF16(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	for i, f := range src {
		dst[i] = FromFloat32F16(f)
	}
}

// NarrowBF16 sets dst[i] = FromFloat32BF16(src[i]) for i < len(src). It
// panics if dst is shorter than src.
func NarrowBF16(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	for i, f := range src {
		dst[i] = FromFloat32BF16(f)
	}
}

// DecodeF16 widens len(dst) little-endian binary16 values from src into dst,
// as WidenF16 does. It panics if src is shorter than 2*len(dst) bytes.
func DecodeF16(dst []float32, src []byte) {
	src = src[:2*len(dst)]
	t := f16Table()
	for i := range dst {
		dst[i] = t[uint16(src[2*i])|uint16(src[2*i+1])<<8]
	}
}

// DecodeBF16 widens len(dst) little-endian bfloat16 values from src into
// dst. It panics if src is shorter than 2*len(dst) bytes.
func DecodeBF16(dst []float32, src []byte) {
	src = src[:2*len(dst)]
	for i := range dst {
		dst[i] = math.Float32frombits(uint32(src[2*i])<<16 | uint32(src[2*i+1])<<24)
	}
}

// EncodeF16 writes src rounded to binary16 (FromFloat32F16) into dst as
// little-endian bytes. It panics if dst is shorter than 2*len(src) bytes.
func EncodeF16(dst []byte, src []float32) {
	dst = dst[:2*len(src)]
	for i, f := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], FromFloat32F16(f))
	}
}

// EncodeBF16 writes src rounded to bfloat16 (FromFloat32BF16) into dst as
// little-endian bytes. It panics if dst is shorter than 2*len(src) bytes.
func EncodeBF16(dst []byte, src []float32) {
	dst = dst[:2*len(src)]
	for i, f := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], FromFloat32BF16(f))
	}
}
