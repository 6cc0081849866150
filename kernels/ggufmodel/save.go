package ggufmodel

import (
	"encoding/binary"
	"fmt"

	"lrmc/kernels/gguf"
	"lrmc/kernels/llama"
)

// fileTypes maps Save's dtype names to the tensor type of the weight
// matrices and llama.cpp's general.file_type (LLAMA_FTYPE_ALL_F32,
// LLAMA_FTYPE_MOSTLY_F16, LLAMA_FTYPE_MOSTLY_BF16).
var fileTypes = map[string]struct {
	typ   gguf.GGMLType
	ftype uint32
}{
	"f32":  {gguf.TypeF32, 0},
	"f16":  {gguf.TypeF16, 1},
	"bf16": {gguf.TypeBF16, 32},
}

// Save writes m to path as a GGUF file llama.cpp can load, with weight
// matrices in dtype ("f32", "f16" or "bf16") and, as llama.cpp's converter
// does, norms and biases in F32. meta names the architecture and carries
// the tokenizer entries to copy; nil writes a llama file without a
// tokenizer. The metadata is the architecture's hyperparameters:
// context_length, embedding_length, block_count, feed_forward_length,
// attention.head_count(_kv), attention.layer_norm_rms_epsilon,
// rope.freq_base, rope.dimension_count, and attention.key_length and
// value_length when the head size is not embedding_length/head_count; Llama
// 3's rope scaling becomes llama.cpp's rope_freqs.weight tensor. The
// q/k rows are permuted into the architecture's rotary layout when m uses
// the other one. A model whose blocks differ in heads or MLP width
// (llama.Config.Widths) gets head_count, head_count_kv and
// feed_forward_length as per-block arrays and an explicit key_length;
// llama.cpp reads such shapes only for deci, which Save writes instead of
// llama (the same network and tensor names), while qwen2 and qwen3 files
// with arrays load in lrmc but not in llama.cpp, whose loaders for those
// size every block by the first. Output biases (llama.Config.OutBias) are
// blk.N.attn_output.bias and blk.N.ffn_down.bias, which llama.cpp's llama
// loader takes as optional tensors. A 16-bit model's matrices saved in
// their own type are
// written bit for bit, in another type widened first. The file is written
// atomically.
func Save(path string, m *llama.Model, meta *Meta, dtype string) error {
	ft, ok := fileTypes[dtype]
	if !ok {
		return fmt.Errorf("ggufmodel: save %s: dtype %q is not one of f32, f16, bf16", path, dtype)
	}
	arch := "llama"
	if meta != nil {
		arch = meta.Architecture
	}
	if arch == "llama" && !m.Config.Uniform() {
		// llama.cpp's llama sizes every block by the first block's heads
		// and MLP width; its deci reads them per block.
		arch = "deci"
	}
	style, ok := ropeStyles[arch]
	if !ok {
		return fmt.Errorf("ggufmodel: save %s: architecture %q is not supported", path, arch)
	}
	c := m.Config
	if err := m.Validate(); err != nil {
		return fmt.Errorf("ggufmodel: save %s: %w", path, err)
	}
	switch {
	case c.QKVBias != (arch == "qwen2"):
		return fmt.Errorf("ggufmodel: save %s: architecture %s cannot express a model with QKVBias=%v", path, arch, c.QKVBias)
	case c.QKNorm != (arch == "qwen3"):
		return fmt.Errorf("ggufmodel: save %s: architecture %s cannot express a model with QKNorm=%v", path, arch, c.QKNorm)
	case c.RopeScaling.Type != "" && c.RopeScaling != withFactor(llama3Defaults, c.RopeScaling.Factor):
		// llama.cpp's rope_freqs can hold any divisors, but Load
		// recognises only Llama 3's parameters; refuse what it could not
		// read back.
		return fmt.Errorf("ggufmodel: save %s: rope scaling %+v is not Llama 3's (low 1, high 4, original context 8192)", path, c.RopeScaling)
	}
	m = m.WithRopeStyle(style)

	hd := c.HeadDim()
	kvs := []gguf.KV{
		{Key: "general.architecture", Value: arch},
	}
	if meta != nil && meta.Name != "" {
		kvs = append(kvs, gguf.KV{Key: "general.name", Value: meta.Name})
	}
	kvs = append(kvs,
		gguf.KV{Key: "general.file_type", Value: ft.ftype},
		gguf.KV{Key: arch + ".context_length", Value: uint32(c.SeqLen)},
		gguf.KV{Key: arch + ".embedding_length", Value: uint32(c.Dim)},
		gguf.KV{Key: arch + ".block_count", Value: uint32(c.Layers)},
		gguf.KV{Key: arch + ".feed_forward_length", Value: widths(c, func(w llama.LayerWidth) int { return w.HiddenDim })},
		gguf.KV{Key: arch + ".rope.dimension_count", Value: uint32(hd)},
		gguf.KV{Key: arch + ".attention.head_count", Value: widths(c, func(w llama.LayerWidth) int { return w.Heads })},
		gguf.KV{Key: arch + ".attention.head_count_kv", Value: widths(c, func(w llama.LayerWidth) int { return w.KVHeads })},
		gguf.KV{Key: arch + ".attention.layer_norm_rms_epsilon", Value: c.NormEps},
		gguf.KV{Key: arch + ".rope.freq_base", Value: float32(c.RopeTheta)},
	)
	if !c.Uniform() || c.Dim%c.Heads != 0 || hd != c.Dim/c.Heads {
		kvs = append(kvs,
			gguf.KV{Key: arch + ".attention.key_length", Value: uint32(hd)},
			gguf.KV{Key: arch + ".attention.value_length", Value: uint32(hd)},
		)
	}
	if meta != nil {
		for _, kv := range meta.Tokenizer {
			if kv.Key == "tokenizer.ggml.tokens" {
				if toks, ok := kv.Value.([]string); ok && len(toks) != c.Vocab {
					return fmt.Errorf("ggufmodel: save %s: tokenizer has %d tokens, the model's vocabulary %d", path, len(toks), c.Vocab)
				}
			}
		}
		kvs = append(kvs, meta.Tokenizer...)
	}

	ws := weights(m)
	if c.RopeScaling.Type != "" {
		divisors := llama3Divisors(c)
		ws = append(ws, weight{name: ropeFreqsName, shape: []int{len(divisors)}, data: &divisors})
	}
	ts := make([]gguf.Tensor, len(ws))
	for i, w := range ws {
		typ := ft.typ
		if len(w.shape) == 1 {
			typ = gguf.TypeF32 // ggml adds and multiplies by F32 vectors
		}
		t, err := encodeWeight(w, typ, m.DType())
		if err != nil {
			return fmt.Errorf("ggufmodel: save %s: %w", path, err)
		}
		ts[i] = t
	}
	return gguf.WriteFile(path, kvs, ts)
}

