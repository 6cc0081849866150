package ggufmodel

import (
	"fmt"
	"math"

	"lrmc/kernels/llama"
)

// ropeFreqsName is the tensor in which llama.cpp's converter stores Llama
// 3.x's "llama3" rope scaling: one divisor per rotary pair, applied to the
// unscaled frequency (freq = theta^(-2i/d) / factor_i).
const ropeFreqsName = "rope_freqs.weight"

// llama3Defaults are the low_freq_factor, high_freq_factor and original
// context of every Llama 3.x release. llama.cpp's converter reads the
// original context from the top level of config.json, where Llama 3.1 does
// not set it, so 8192 is what its rope_freqs encode in any case.
var llama3Defaults = llama.RopeScaling{Type: "llama3", LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}

// llama3Divisors computes rope_freqs as llama.cpp's converter does
// (LlamaModel.generate_extra_tensors): 1 for short wavelengths, factor for
// long ones, 1/((1−smooth)/factor + smooth) between.
func llama3Divisors(c llama.Config) []float32 {
	s, hd := c.RopeScaling, c.HeadDim()
	low, high := float64(s.OriginalMaxPositions)/s.LowFreqFactor, float64(s.OriginalMaxPositions)/s.HighFreqFactor
	out := make([]float32, hd/2)
	for i := range out {
		// The converter's frequencies are a float32 tensor.
		freq := float64(1 / float32(math.Pow(c.RopeTheta, float64(float32(2*i)/float32(hd)))))
		wavelen := 2 * math.Pi / freq
		switch {
		case wavelen < high:
			out[i] = 1
		case wavelen > low:
			out[i] = float32(s.Factor)
		default:
			smooth := (float64(s.OriginalMaxPositions)/wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
			out[i] = float32(1 / ((1-smooth)/s.Factor + smooth))
		}
	}
	return out
}

// scalingFromDivisors recognises rope_freqs as Llama 3.x's "llama3" scaling:
// the largest divisor is the factor, the other parameters are Llama 3's,
// and every divisor must be what the converter computes from them (to
// float32 rounding, within 1e-6). Anything else is an error: llama.Model
// has no arbitrary per-pair divisors.
func scalingFromDivisors(c llama.Config, divisors []float32) (llama.RopeScaling, error) {
	s := llama3Defaults
	for _, d := range divisors {
		s.Factor = math.Max(s.Factor, float64(d))
	}
	c.RopeScaling = s
	want := llama3Divisors(c)
	for i, d := range divisors {
		if math.Abs(float64(d)-float64(want[i])) > 1e-6*float64(want[i]) {
			return s, fmt.Errorf("%s[%d] is %g, but llama3 scaling (factor %g, low_freq_factor 1, high_freq_factor 4, original context 8192) gives %g; other rope factors are not supported",
				ropeFreqsName, i, d, s.Factor, want[i])
		}
	}
	return s, nil
}
