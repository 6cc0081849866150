package train

import (
	"fmt"
	"testing"

	"lrmc/kernels/llama"
	"lrmc/kernels/train/optim"
)

// benchCfg is a small model of realistic proportions (a SmolLM-like block at
// a quarter of the width).
var benchCfg = llama.Config{Dim: 256, HiddenDim: 688, Layers: 4, Heads: 8, KVHeads: 4, Vocab: 4096, SeqLen: 256,
	NormEps: 1e-5, RopeTheta: 10000, RopeStyle: llama.RopeHalf}

// BenchmarkTokensPerSecond compares training (forward, recompute and
// backward) with LoRA r=16 on q, v, gate, and full fine-tuning, against the
// inference forward (llama.Model.Forward) and the training forward alone
// (Net.Loss), in tokens per second, for one sequence of 256 tokens; with the
// exact pure-Go products and WithGEMM.
func BenchmarkTokensPerSecond(b *testing.B) {
	const batch, seq = 1, 256
	m := randModel(benchCfg, 1)
	tokens := randTokens(batch*seq, benchCfg.Vocab, 2)
	bt := Batch{Tokens: tokens, Targets: NextTokenTargets(tokens, nil, batch, seq)}
	lora := WithLoRA(LoRAConfig{Rank: 16, Alpha: 32, Dropout: 0.1, Targets: []string{QProj, VProj, GateProj}})
	report := func(b *testing.B) {
		b.ReportMetric(float64(b.N*batch*seq)/b.Elapsed().Seconds(), "tokens/s")
	}
	b.Run("llama-forward", func(b *testing.B) {
		for b.Loop() {
			m.Forward(tokens, batch, seq)
		}
		report(b)
	})
	for _, c := range []struct {
		name string
		opts []Option
	}{{"lora", []Option{lora}}, {"full", []Option{FullFineTune()}},
		{"gemm-lora", []Option{lora, WithGEMM()}}, {"gemm-full", []Option{FullFineTune(), WithGEMM()}}} {
		n, err := New(m, batch, seq, c.opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("%s-loss", c.name), func(b *testing.B) {
			for b.Loop() {
				n.Loss(bt)
			}
			report(b)
		})
		b.Run(fmt.Sprintf("%s-train", c.name), func(b *testing.B) {
			for b.Loop() {
				n.ForwardBackward(bt, 1)
			}
			report(b)
		})
	}
}

// BenchmarkStoriesLoRAStep is one optimizer step (forward, recompute,
// backward, AdamW) of LoRA r=8 on all seven projections of stories260K, on 8
// sequences of 256 tokens of TinyStories with WithGEMM: the recovery
// workload whose profile the speed work started from.
func BenchmarkStoriesLoRAStep(b *testing.B) {
	const batch, seq = 8, 256
	m, bt := storiesBatch(b, batch, seq)
	n, err := New(m, batch, seq, WithGEMM(), WithLoRA(LoRAConfig{Rank: 8, Alpha: 16, Dropout: 0.05,
		Targets: []string{QProj, KProj, VProj, OProj, GateProj, UpProj, DownProj}, Seed: 1}))
	if err != nil {
		b.Fatal(err)
	}
	tr, err := NewTrainer(n, TrainerConfig{Schedule: optim.Cosine{PeakLR: 1e-3, Total: 1 << 30}, MaxGradNorm: 1})
	if err != nil {
		b.Fatal(err)
	}
	cpu := processCPUTime()
	for b.Loop() {
		if _, err := tr.Step([]Batch{bt}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((processCPUTime()-cpu).Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(b.N*batch*seq)/b.Elapsed().Seconds(), "tokens/s")
}
