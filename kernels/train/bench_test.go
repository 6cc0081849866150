package train

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"lrmc/internal/cputime"
	"lrmc/kernels/bench"
	"lrmc/kernels/gemm"
	"lrmc/kernels/llama"
	"lrmc/kernels/synth"
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
// workload whose profile the speed work started from; with the attention
// probabilities recomputed before each block's backward (the default) and
// kept from the forward pass (WithAttentionCache, 84 MB here).
func BenchmarkStoriesLoRAStep(b *testing.B) {
	b.Run("recompute", func(b *testing.B) { storiesLoRAStep(b) })
	b.Run("cache", func(b *testing.B) { storiesLoRAStep(b, WithAttentionCache()) })
}

func storiesLoRAStep(b *testing.B, opts ...Option) {
	const batch, seq = 8, 256
	m, bt := storiesBatch(b, batch, seq)
	opts = append(opts, WithGEMM(), WithLoRA(LoRAConfig{Rank: 8, Alpha: 16, Dropout: 0.05,
		Targets: []string{QProj, KProj, VProj, OProj, GateProj, UpProj, DownProj}, Seed: 1}))
	n, err := New(m, batch, seq, opts...)
	if err != nil {
		b.Fatal(err)
	}
	tr, err := NewTrainer(n, TrainerConfig{Schedule: optim.Cosine{PeakLR: 1e-3, Total: 1 << 30}, MaxGradNorm: 1})
	if err != nil {
		b.Fatal(err)
	}
	cpu := cputime.Process()
	for b.Loop() {
		if _, err := tr.Step([]Batch{bt}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((cputime.Process()-cpu).Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(b.N*batch*seq)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkQwen3LoRA measures LoRA training throughput on a Qwen3-0.6B-shaped
// model with random weights (28 layers, d 1024, 16/8 heads of 128, FFN 3072,
// vocabulary 151936, tied; about 2.4 GB of float32 weights, built once by
// kernels/synth), one sequence of 512 tokens, WithGEMM: a training step
// (forward, recompute, backward, AdamW through Trainer.Step) with r=16,
// α=32, dropout 0.1 on q and v (the seed study's setting) and on all seven
// projections, against the inference forward (llama.Model.Forward) on the
// same tokens. train/forward is the step's tokens/s over the forward's. It
// is heavy (seconds per step, gigabytes), so it runs only when -bench
// selects it:
//
//	go test -run NONE -bench Qwen3LoRA -benchtime 3x ./kernels/train
//
// Each setting runs twice, interleaved, with and without
// WithActivationCache, after one untimed step; the gemm sub-benchmark
// first measures the machine's GEMM rate, which each step's GFLOP/s is
// divided by (vs-gemm: wall time; vs-gemm-cpu: per CPU-second, steadier on
// a shared host).
func BenchmarkQwen3LoRA(b *testing.B) {
	const batch, seq = 1, 512
	m, _, err := synth.New(synth.Spec{Arch: "qwen3", Layers: 28, Dim: 1024, Heads: 16, KVHeads: 8, HeadDim: 128,
		FFN: 3072, Vocab: 151936, SeqLen: 4096, Tie: true, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	tokens := randTokens(batch*seq, m.Config.Vocab, 2)
	bt := Batch{Tokens: tokens, Targets: NextTokenTargets(tokens, nil, batch, seq)}
	report := func(b *testing.B, cpu time.Duration) float64 {
		tps := float64(b.N*batch*seq) / b.Elapsed().Seconds()
		b.ReportMetric(tps, "tokens/s")
		b.ReportMetric((cputime.Process()-cpu).Seconds()/float64(b.N), "cpu-s/op")
		return tps
	}
	// The machine's GEMM rate, measured in the same run (a product of the
	// block's shape at 512 rows, GOMAXPROCS threads): the steps' GFLOP/s
	// are reported against it as vs-gemm, per wall and per CPU-second.
	var gemmWall, gemmCPU float64
	b.Run("gemm", func(b *testing.B) {
		rs, err := bench.MeasureGEMM([]bench.GEMMShape{{M: 512, K: 1024, N: 3072}}, []int{runtime.GOMAXPROCS(0)},
			bench.GEMMOptions{Impls: []string{gemm.Impl()}})
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
		}
		gemmWall, gemmCPU = rs[0].GFLOPS, rs[0].CPUGFLOPS
		b.ReportMetric(gemmWall, "GFLOP/s")
		b.ReportMetric(gemmCPU, "GFLOP/cpu-s")
	})
	var forward float64
	b.Run("forward", func(b *testing.B) {
		cpu := cputime.Process()
		for b.Loop() {
			m.Forward(tokens, batch, seq)
		}
		forward = report(b, cpu)
	})
	// The step's useful products: the forward and dX = dY·W of every
	// frozen weight (the seven projections and the classifier), 4 flops
	// per weight per token; dW of frozen weights is never computed, and
	// the recompute, attention and the rank-16 adapters are left out, so
	// this understates the work done.
	c := m.Config
	d, qd, kvd := c.Dim, c.Heads*c.HeadDim(), c.KVHeads*c.HeadDim()
	weights := float64(c.Layers)*float64(2*d*qd+2*d*kvd+3*d*c.HiddenDim) + float64(c.Vocab*d)
	flops := 4 * weights * batch * seq
	// Each setting twice, interleaved, with and without the activation
	// cache (bit-identical results), so that the shared machine's drift
	// shows.
	type variant struct {
		name    string
		targets []string
		opts    []Option
	}
	var vs []variant
	for range 2 {
		for _, t := range []variant{{"lora-qv-r16", []string{QProj, VProj}, nil}, {"lora-all-r16", projNames[:], nil}} {
			vs = append(vs, t, variant{t.name + "-acts", t.targets, []Option{WithActivationCache()}})
		}
	}
	for _, v := range vs {
		b.Run(v.name, func(b *testing.B) {
			opts := append([]Option{WithGEMM(), WithLoRA(LoRAConfig{Rank: 16, Alpha: 32, Dropout: 0.1, Targets: v.targets, Seed: 1})}, v.opts...)
			n, err := New(m, batch, seq, opts...)
			if err != nil {
				b.Fatal(err)
			}
			tr, err := NewTrainer(n, TrainerConfig{Schedule: optim.Cosine{PeakLR: 4e-4, Total: 1 << 30, WarmupRatio: 0.1}, MaxGradNorm: 1})
			if err != nil {
				b.Fatal(err)
			}
			// One untimed step: the optimizer's state is made once per
			// run, not per step.
			if _, err := tr.Step([]Batch{bt}); err != nil {
				b.Fatal(err)
			}
			cpu := cputime.Process()
			for b.Loop() {
				if _, err := tr.Step([]Batch{bt}); err != nil {
					b.Fatal(err)
				}
			}
			wall := flops * float64(b.N) / b.Elapsed().Seconds() / 1e9
			perCPU := flops * float64(b.N) / (cputime.Process() - cpu).Seconds() / 1e9
			b.ReportMetric(wall, "GFLOP/s")
			if gemmWall > 0 {
				b.ReportMetric(wall/gemmWall, "vs-gemm")
				b.ReportMetric(perCPU/gemmCPU, "vs-gemm-cpu")
			}
			if tps := report(b, cpu); forward > 0 {
				b.ReportMetric(tps/forward, "train/forward")
			}
		})
	}
}
