// Package synth makes models with seeded random weights in the exact layout
// of a real architecture, for tests, benchmarks and example recipes that
// need a model of a given shape (a Qwen3-0.6B-shaped one, say) without
// downloading one.
package synth

import (
	"fmt"
	"math"
	"math/rand/v2"

	"lrmc/kernels/hf"
	"lrmc/kernels/llama"
)

// Spec is the shape of a synthetic model.
type Spec struct {
	Arch    string // "llama", "qwen2", "qwen3" or "mistral"
	Layers  int
	Dim     int
	Heads   int
	KVHeads int
	HeadDim int // 0: Dim / Heads
	FFN     int
	Vocab   int
	SeqLen  int
	Tie     bool
	Seed    uint64
	// DType stores the weight matrices 16-bit (llama.BFloat16 or
	// llama.Float16), rounded from the float32 draws; "" is float32.
	DType llama.DType
}

// Archs maps the short architecture names to Hugging Face's.
var Archs = map[string]string{
	"llama": hf.ArchLlama, "mistral": hf.ArchMistral, "qwen2": hf.ArchQwen2, "qwen3": hf.ArchQwen3,
}

// Config is the Hugging Face configuration of a spec; its LlamaConfig is the
// model's shape.
func Config(s Spec) (*hf.Config, error) {
	arch, ok := Archs[s.Arch]
	if !ok {
		return nil, fmt.Errorf("synth: architecture %q is not one of llama, mistral, qwen2, qwen3", s.Arch)
	}
	c := llama.Config{
		Dim: s.Dim, HiddenDim: s.FFN, Layers: s.Layers, Heads: s.Heads, KVHeads: s.KVHeads,
		Vocab: s.Vocab, SeqLen: s.SeqLen, NormEps: 1e-6, RopeTheta: 1e6, SharedClassifier: s.Tie,
		HeadSize: s.HeadDim, QKVBias: s.Arch == "qwen2", QKNorm: s.Arch == "qwen3", RopeStyle: llama.RopeHalf,
	}
	if s.Arch == "llama" || s.Arch == "mistral" {
		c.RopeTheta = 500000
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	return hf.NewConfig(arch, c)
}

// New makes the model of a spec. Linear weights and embeddings are drawn
// from N(0, 0.02²) — the initializer transformers uses for these
// architectures —, biases from N(0, 0.02²) too (so they are exercised),
// and norm weights are 1. The stream of numbers is a PCG seeded by
// Spec.Seed feeding a Box–Muller transform written here, so the weights
// are the same on every machine and Go release.
func New(s Spec) (*llama.Model, *hf.Config, error) {
	cfg, err := Config(s)
	if err != nil {
		return nil, nil, err
	}
	c, err := cfg.LlamaConfig()
	if err != nil {
		return nil, nil, err
	}
	g := gaussian{src: rand.NewPCG(s.Seed, 0x73796e7468)}
	normal := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(0.02 * g.next())
		}
		return v
	}
	ones := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = 1
		}
		return v
	}
	hd, q, kv := c.HeadDim(), c.QDim(), c.KVDim()
	m := &llama.Model{Config: c, Embedding: normal(c.Vocab * c.Dim), FinalNorm: ones(c.Dim)}
	m.Layers = make([]llama.Layer, c.Layers)
	for i := range m.Layers {
		l := &m.Layers[i]
		l.AttnNorm, l.FFNNorm = ones(c.Dim), ones(c.Dim)
		l.Wq, l.Wk, l.Wv, l.Wo = normal(q*c.Dim), normal(kv*c.Dim), normal(kv*c.Dim), normal(c.Dim*q)
		l.W1, l.W3, l.W2 = normal(c.HiddenDim*c.Dim), normal(c.HiddenDim*c.Dim), normal(c.Dim*c.HiddenDim)
		if c.QKVBias {
			l.Bq, l.Bk, l.Bv = normal(q), normal(kv), normal(kv)
		}
		if c.QKNorm {
			l.QNorm, l.KNorm = ones(hd), ones(hd)
		}
	}
	if c.SharedClassifier {
		m.Classifier = m.Embedding
	} else {
		m.Classifier = normal(c.Vocab * c.Dim)
	}
	if err := m.Validate(); err != nil {
		return nil, nil, fmt.Errorf("synth: %w", err)
	}
	if s.DType != "" {
		if m, err = m.WithDType(s.DType); err != nil {
			return nil, nil, fmt.Errorf("synth: %w", err)
		}
	}
	return m, cfg, nil
}

// gaussian is the polar Box–Muller transform over a PCG stream. Uniforms
// are made here from the raw 64-bit outputs rather than by rand.Rand, whose
// derivations are not promised to stay the same across releases.
type gaussian struct {
	src   *rand.PCG
	spare float64
	have  bool
}

func (g *gaussian) uniform() float64 { return float64(g.src.Uint64()>>11) / (1 << 53) }

func (g *gaussian) next() float64 {
	if g.have {
		g.have = false
		return g.spare
	}
	for {
		u := 2*g.uniform() - 1
		v := 2*g.uniform() - 1
		s := u*u + v*v
		if s > 0 && s < 1 {
			f := math.Sqrt(-2 * math.Log(s) / s)
			g.spare, g.have = v*f, true
			return u * f
		}
	}
}
