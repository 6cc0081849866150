package bench

import (
	"fmt"
	"math"

	"lrmc/kernels/llama"
)

// ComputeError is how far bf16 compute moves a model's logits from float32
// compute on the same bfloat16 weights, over every position of one
// sequence.
type ComputeError struct {
	Shape  string `json:"shape"`
	Tokens int    `json:"tokens"`
	// MaxAbs and MeanAbs are the largest and the mean |Δ logit|; MaxLogit
	// is the largest |logit| of float32 compute, for scale.
	MaxAbs, MeanAbs, MaxLogit float64
	// Top1 is the fraction of positions whose most likely token agrees.
	Top1 float64
}

// MeasureComputeError builds the shape's synthetic model, rounds its
// weights to bfloat16 and compares the logits of a tokens-long random
// sequence under float32 and bf16 compute.
func MeasureComputeError(s ModelShape, tokens int) (ComputeError, error) {
	m, err := s.Build()
	if err != nil {
		return ComputeError{}, err
	}
	h, err := m.WithDType(llama.BFloat16)
	if err != nil {
		return ComputeError{}, fmt.Errorf("bench: compute error %s: %w", s.Name, err)
	}
	bc, err := h.WithCompute(llama.ComputeBF16)
	if err != nil {
		return ComputeError{}, fmt.Errorf("bench: compute error %s: %w", s.Name, err)
	}
	toks := randomTokens(tokens, m.Config.Vocab, 11)
	want, got := h.Forward(toks, 1, tokens), bc.Forward(toks, 1, tokens)
	return compareLogits(s.Name, tokens, m.Config.Vocab, want, got), nil
}

func compareLogits(name string, tokens, vocab int, want, got []float32) ComputeError {
	e := ComputeError{Shape: name, Tokens: tokens}
	var sum float64
	agree := 0
	for p := range tokens {
		w, g := want[p*vocab:(p+1)*vocab], got[p*vocab:(p+1)*vocab]
		bw, bg := 0, 0
		for i := range w {
			d := math.Abs(float64(g[i]) - float64(w[i]))
			e.MaxAbs = max(e.MaxAbs, d)
			sum += d
			e.MaxLogit = max(e.MaxLogit, math.Abs(float64(w[i])))
			if w[i] > w[bw] {
				bw = i
			}
			if g[i] > g[bg] {
				bg = i
			}
		}
		if bw == bg {
			agree++
		}
	}
	e.MeanAbs = sum / float64(len(want))
	e.Top1 = float64(agree) / float64(tokens)
	return e
}
