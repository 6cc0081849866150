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
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"

	"lrmc/kernels/gguf"
	"lrmc/kernels/llama"
)

// Architectures lists the supported general.architecture values. deci
// (DeciLM) is llama with per-block head counts and MLP widths, which
// llama.cpp sizes every block's tensors by: Save writes a llama model whose
// blocks differ under it.
var Architectures = []string{"llama", "qwen2", "qwen3", "deci"}

// ropeStyles is the rotary layout each architecture's weights are stored in.
var ropeStyles = map[string]llama.RopeStyle{
	"llama": llama.RopeInterleaved,
	"deci":  llama.RopeInterleaved,
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
	half  *[]uint16 // instead of data when the model stores the tensor 16-bit
}

// ggufNames are llama.cpp's names of a model's parts; a block's are under
// "blk.N.".
var ggufNames = map[llama.Part]string{
	llama.PartEmbedding:  "token_embd.weight",
	llama.PartAttnNorm:   "attn_norm.weight",
	llama.PartWq:         "attn_q.weight",
	llama.PartWk:         "attn_k.weight",
	llama.PartWv:         "attn_v.weight",
	llama.PartWo:         "attn_output.weight",
	llama.PartBq:         "attn_q.bias",
	llama.PartBk:         "attn_k.bias",
	llama.PartBv:         "attn_v.bias",
	llama.PartQNorm:      "attn_q_norm.weight",
	llama.PartKNorm:      "attn_k_norm.weight",
	llama.PartFFNNorm:    "ffn_norm.weight",
	llama.PartW1:         "ffn_gate.weight",
	llama.PartW3:         "ffn_up.weight",
	llama.PartW2:         "ffn_down.weight",
	llama.PartFinalNorm:  "output_norm.weight",
	llama.PartClassifier: "output.weight",
	llama.PartBo:         "attn_output.bias",
	llama.PartB2:         "ffn_down.bias",
}

