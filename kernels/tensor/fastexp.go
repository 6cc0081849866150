package tensor

import (
	"math"
)

// Constants of FastExp32: Cody–Waite's split of ln 2 (the high part has 9
// significant bits, so n·ln2Hi is exact for every n the range allows) and
// Cephes' expf minimax polynomial for e^r − 1 − r on |r| ≤ ln2/2.
const (
	log2e   = 1.44269504088896341
	ln2Hi   = 0.693359375
	ln2Lo   = -2.12194440e-4
	roundTo = 12582912   // 1.5·2²³: adding it rounds a float32 below 2²² to an integer
	expMax  = 88.72283   // largest x with a finite e^x in float32
	expMin  = -103.97208 // below this e^x rounds to zero
	expP0   = 1.9875691500e-4
	expP1   = 1.3981999507e-3
	expP2   = 8.3334519073e-3
	expP3   = 4.1665795894e-2
	expP4   = 1.6666665459e-1
	expP5   = 5.0000001201e-1
)

// FastExp32 is e^x in float32 arithmetic, within 2 ulps of the correctly
// rounded value over the whole float32 range (subnormal results included;
// see TestFastExp32Accuracy), about four times faster than Exp32, which goes
// through float64's math.Exp. It reduces x = n·ln2 + r with |r| ≤ ln2/2,
// evaluates a degree-7 polynomial for e^r and scales by 2^n through the
// exponent bits. Every product is rounded to float32 before it is added (an
// explicit conversion, which forbids FMA fusion), so results are the same on
// every amd64 level and architecture. Softmax in training uses it; llama's
// inference keeps Exp32.
func FastExp32(x float32) float32 {
	switch {
	case x != x:
		return x
	case x > expMax:
		return float32(math.Inf(1))
	case x < expMin:
		return 0
	}
	t := float32(x*log2e) + roundTo
	fn := t - roundTo
	n := int32(math.Float32bits(t)) - int32(math.Float32bits(roundTo))
	r := float32(x-float32(fn*ln2Hi)) - float32(fn*ln2Lo)
	p := float32(expP0*r) + expP1
	p = float32(p*r) + expP2
	p = float32(p*r) + expP3
	p = float32(p*r) + expP4
	p = float32(p*r) + expP5
	p = float32(float32(p*float32(r*r))+r) + 1
	if n < -126 || n > 127 {
		// 2^n is not a normal float32: scale in two exact-range steps, the
		// second of which rounds once (to a subnormal, or to the top binade).
		h := n / 2
		return float32(p*pow2(h)) * pow2(n-h)
	}
	return p * pow2(n)
}

// FastExp32s replaces every x[i] by FastExp32(x[i]), bit for bit.
func FastExp32s(x []float32) { FastExp32sSum(x, 0, 1) }

// FastExp32sSum replaces every x[i] by FastExp32(float32((x[i]−shift)·scale))
// and returns the float32 sum of the results in index order: softmax's
// exponentiation and normalizer in one pass. The steps of FastExp32 are
// written inside the loop, bit for bit the same, because FastExp32 is too
// large for the compiler to inline and a call per element would cost as
// much as the arithmetic.
func FastExp32sSum(x []float32, shift, scale float32) float32 {
	var sum float32
	for i, v := range x {
		v = float32((v - shift) * scale)
		if !(v >= expMin && v <= expMax) {
			e := FastExp32(v) // NaN, overflow, underflow
			x[i] = e
			sum += e
			continue
		}
		t := float32(v*log2e) + roundTo
		fn := t - roundTo
		n := int32(math.Float32bits(t)) - int32(math.Float32bits(roundTo))
		r := float32(v-float32(fn*ln2Hi)) - float32(fn*ln2Lo)
		p := float32(expP0*r) + expP1
		p = float32(p*r) + expP2
		p = float32(p*r) + expP3
		p = float32(p*r) + expP4
		p = float32(p*r) + expP5
		p = float32(float32(p*float32(r*r))+r) + 1
		var e float32
		if n < -126 || n > 127 {
			h := n / 2
			e = float32(p*pow2(h)) * pow2(n-h)
		} else {
			e = p * pow2(n)
		}
		x[i] = e
		sum += e
	}
	return sum
}

// pow2 is 2^n for n in [-126, 127].
func pow2(n int32) float32 { return math.Float32frombits(uint32(n+127) << 23) }
