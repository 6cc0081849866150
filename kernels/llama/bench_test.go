package llama

import (
	"fmt"
	"testing"
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
