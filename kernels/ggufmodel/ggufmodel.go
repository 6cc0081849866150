// Package ggufmodel reads and writes llama.cpp GGUF model files as
// llama.Models, for the architectures llama.Model computes: general.architecture
// llama, qwen2 and qwen3. The container itself is package gguf's; this
// package knows the architectures' metadata keys and tensor names.
//
// The two families differ in rotary layout, not only in names: llama.cpp's
// converter permutes the q/k rows of Hugging Face Llama checkpoints so that
// GGUF llama rotates adjacent pairs (llama.RopeInterleaved), while qwen2 and
// qwen3 are stored unpermuted and rotated in ggml's NEOX mode
// (llama.RopeHalf).
package ggufmodel

import (
	"fmt"
	"slices"
	"strings"

	"lrmc/kernels/gguf"
	"lrmc/kernels/llama"
)

// Architectures lists the supported general.architecture values.
var Architectures = []string{"llama", "qwen2", "qwen3"}

// ropeStyles is the rotary layout each architecture's weights are stored in.
var ropeStyles = map[string]llama.RopeStyle{
	"llama": llama.RopeInterleaved,
	"qwen2": llama.RopeHalf,
	"qwen3": llama.RopeHalf,
}

// Meta is what a GGUF model file holds besides the weights and the shape
// (which the llama.Config carries).
type Meta struct {
	Architecture string // general.architecture
	Name         string // general.name, "" when absent
	// Tokenizer is every tokenizer.* entry (vocabulary, scores, token
	// types, merges, special ids, chat template) in file order, kept so that
	// Save writes a file llama.cpp can tokenize with.
	Tokenizer []gguf.KV
}

// weight is one tensor of a GGUF model: its name, row-major shape (the
// reverse of GGUF's ne order) and the llama.Model field that holds it.
type weight struct {
	name  string
	shape []int
	data  *[]float32
}

// weights lists m's tensors under llama.cpp's names, in the order its
// converter writes them. m.Layers must have Config.Layers entries. The
// classifier is listed only when it is not shared.
func weights(m *llama.Model) []weight {
	c := m.Config
	d, q, kv, h, hd := c.Dim, c.QDim(), c.KVDim(), c.HiddenDim, c.HeadDim()
	ws := []weight{{"token_embd.weight", []int{c.Vocab, d}, &m.Embedding}}
	for i := range m.Layers {
		l := &m.Layers[i]
		p := fmt.Sprintf("blk.%d.", i)
		ws = append(ws,
			weight{p + "attn_norm.weight", []int{d}, &l.AttnNorm},
			weight{p + "attn_q.weight", []int{q, d}, &l.Wq},
			weight{p + "attn_k.weight", []int{kv, d}, &l.Wk},
			weight{p + "attn_v.weight", []int{kv, d}, &l.Wv},
			weight{p + "attn_output.weight", []int{d, q}, &l.Wo},
		)
		if c.QKVBias {
			ws = append(ws,
				weight{p + "attn_q.bias", []int{q}, &l.Bq},
				weight{p + "attn_k.bias", []int{kv}, &l.Bk},
				weight{p + "attn_v.bias", []int{kv}, &l.Bv},
			)
		}
		if c.QKNorm {
			ws = append(ws,
				weight{p + "attn_q_norm.weight", []int{hd}, &l.QNorm},
				weight{p + "attn_k_norm.weight", []int{hd}, &l.KNorm},
			)
		}
		ws = append(ws,
			weight{p + "ffn_norm.weight", []int{d}, &l.FFNNorm},
			weight{p + "ffn_gate.weight", []int{h, d}, &l.W1},
			weight{p + "ffn_up.weight", []int{h, d}, &l.W3},
			weight{p + "ffn_down.weight", []int{d, h}, &l.W2},
		)
	}
	ws = append(ws, weight{"output_norm.weight", []int{d}, &m.FinalNorm})
	if !c.SharedClassifier {
		ws = append(ws, weight{"output.weight", []int{c.Vocab, d}, &m.Classifier})
	}
	return ws
}

// Load reads the model in the GGUF file at path. Weights stored as F32,
// F16, BF16 or Q8_0 are converted to float32 one tensor at a time from the
// memory-mapped file, which is unmapped before Load returns. A model without
// output.weight shares its classifier with the embedding. A missing,
// unexpected or wrongly shaped tensor, or a metadata value that does not
// fit, is an error naming the file and the tensor or key.
func Load(path string) (*llama.Model, *Meta, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	c, meta, err := modelConfig(f)
	if err != nil {
		return nil, nil, err
	}
	m := &llama.Model{Config: c, Layers: make([]llama.Layer, c.Layers)}
	ws := weights(m)
	want := make(map[string]bool, len(ws))
	for _, w := range ws {
		want[w.name] = true
	}
	want[ropeFreqsName] = true // read by modelConfig
	for _, t := range f.Tensors {
		if !want[t.Name] {
			return nil, nil, fmt.Errorf("ggufmodel: %s: unexpected tensor %q: not part of a %s model with this metadata", path, t.Name, meta.Architecture)
		}
	}
	for _, w := range ws {
		t, ok := f.Tensor(w.name)
		if !ok {
			return nil, nil, fmt.Errorf("ggufmodel: %s: tensor %q is missing (%s with %d blocks)", path, w.name, meta.Architecture, c.Layers)
		}
		if shape := t.Shape(); !slices.Equal(shape, w.shape) {
			return nil, nil, fmt.Errorf("ggufmodel: %s: tensor %q has shape %v, the metadata implies %v", path, w.name, shape, w.shape)
		}
		if *w.data, err = t.Float32(); err != nil {
			return nil, nil, fmt.Errorf("ggufmodel: %s: %w", path, err)
		}
	}
	if c.SharedClassifier {
		m.Classifier = m.Embedding
	}
	if err := m.Validate(); err != nil {
		return nil, nil, fmt.Errorf("ggufmodel: %s: %w", path, err)
	}
	return m, meta, nil
}

