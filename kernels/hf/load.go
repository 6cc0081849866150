package hf

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"unsafe"

	"lrmc/kernels/llama"
	"lrmc/kernels/safetensors"
)

// weight is one tensor of a checkpoint: its Hugging Face name and shape, and
// the llama.Model field that holds it: data, or half when the model stores
// the tensor 16-bit.
type weight struct {
	name  string
	shape []int
	data  *[]float32
	half  *[]uint16
}

// len is the number of values the model holds for w.
func (w weight) len() int {
	if w.half != nil {
		return len(*w.half)
	}
	return len(*w.data)
}

// hfNames are the Hugging Face names of a model's parts; a block's are
// under "model.layers.N.".
var hfNames = map[llama.Part]string{
	llama.PartEmbedding:  "model.embed_tokens.weight",
	llama.PartAttnNorm:   "input_layernorm.weight",
	llama.PartWq:         "self_attn.q_proj.weight",
	llama.PartWk:         "self_attn.k_proj.weight",
	llama.PartWv:         "self_attn.v_proj.weight",
	llama.PartWo:         "self_attn.o_proj.weight",
	llama.PartBq:         "self_attn.q_proj.bias",
	llama.PartBk:         "self_attn.k_proj.bias",
	llama.PartBv:         "self_attn.v_proj.bias",
	llama.PartQNorm:      "self_attn.q_norm.weight",
	llama.PartKNorm:      "self_attn.k_norm.weight",
	llama.PartFFNNorm:    "post_attention_layernorm.weight",
	llama.PartW1:         "mlp.gate_proj.weight",
	llama.PartW3:         "mlp.up_proj.weight",
	llama.PartW2:         "mlp.down_proj.weight",
	llama.PartFinalNorm:  "model.norm.weight",
	llama.PartClassifier: "lm_head.weight",
}

// weights lists m's tensors under their Hugging Face names, in the order
// transformers' state_dict has them (llama.Model.WeightRefs).
func weights(m *llama.Model) []weight {
	refs := m.WeightRefs()
	ws := make([]weight, len(refs))
	for i, r := range refs {
		name := hfNames[r.Part]
		if r.Layer >= 0 {
			name = fmt.Sprintf("model.layers.%d.%s", r.Layer, name)
		}
		ws[i] = weight{name: name, shape: r.Shape, data: r.Data, half: r.Half}
	}
	return ws
}

// Load reads the checkpoint in dir: config.json and the weights, from
// model.safetensors or the shards model.safetensors.index.json lists. F32,
// F16 and BF16 weights are widened to float32 one tensor at a time, each
// straight from the memory-mapped file, which is unmapped before Load
// returns. A missing, unexpected, wrongly shaped or non-float tensor is an
// error naming the file and the tensor.
func Load(dir string) (*llama.Model, *Config, error) {
	return LoadDType(dir, "")
}

