package tensor

import "math"

// Exp32 is e^x rounded to float32 (C's expf). It goes through float64, whose
// error is far below a float32 ulp, so the result is the correctly rounded
// value except in vanishingly rare double-rounding cases.
func Exp32(x float32) float32 { return float32(math.Exp(float64(x))) }

// Sqrt32 is the correctly rounded float32 square root (C's sqrtf): rounding
// the float64 root of a float32 to float32 is exact.
func Sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }

// RMSNorm writes out[i] = w[i]·(x[i]·r) with r = 1/sqrt(mean(x²)+eps), all in
// float32 with the sum of squares taken in index order, as llama2.c does.
// out may alias x. len(w) and len(out) must be at least len(x).
func RMSNorm(out, x, w []float32, eps float32) {
	var ss float32
	for _, v := range x {
		ss += float32(v * v)
	}
	scaleRow(out, x, w, rmsScale(ss, len(x), eps))
}

// RMSNormRows applies RMSNorm to each of the rows of width len(w) in x.
// Four rows at a time: each row's sum of squares is still one chain in
// index order (RMSNorm's bits), but four independent chains keep the adder
// busy where one waits out each add's latency.
func RMSNormRows(out, x, w []float32, eps float32) {
	d := len(w)
	r := 0
	for ; r+4*d <= len(x); r += 4 * d {
		x0, x1, x2, x3 := x[r:r+d], x[r+d:r+2*d], x[r+2*d:r+3*d], x[r+3*d:r+4*d]
		var s0, s1, s2, s3 float32
		for i := range x0 {
			s0 += float32(x0[i] * x0[i])
			s1 += float32(x1[i] * x1[i])
			s2 += float32(x2[i] * x2[i])
			s3 += float32(x3[i] * x3[i])
		}
		for j, ss := range [4]float32{s0, s1, s2, s3} {
			o := r + j*d
			scaleRow(out[o:o+d], x[o:o+d], w, rmsScale(ss, d, eps))
		}
	}
	for ; r+d <= len(x); r += d {
		RMSNorm(out[r:r+d], x[r:r+d], w, eps)
	}
}

// rmsScale is 1/sqrt(ss/d + eps), RMSNorm's factor from a row's sum of
// squares ss over d values.
func rmsScale(ss float32, d int, eps float32) float32 {
	ss /= float32(d)
	ss += eps
	return 1 / Sqrt32(ss)
}

// scaleRow sets out[i] = w[i]·(r·x[i]). out may alias x.
func scaleRow(out, x, w []float32, r float32) {
	out, w = out[:len(x)], w[:len(x)]
	for i, v := range x {
		out[i] = w[i] * float32(r*v)
	}
}

// Softmax replaces x by softmax(x) in place: subtract the maximum, exponentiate
// and divide by the sum (accumulated in index order), as llama2.c does.
func Softmax(x []float32) {
	if len(x) == 0 {
		return
	}
	maxv := x[0]
	for _, v := range x[1:] {
		if v > maxv {
			maxv = v
		}
	}
	var sum float32
	for i, v := range x {
		e := Exp32(v - maxv)
		x[i] = e
		sum += e
	}
	for i := range x {
		x[i] /= sum
	}
}

// SiLU is x·σ(x), computed as llama2.c does: x·(1/(1+e^(−x))).
func SiLU(x float32) float32 { return x * (1 / (1 + Exp32(-x))) }

// SwiGLU overwrites gate with SiLU(gate[i])·up[i], the Llama MLP activation.
// On amd64 with AVX-512 and FMA an assembly kernel does eight elements at a
// time with the same bits (it follows math.Exp's own instructions; see
// swiglu_amd64.s): SiLU's float64 exponential was a fifth of a prefill.
func SwiGLU(gate, up []float32) {
	up = up[:len(gate)]
	n := swiGLUVector(gate, up)
	swiGLUGo(gate[n:], up[n:])
}

// swiGLUGo is SwiGLU one element at a time.
func swiGLUGo(gate, up []float32) {
	up = up[:len(gate)]
	for i, g := range gate {
		gate[i] = SiLU(g) * up[i]
	}
}

// Add adds x into dst element-wise (the residual connection).
func Add(dst, x []float32) {
	x = x[:len(dst)]
	for i := range dst {
		dst[i] += x[i]
	}
}