// widths is one of c's widths as GGUF metadata: a uint32 when every block
// has it, else an int32 array with one entry per block, the type llama.cpp's
// converter writes such arrays in (gguf-py's default for Python ints).
func widths(c llama.Config, of func(llama.LayerWidth) int) any {
	if c.Uniform() {
		return uint32(of(c.Width(0)))
	}
	out := make([]int32, c.Layers)
	for i := range out {
		out[i] = int32(of(c.Width(i)))
	}
	return out
}

func withFactor(s llama.RopeScaling, factor float64) llama.RopeScaling {
	s.Factor = factor
	return s
}

// encodeWeight is w as a GGUF tensor of type typ; hdt is the 16-bit type of
// w.half.
func encodeWeight(w weight, typ gguf.GGMLType, hdt llama.DType) (gguf.Tensor, error) {
	if w.half == nil {
		return gguf.FromFloat32(w.name, typ, w.shape, *w.data)
	}
	if typ != halfTypes[hdt] {
		return gguf.FromFloat32(w.name, typ, w.shape, llama.Widen(hdt, *w.half))
	}
	dims := make([]uint64, len(w.shape))
	for i, d := range w.shape {
		dims[len(w.shape)-1-i] = uint64(d) // GGUF stores ne, innermost first
	}
	data := make([]byte, 2*len(*w.half))
	for i, v := range *w.half {
		binary.LittleEndian.PutUint16(data[2*i:], v)
	}
	return gguf.Tensor{Name: w.name, Type: typ, Dims: dims, Data: data}, nil
}