// ReadConfig reads the shape and metadata of the model in the GGUF file at
// path without converting any weight, for sizing a model cheaply.
func ReadConfig(path string) (llama.Config, *Meta, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return llama.Config{}, nil, err
	}
	defer f.Close()
	c, meta, err := modelConfig(f)
	return c, meta, err
}

// modelConfig is the llama.Config the metadata and the tensors present
// describe: the hyperparameters, Llama 3 rope scaling from rope_freqs, and a
// shared classifier when output.weight is absent.
func modelConfig(f *gguf.File) (llama.Config, *Meta, error) {
	path := f.Path()
	c, meta, err := readMeta(f)
	if err != nil {
		return c, nil, err
	}
	if t, ok := f.Tensor(ropeFreqsName); ok {
		if shape := t.Shape(); !slices.Equal(shape, []int{c.HeadDim() / 2}) {
			return c, nil, fmt.Errorf("ggufmodel: %s: tensor %q has shape %v, want [%d]", path, ropeFreqsName, shape, c.HeadDim()/2)
		}
		divisors, err := t.Float32()
		if err != nil {
			return c, nil, fmt.Errorf("ggufmodel: %s: %w", path, err)
		}
		if c.RopeScaling, err = scalingFromDivisors(c, divisors); err != nil {
			return c, nil, fmt.Errorf("ggufmodel: %s: %w", path, err)
		}
	}
	_, hasOutput := f.Tensor("output.weight")
	c.SharedClassifier = !hasOutput
	if err := c.Validate(); err != nil {
		return c, nil, fmt.Errorf("ggufmodel: %s: %w", path, err)
	}
	return c, meta, nil
}

// readMeta reads the architecture's hyperparameters into a llama.Config
// (all but SharedClassifier, which the tensors decide).
func readMeta(f *gguf.File) (llama.Config, *Meta, error) {
	var c llama.Config
	arch, err := f.String("general.architecture")
	if err != nil {
		return c, nil, err
	}
	if !slices.Contains(Architectures, arch) {
		return c, nil, fmt.Errorf("ggufmodel: %s: architecture %q is not supported (supported: %s)", f.Path(), arch, strings.Join(Architectures, ", "))
	}
	meta := &Meta{Architecture: arch}
	if name, ok := f.Value("general.name"); ok {
		meta.Name, _ = name.(string)
	}
	for _, kv := range f.Metadata {
		if strings.HasPrefix(kv.Key, "tokenizer.") {
			meta.Tokenizer = append(meta.Tokenizer, kv)
		}
	}

	var errs []error
	num := func(key string) int {
		v, err := f.Uint32(arch + "." + key)
		if err != nil {
			errs = append(errs, err)
		}
		return int(v)
	}
	// optional returns the value of an optional key, or def when absent.
	optional := func(key string, def int) int {
		if _, ok := f.Value(arch + "." + key); !ok {
			return def
		}
		return num(key)
	}
	c.SeqLen = num("context_length")
	c.Dim = num("embedding_length")
	c.Layers = num("block_count")
	c.HiddenDim = num("feed_forward_length")
	c.Heads = num("attention.head_count")
	c.KVHeads = optional("attention.head_count_kv", c.Heads)
	eps, err := f.Float32(arch + ".attention.layer_norm_rms_epsilon")
	if err != nil {
		errs = append(errs, err)
	}
	c.NormEps = eps
	c.RopeTheta = 10000 // llama.cpp's default when rope.freq_base is absent
	if _, ok := f.Value(arch + ".rope.freq_base"); ok {
		base, err := f.Float32(arch + ".rope.freq_base")
		if err != nil {
			errs = append(errs, err)
		}
		c.RopeTheta = float64(base)
	}
	if len(errs) > 0 {
		return c, nil, errs[0]
	}
	if c.Heads <= 0 {
		return c, nil, fmt.Errorf("ggufmodel: %s: %s.attention.head_count is %d", f.Path(), arch, c.Heads)
	}
	hd := c.Dim / c.Heads
	keyLen, valLen := optional("attention.key_length", hd), optional("attention.value_length", hd)
	ropeDim := optional("rope.dimension_count", keyLen)
	switch {
	case keyLen != valLen:
		return c, nil, fmt.Errorf("ggufmodel: %s: key_length %d differs from value_length %d", f.Path(), keyLen, valLen)
	case ropeDim != keyLen:
		return c, nil, fmt.Errorf("ggufmodel: %s: rope.dimension_count %d is not the head size %d (partial rotary embedding is not supported)", f.Path(), ropeDim, keyLen)
	}
	if len(errs) > 0 {
		return c, nil, errs[0]
	}
	c.HeadSize = keyLen
	c.Vocab = 0
	if t, ok := f.Tensor("token_embd.weight"); ok && len(t.Dims) == 2 {
		c.Vocab = int(t.Dims[1])
	}
	if v := optional("vocab_size", c.Vocab); v != c.Vocab {
		return c, nil, fmt.Errorf("ggufmodel: %s: %s.vocab_size %d, but token_embd.weight has %d rows", f.Path(), arch, v, c.Vocab)
	}
	c.QKVBias = arch == "qwen2"
	c.QKNorm = arch == "qwen3"
	c.RopeStyle = ropeStyles[arch]
	return c, meta, nil
}
