package llama

import (
	"fmt"
	"runtime"
	"sync"
	"testing"

	"lrmc/internal/cputime"
)

// smolLayer is one block shaped like SmolLM-135M (d 576, 9 query and 3 kv
// heads of 64, MLP 1536), with a small vocabulary to keep the focus on the
// block.
var smolLayer = Config{Dim: 576, HiddenDim: 1536, Layers: 1, Heads: 9, KVHeads: 3, Vocab: 512, SeqLen: 2048,
	NormEps: 1e-5, RopeTheta: 10000, SharedClassifier: true}

// blockFlops is the multiply-add count ×2 of one block over t tokens of one
// sequence: the projections plus the causal attention.
func blockFlops(c Config, t int) float64 {
	d, kv, h := float64(c.Dim), float64(c.KVDim()), float64(c.HiddenDim)
	proj := 2 * float64(t) * (2*d*d + 2*kv*d + 3*h*d)
	att := 2 * 2 * d * float64(t) * float64(t+1) / 2
	return proj + att
}

func BenchmarkBlock(b *testing.B) {
	m := randModel(smolLayer, 1)
	for _, t := range []int{128, 512} {
		h := m.Embed(randTokens(t, smolLayer.Vocab, 2), nil)
		b.Run(fmt.Sprintf("t=%d", t), func(b *testing.B) {
			for b.Loop() {
				m.Block(0, h, 1, t)
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(float64(t)/sec, "tok/s")
			b.ReportMetric(blockFlops(smolLayer, t)/sec/1e9, "GFLOP/s")
		})
	}
}

func BenchmarkDecodeStep(b *testing.B) {
	m := randModel(smolLayer, 1)
	d := NewDecoder(m, 256)
	for p := range 128 {
		d.Step(int32(p%smolLayer.Vocab), p)
	}
	for b.Loop() {
		d.Step(3, 128)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "layer-steps/s")
}

// smolModel is SmolLM-135M's shape: 30 layers, d 576, 9 query and 3 kv heads
// of 64, MLP 1536, a tied 49152-token vocabulary.
var smolModel = Config{Dim: 576, HiddenDim: 1536, Layers: 30, Heads: 9, KVHeads: 3, Vocab: 49152, SeqLen: 2048,
	NormEps: 1e-5, RopeTheta: 10000, SharedClassifier: true}

// smolModels are the float32 model of smolModel's shape and its bfloat16
// and float16 conversions, made once (about 0.5 GB of float32 weights).
var smolModels = sync.OnceValue(func() map[DType]*Model {
	m := randModel(smolModel, 1)
	ms := map[DType]*Model{Float32: m}
	for _, dt := range []DType{BFloat16, Float16} {
		h, err := m.WithDType(dt)
		if err != nil {
			panic(err)
		}
		ms[dt] = h
	}
	return ms
})

// BenchmarkModelDecode is whole-model decode (one token after 128 of
// context, the classifier included) of a SmolLM-135M-shaped model with
// float32, bfloat16 and float16 weights, on 1 and 2 threads:
//
//	go test -run=NONE -bench=BenchmarkModelDecode -benchtime=40x ./kernels/llama
//	go test -run=NONE -bench=BenchmarkModelPrefill -benchtime=3x ./kernels/llama
func BenchmarkModelDecode(b *testing.B) {
	for _, dt := range []DType{Float32, BFloat16, Float16} {
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads=%d", dt, threads), func(b *testing.B) {
				m := smolModels()[dt]
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads))
				d := NewDecoder(m, 256)
				for p := range 128 {
					d.Step(int32(p%smolModel.Vocab), p)
				}
				for b.Loop() {
					d.Step(3, 128)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
				b.ReportMetric(float64(m.WeightBytes())*float64(b.N)/b.Elapsed().Seconds()/1e9, "weightGB/s")
			})
		}
	}
}

// BenchmarkModelPrefill is Forward over one sequence of 256 tokens, as
// above.
func BenchmarkModelPrefill(b *testing.B) {
	const T = 256
	tokens := randTokens(T, smolModel.Vocab, 2)
	for _, dt := range []DType{Float32, BFloat16, Float16} {
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads=%d", dt, threads), func(b *testing.B) {
				m := smolModels()[dt]
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads))
				for b.Loop() {
					m.Forward(tokens, 1, T)
				}
				b.ReportMetric(float64(T*b.N)/b.Elapsed().Seconds(), "tok/s")
			})
		}
	}
}

// qwen3Layer is one block shaped like Qwen3-0.6B (d 1024, 16 query and 8
// kv heads of 128, MLP 3072, per-head q/k norm).
var qwen3Layer = Config{Dim: 1024, HiddenDim: 3072, Layers: 1, Heads: 16, KVHeads: 8, HeadSize: 128, Vocab: 512,
	SeqLen: 2048, NormEps: 1e-6, RopeTheta: 1000000, QKNorm: true, RopeStyle: RopeHalf, SharedClassifier: true}

// BenchmarkPrefillBlock is one block over 512 tokens of the SmolLM-135M
// and Qwen3-0.6B shapes, f32 and bf16 compute, at 1 and 2 threads: the
// unit of lrmc bench model's prefill without the embedding, for profiles:
//
//	go test -run=NONE -bench=PrefillBlock -benchtime=20x -cpuprofile cpu.out ./kernels/llama
func BenchmarkPrefillBlock(b *testing.B) {
	const T = 512
	for _, s := range []struct {
		name string
		c    Config
	}{{"smollm", smolLayer}, {"qwen3", qwen3Layer}} {
		m32 := randModel(s.c, 1)
		h := m32.Embed(randTokens(T, s.c.Vocab, 2), nil)
		mb, err := m32.WithDType(BFloat16)
		if err != nil {
			b.Fatal(err)
		}
		if mb, err = mb.WithCompute(ComputeBF16); err != nil {
			b.Fatal(err)
		}
		for _, mc := range []struct {
			name string
			m    *Model
		}{{"f32", m32}, {"bf16c", mb}} {
			for _, threads := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/%s/threads=%d", s.name, mc.name, threads), func(b *testing.B) {
					defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads))
					mc.m.Block(0, h, 1, T) // buffers and workers warm
					cpu0 := cputime.Process()
					for b.Loop() {
						mc.m.Block(0, h, 1, T)
					}
					sec := b.Elapsed().Seconds() / float64(b.N)
					if cpu := cputime.Process() - cpu0; cpu > 0 {
						// On a shared host wall time drifts with others' load;
						// CPU time per block much less.
						b.ReportMetric(cpu.Seconds()/float64(b.N)*1e3, "cpu-ms/op")
					}
					b.ReportMetric(T/sec, "tok/s")
					b.ReportMetric(blockFlops(s.c, T)/sec/1e9, "GFLOP/s")
				})
			}
		}
	}
}
