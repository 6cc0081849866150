package llama

import "math"

// ropeFreqs returns the rotation frequency of each pair (2i, 2i+1) of a head:
// theta^(-2i/headDim), computed in float32 as llama2.c's run.c does
// (1/powf(theta, 2i/(float)head_size)) so that generation matches it.
func ropeFreqs(headDim int, theta float64) []float32 {
	f := make([]float32, headDim/2)
	for i := range f {
		e := float32(2*i) / float32(headDim)
		f[i] = 1 / float32(math.Pow(theta, float64(e)))
	}
	return f
}

// ropeAt writes cos and sin of pos·freq[i] for every pair, rounding the angle
// to float32 first as run.c does.
func ropeAt(cos, sin, freqs []float32, pos int) {
	for i, f := range freqs {
		a := float64(float32(pos) * f)
		cos[i] = float32(math.Cos(a))
		sin[i] = float32(math.Sin(a))
	}
}

// rotate applies the rotary embedding to every head of vec (heads of width
// 2·len(cos) laid side by side): each adjacent pair (v0, v1) becomes
// (v0·cos − v1·sin, v0·sin + v1·cos). This is the llama2.c / GGUF layout,
// not Hugging Face's rotate-half one.
func rotate(vec, cos, sin []float32) {
	hd := 2 * len(cos)
	for h := 0; h+hd <= len(vec); h += hd {
		v := vec[h : h+hd]
		for i := range cos {
			c, s := cos[i], sin[i]
			v0, v1 := v[2*i], v[2*i+1]
			v[2*i] = float32(v0*c) - float32(v1*s)
			v[2*i+1] = float32(v0*s) + float32(v1*c)
		}
	}
}