// weights lists m's tensors under llama.cpp's names, in the order its
// converter writes them (llama.Model.WeightRefs).
func weights(m *llama.Model) []weight {
	refs := m.WeightRefs()
	ws := make([]weight, len(refs))
	for i, r := range refs {
		name := ggufNames[r.Part]
		if r.Layer >= 0 {
			name = fmt.Sprintf("blk.%d.%s", r.Layer, name)
		}
		ws[i] = weight{name: name, shape: r.Shape, data: r.Data, half: r.Half}
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
	return LoadDType(path, "")
}

// LoadDType is Load with the model's weight matrices (projections,
// embedding, classifier) stored as dtype (see llama.DType): "" or "float32"
// as Load; "bfloat16" or "float16" keeps them 16-bit, copying tensors
// stored in that type bit for bit, without a float32 copy, and converting
// others one tensor at a time (rounded to nearest even); "auto" is the type
// token_embd.weight is stored in when that is F16 or BF16, else float32.
// Norms and biases are always float32.
func LoadDType(path, dtype string) (*llama.Model, *Meta, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	c, meta, err := modelConfig(f)
	if err != nil {
		return nil, nil, err
	}
	if dtype == "auto" {
		dtype = ""
		if t, ok := f.Tensor("token_embd.weight"); ok {
			for dt, typ := range halfTypes {
				if t.Type == typ {
					dtype = string(dt)
				}
			}
		}
	}
	dt, err := llama.ParseDType(dtype)
	if err != nil {
		return nil, nil, fmt.Errorf("ggufmodel: load %s: %w", path, err)
	}
	m := &llama.Model{Config: c, Layers: make([]llama.Layer, c.Layers)}
	if dt != llama.Float32 {
		m.Half = &llama.HalfWeights{DType: dt}
	}
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
	// Every tensor's presence and shape is checked against the metadata
	// before any is converted, so nothing is allocated for a file whose
	// tensors do not hold what its header describes.
	for _, w := range ws {
		t, ok := f.Tensor(w.name)
		if !ok {
			return nil, nil, fmt.Errorf("ggufmodel: %s: tensor %q is missing (%s with %d blocks)", path, w.name, meta.Architecture, c.Layers)
		}
		if shape := t.Shape(); !slices.Equal(shape, w.shape) {
			return nil, nil, fmt.Errorf("ggufmodel: %s: tensor %q has shape %v, the metadata implies %v", path, w.name, shape, w.shape)
		}
	}
	for _, w := range ws {
		t, _ := f.Tensor(w.name)
		if w.half != nil {
			*w.half, err = halfValues(t, dt)
		} else {
			*w.data, err = t.Float32()
		}
		if err != nil {
			return nil, nil, fmt.Errorf("ggufmodel: %s: %w", path, err)
		}
	}
	if c.SharedClassifier {
		m.Classifier = m.Embedding
		if m.Half != nil {
			m.Half.Classifier = m.Half.Embedding
		}
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
	// Output biases are all or nothing: Load reports any block missing
	// one once the first block has it.
	_, c.OutBias = f.Tensor("blk.0.attn_output.bias")
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
	if len(errs) > 0 {
		return c, nil, errs[0]
	}
	if err := llama.CheckLimit(arch+".block_count", c.Layers, llama.MaxLayers); err != nil {
		return c, nil, fmt.Errorf("ggufmodel: %s: %w", f.Path(), err)
	}
	// Head counts and MLP widths are a number, or (llama.cpp's
	// get_key_or_arr, as DeciLM and OpenELM files hold them) one per block.
	hidden, err := perLayer(f, arch+".feed_forward_length", c.Layers, nil)
	if err != nil {
		return c, nil, err
	}
	heads, err := perLayer(f, arch+".attention.head_count", c.Layers, nil)
	if err != nil {
		return c, nil, err
	}
	kvHeads, err := perLayer(f, arch+".attention.head_count_kv", c.Layers, heads)
	if err != nil {
		return c, nil, err
	}
	c.HiddenDim, c.Heads, c.KVHeads = slices.Max(hidden), slices.Max(heads), slices.Max(kvHeads)
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
	for i, h := range heads[:c.Layers] {
		if h <= 0 || kvHeads[i] <= 0 {
			return c, nil, fmt.Errorf("ggufmodel: %s: block %d has %d heads and %d kv heads; blocks without attention are not supported", f.Path(), i, h, kvHeads[i])
		}
	}
	// Reject sizes no real model has under the file's own key names, before
	// the planner plans per block or a loader allocates from them.
	for _, k := range []struct {
		key      string
		v, limit int
	}{
		{"embedding_length", c.Dim, llama.MaxDim},
		{"feed_forward_length", c.HiddenDim, llama.MaxHiddenDim},
		{"block_count", c.Layers, llama.MaxLayers},
		{"attention.head_count", c.Heads, llama.MaxHeads},
		{"attention.head_count_kv", c.KVHeads, llama.MaxHeads},
		{"context_length", c.SeqLen, llama.MaxSeqLen},
	} {
		if err := llama.CheckLimit(arch+"."+k.key, k.v, k.limit); err != nil {
			return c, nil, fmt.Errorf("ggufmodel: %s: %w", f.Path(), err)
		}
	}
	// llama.cpp's default head size is embedding_length over the first
	// block's head count.
	hd := c.Dim / heads[0]
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
	ws := make([]llama.LayerWidth, c.Layers)
	for i := range ws {
		ws[i] = llama.LayerWidth{Heads: heads[i], KVHeads: kvHeads[i], HiddenDim: hidden[i]}
	}
	if c.Widths = nil; c.Layers > 0 {
		c = c.SetWidths(ws)
	}
	if err := llama.CheckLimit(arch+".attention.key_length", c.HeadSize, llama.MaxHeadDim); err != nil {
		return c, nil, fmt.Errorf("ggufmodel: %s: %w", f.Path(), err)
	}
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

// perLayer reads key, a number or an array of one integer per block, as
// one value per block; an absent key is def (an error when def is nil).
func perLayer(f *gguf.File, key string, layers int, def []int) ([]int, error) {
	v, ok := f.Value(key)
	if !ok {
		if def == nil {
			return nil, fmt.Errorf("ggufmodel: %s: key %q is missing", f.Path(), key)
		}
		return def, nil
	}
	if n, ok := gguf.Int64(v); ok {
		if n < 0 || n > math.MaxInt32 {
			return nil, fmt.Errorf("ggufmodel: %s: %s is %d", f.Path(), key, n)
		}
		// At least one entry, so that a model without blocks keeps its
		// declared heads.
		out := make([]int, max(layers, 1))
		for i := range out {
			out[i] = int(n)
		}
		return out, nil
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice {
		return nil, fmt.Errorf("ggufmodel: %s: %s is a %T, want an integer or an array of them", f.Path(), key, v)
	}
	if rv.Len() != layers || layers == 0 {
		return nil, fmt.Errorf("ggufmodel: %s: %s has %d entries for %d blocks", f.Path(), key, rv.Len(), layers)
	}
	out := make([]int, layers)
	for i := range out {
		n, ok := gguf.Int64(rv.Index(i).Interface())
		if !ok || n < 0 || n > math.MaxInt32 {
			return nil, fmt.Errorf("ggufmodel: %s: %s[%d] is %v, want a non-negative integer", f.Path(), key, i, rv.Index(i).Interface())
		}
		out[i] = int(n)
	}
	return out, nil
}

// halfTypes maps the 16-bit model dtypes to their GGML tensor types.
var halfTypes = map[llama.DType]gguf.GGMLType{llama.BFloat16: gguf.TypeBF16, llama.Float16: gguf.TypeF16}

// halfValues returns t's values as dt: the raw 16-bit patterns when t is
// stored as dt, else converted through float32.
func halfValues(t gguf.Tensor, dt llama.DType) ([]uint16, error) {
	if t.Type != halfTypes[dt] {
		f, err := t.Float32()
		if err != nil {
			return nil, err
		}
		return llama.Narrow(dt, f), nil
	}
	n := t.NumElements()
	if uint64(len(t.Data)) != 2*n {
		return nil, fmt.Errorf("gguf: tensor %q: %d bytes, want %d for %s %v", t.Name, len(t.Data), 2*n, t.Type, t.Dims)
	}
	out := make([]uint16, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint16(t.Data[2*i:])
	}
	return out, nil
}
