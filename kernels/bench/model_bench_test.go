package bench

import (
	"fmt"
	"testing"
)

// BenchmarkPrefill and BenchmarkDecode are the model measurements as Go
// benchmarks, for benchstat comparisons across commits:
//
//	go test -run=NONE -bench='Prefill|Decode' -count=5 ./kernels/bench
//
// They use the stories260K and SmolLM-135M shapes (the Qwen3 one takes
// 2.4 GB and seconds per iteration: use `lrmc bench model` for it).
func BenchmarkPrefill(b *testing.B) {
	for _, name := range []string{"stories260k", "smollm-135m"} {
		s, err := ModelShapeNamed(name)
		if err != nil {
			b.Fatal(err)
		}
		m, err := s.Build()
		if err != nil {
			b.Fatal(err)
		}
		for _, t := range []int{64, 512} {
			tokens := randomTokens(t, m.Config.Vocab, 1)
			b.Run(fmt.Sprintf("%s/t=%d", name, t), func(b *testing.B) {
				for b.Loop() {
					prefill(m, tokens)
				}
				sec := b.Elapsed().Seconds() / float64(b.N)
				b.ReportMetric(float64(t)/sec, "tokens/s")
				b.ReportMetric(prefillFLOPs(m.Config, t)/sec/1e9, "GFLOP/s")
			})
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, name := range []string{"stories260k", "smollm-135m"} {
		s, err := ModelShapeNamed(name)
		if err != nil {
			b.Fatal(err)
		}
		m, err := s.Build()
		if err != nil {
			b.Fatal(err)
		}
		const steps = 32
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				decode(m, 1, steps)
			}
			b.ReportMetric(steps*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// BenchmarkCaptureBlock is one Qwen3-0.6B-shaped block over a calibration
// batch of 4 sequences of 512 tokens: a sixteenth of the 64 × 512 batch
// `lrmc bench capture` times.
func BenchmarkCaptureBlock(b *testing.B) {
	s, err := ModelShapeNamed("qwen3-0.6b")
	if err != nil {
		b.Fatal(err)
	}
	spec := s.Spec
	spec.Layers, spec.Vocab = 1, 512 // one block; the embedding size does not matter here
	m, err := ModelShape{s.Name, spec}.Build()
	if err != nil {
		b.Fatal(err)
	}
	const samples, seqLen = 4, 512
	h := m.Embed(randomTokens(samples*seqLen, spec.Vocab, 1), nil)
	c := m.Config
	flops := 2*float64(layerMatrixParams(c))*samples*seqLen + samples*attentionFLOPs(c, seqLen)
	for b.Loop() {
		m.Block(0, h, samples, seqLen)
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(samples*seqLen/sec, "tokens/s")
	b.ReportMetric(flops/sec/1e9, "GFLOP/s")
}