// LoadDType is Load with the model's projections, embedding and classifier
// stored as dtype (see llama.DType): "" or "float32" widens everything, as
// Load does; "bfloat16" or "float16" keeps those tensors 16-bit; "auto" is
// the checkpoint's torch_dtype when that is bfloat16 or float16, else
// float32. A tensor stored in the requested 16-bit type is not copied at
// all: the model's slice aliases the memory-mapped file (read-only; see
// llama.Model.Mapped, which keeps the mapping open until the model is
// garbage), so an 8B-parameter bf16 checkpoint costs no heap and only the
// pages a computation touches are resident. One stored otherwise is
// converted one tensor at a time (rounded to nearest even when narrowing).
// Norms and biases are always float32.
func LoadDType(dir, dtype string) (*llama.Model, *Config, error) {
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, nil, err
	}
	if dtype == "auto" {
		dtype = ""
		if cfg.TorchDType == string(llama.BFloat16) || cfg.TorchDType == string(llama.Float16) {
			dtype = cfg.TorchDType
		}
	}
	dt, err := llama.ParseDType(dtype)
	if err != nil {
		return nil, nil, fmt.Errorf("hf: load %s: %w", dir, err)
	}
	lc, err := cfg.LlamaConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("hf: %s: %w", filepath.Join(dir, ConfigFileName), err)
	}
	r, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("hf: %s: %w", dir, err)
	}
	mapped := false // some weight aliases r's mapping: the model keeps r open
	defer func() {
		if !mapped {
			r.Close()
		}
	}()

	m := &llama.Model{Config: lc, Layers: make([]llama.Layer, lc.Layers)}
	if dt != llama.Float32 {
		m.Half = &llama.HalfWeights{DType: dt}
	}
	ws := weights(m)
	want := make(map[string]bool, len(ws))
	for _, w := range ws {
		want[w.name] = true
	}
	// Unexpected tensors are checked first: a checkpoint of another
	// architecture then fails on the name that shows it rather than on
	// whatever tensor of ours it happens to lack.
	for _, name := range r.Names() {
		if want[name] || ignorable(name, lc) {
			continue
		}
		return nil, nil, fmt.Errorf("hf: %s: unexpected tensor %q: not part of a %s with this config.json",
			location(r, dir, name), name, cfg.Architecture)
	}
	// Every tensor's presence and shape is checked against config.json
	// before any is converted: nothing is allocated for a checkpoint whose
	// safetensors headers do not hold what the config describes.
	for _, w := range ws {
		t, ok := r.Tensor(w.name)
		if !ok {
			return nil, nil, fmt.Errorf("hf: %s: tensor %q is missing (%s with %d layers)",
				checkpointFile(r, dir), w.name, cfg.Architecture, lc.Layers)
		}
		if !slices.Equal(t.Shape, w.shape) {
			return nil, nil, fmt.Errorf("hf: %s: tensor %q has shape %v, config.json implies %v",
				location(r, dir, w.name), w.name, t.Shape, w.shape)
		}
	}
	aliased := false
	for _, w := range ws {
		t, _ := r.Tensor(w.name)
		if w.half != nil {
			var alias bool
			*w.half, alias, err = halfValues(t, dt)
			aliased = aliased || alias
		} else {
			*w.data, err = t.Float32()
		}
		if err != nil {
			return nil, nil, fmt.Errorf("hf: %s: %w", location(r, dir, w.name), err)
		}
	}
	if lc.SharedClassifier {
		m.Classifier = m.Embedding
		if m.Half != nil {
			m.Half.Classifier = m.Half.Embedding
		}
	}
	if err := m.Validate(); err != nil {
		return nil, nil, fmt.Errorf("hf: %s: %w", dir, err)
	}
	if aliased {
		pages := &checkpointPages{r: r}
		// The mapping goes when no model refers to it any more.
		runtime.AddCleanup(pages, func(r safetensors.Reader) { r.Close() }, r)
		m.Mapped, mapped = pages, true
	}
	return m, cfg, nil
}

// checkpointPages is the mapping a loaded model's 16-bit weights alias.
type checkpointPages struct{ r safetensors.Reader }

// evicter is what safetensors.File and safetensors.Index add to Reader.
type evicter interface{ Evict(b []byte) bool }

func (p *checkpointPages) Evict(b []byte) bool {
	e, ok := p.r.(evicter)
	return ok && e.Evict(b)
}

// ignorable says whether a tensor outside the model's weights may be
// skipped: lm_head.weight of a tied model (transformers replaces it by the
// embedding too) and the rotary inverse-frequency buffers some older
// exports saved (they are recomputed from the config).
func ignorable(name string, c llama.Config) bool {
	return c.SharedClassifier && name == "lm_head.weight" || strings.HasSuffix(name, ".rotary_emb.inv_freq")
}

// location is the file holding a tensor.
func location(r safetensors.Reader, dir, name string) string {
	switch r := r.(type) {
	case *safetensors.Index:
		return r.Shard(name)
	case *safetensors.File:
		return r.Path()
	}
	return dir
}

// checkpointFile is the file that lists a checkpoint's tensors: the index
// or the single file.
func checkpointFile(r safetensors.Reader, dir string) string {
	if _, ok := r.(*safetensors.Index); ok {
		return filepath.Join(dir, safetensors.IndexFileName)
	}
	return filepath.Join(dir, safetensors.SingleFileName)
}

// halfTypes maps the 16-bit model dtypes to their safetensors element types.
var halfTypes = map[llama.DType]safetensors.DType{llama.BFloat16: safetensors.DTypeBF16, llama.Float16: safetensors.DTypeF16}

// halfValues returns t's values as dt: the raw 16-bit patterns when t is
// stored as dt (aliasing t.Data, reported by alias, when the machine is
// little-endian and the data 2-byte aligned, as safetensors files written
// by the reference library always are), else converted through float32.
func halfValues(t safetensors.Tensor, dt llama.DType) (_ []uint16, alias bool, _ error) {
	if t.DType != halfTypes[dt] {
		f, err := t.Float32()
		if err != nil {
			return nil, false, err
		}
		return llama.Narrow(dt, f), false, nil
	}
	n := t.NumElements()
	if len(t.Data) != 2*n {
		return nil, false, fmt.Errorf("tensor %q holds %d bytes, its shape %v needs %d", t.Name, len(t.Data), t.Shape, 2*n)
	}
	if n > 0 && littleEndian && uintptr(unsafe.Pointer(&t.Data[0]))%2 == 0 {
		return unsafe.Slice((*uint16)(unsafe.Pointer(&t.Data[0])), n), true, nil
	}
	out := make([]uint16, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint16(t.Data[2*i:])
	}
	return out, false, nil
}

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1
