package synth

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	"lrmc/kernels/hf"
	"lrmc/kernels/llama"
)

func TestSynthRoundTripsThroughHF(t *testing.T) {
	for _, arch := range []string{"llama", "mistral", "qwen2", "qwen3"} {
		s := Spec{Arch: arch, Layers: 2, Dim: 32, Heads: 4, KVHeads: 2, FFN: 48, Vocab: 64, SeqLen: 64, Seed: 7}
		if arch == "qwen3" {
			s.HeadDim = 16 // wider heads than Dim/Heads, as Qwen3 has
		}
		m, cfg, err := New(s)
		if err != nil {
			t.Fatalf("%s: %v", arch, err)
		}
		if cfg.Architecture != Archs[arch] || m.Config.HeadDim() != max(s.HeadDim, 8) {
			t.Errorf("%s: config %s, head dim %d", arch, cfg.Architecture, m.Config.HeadDim())
		}
		// The weights are N(0, 0.02²): check the spread of the embedding.
		var sum, sq float64
		for _, v := range m.Embedding {
			sum += float64(v)
			sq += float64(v) * float64(v)
		}
		n := float64(len(m.Embedding))
		if sd := math.Sqrt(sq/n - (sum/n)*(sum/n)); sd < 0.017 || sd > 0.023 {
			t.Errorf("%s: embedding standard deviation %g, want about 0.02", arch, sd)
		}
		// Same seed, same model; the HF round trip keeps the logits.
		again, _, _ := New(s)
		if again.Embedding[5] != m.Embedding[5] || again.Layers[1].W2[7] != m.Layers[1].W2[7] {
			t.Errorf("%s: the same seed gave different weights", arch)
		}
		dir := filepath.Join(t.TempDir(), arch)
		if err := hf.Save(dir, m, cfg, "float32", 0); err != nil {
			t.Fatalf("%s: save: %v", arch, err)
		}
		back, _, err := hf.Load(dir)
		if err != nil {
			t.Fatalf("%s: load: %v", arch, err)
		}
		toks := []int32{1, 5, 9, 33, 2, 60}
		a, b := m.Forward(toks, 1, len(toks)), back.Forward(toks, 1, len(toks))
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("%s: logit %d differs after the HF round trip: %g vs %g", arch, i, a[i], b[i])
			}
		}
	}
	s := Spec{Arch: "gpt2", Layers: 1, Dim: 8, Heads: 1, KVHeads: 1, FFN: 8, Vocab: 8, SeqLen: 8}
	if _, _, err := New(s); err == nil {
		t.Error("an unknown architecture was accepted")
	}
}

// TestSynthDType: a 16-bit spec is the float32 model rounded, and saves as
// a bfloat16 checkpoint that loads back bit for bit.
func TestSynthDType(t *testing.T) {
	s := Spec{Arch: "qwen3", Layers: 2, Dim: 32, Heads: 4, KVHeads: 2, HeadDim: 16, FFN: 48, Vocab: 64, SeqLen: 64, Seed: 7}
	f32, _, err := New(s)
	if err != nil {
		t.Fatal(err)
	}
	s.DType = llama.BFloat16
	bf, cfg, err := New(s)
	if err != nil {
		t.Fatal(err)
	}
	want, err := f32.WithDType(llama.BFloat16)
	if err != nil {
		t.Fatal(err)
	}
	if bf.DType() != llama.BFloat16 || !slices.Equal(bf.Layers[1].Half.W2, want.Layers[1].Half.W2) || !slices.Equal(bf.Half.Embedding, want.Half.Embedding) {
		t.Fatal("the bf16 spec is not the float32 model rounded")
	}
	dir := filepath.Join(t.TempDir(), "bf16")
	if err := hf.Save(dir, bf, cfg, "bfloat16", 0); err != nil {
		t.Fatal(err)
	}
	back, _, err := hf.LoadDType(dir, "auto")
	if err != nil {
		t.Fatal(err)
	}
	toks := []int32{1, 5, 9, 33, 2, 60}
	a, b := bf.Forward(toks, 1, len(toks)), back.Forward(toks, 1, len(toks))
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			t.Fatalf("logit %d differs after the bf16 round trip: %g vs %g", i, a[i], b[i])
		}
	}
	s.DType = "int8"
	if _, _, err := New(s); err == nil || err.Error() != `synth: llama: dtype "int8" is not one of float32, bfloat16, float16` {
		t.Fatalf("int8: error %v", err)
	}
}
