package llama_test

import (
	"math"
	"testing"

	"lrmc/kernels/llama"
	"lrmc/kernels/synth"
)

// Prefill leaves the decoder where feeding the same tokens with Step
// does: the same next-token logits, and the same logits for the tokens
// stepped after it (so its cached keys and values are right), to float32
// rounding.
func TestDecoderPrefillMatchesSteps(t *testing.T) {
	m, _, err := synth.New(synth.Spec{Arch: "qwen3", Layers: 2, Dim: 32, Heads: 4, KVHeads: 2, HeadDim: 16, FFN: 64, Vocab: 40, SeqLen: 64, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	prompt := []int32{1, 5, 9, 2, 33, 7, 7, 12, 3}
	next := []int32{4, 8, 15}
	stepped := llama.NewDecoder(m, 64)
	var want [][]float32
	var l []float32
	for p, tok := range prompt {
		l = stepped.Step(tok, p)
	}
	want = append(want, append([]float32(nil), l...))
	for j, tok := range next {
		want = append(want, append([]float32(nil), stepped.Step(tok, len(prompt)+j)...))
	}
	pre := llama.NewDecoder(m, 64)
	got := [][]float32{append([]float32(nil), pre.Prefill(prompt)...)}
	for j, tok := range next {
		got = append(got, append([]float32(nil), pre.Step(tok, len(prompt)+j)...))
	}
	for i := range want {
		for v := range want[i] {
			if d := math.Abs(float64(got[i][v] - want[i][v])); d > 1e-4 {
				t.Fatalf("logits %d, token %d: prefill path %v, step path %v", i, v, got[i][v], want[i][v])
			}
		}
	}
}
