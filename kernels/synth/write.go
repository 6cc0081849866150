package synth

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"lrmc/kernels/half"
	"lrmc/kernels/hf"
	"lrmc/kernels/safetensors"
)

// WriteHF writes the model New(s) makes as a Hugging Face checkpoint in
// dir (created if absent): config.json and the weights in dtype
// ("float32", "bfloat16" or "float16"), in shards of at most maxShardBytes
// of tensor data with a model.safetensors.index.json (one
// model.safetensors when they all fit). The files hold what
// hf.Save(dir, New(s), cfg, dtype, maxShardBytes) writes, tensor for
// tensor and bit for bit, but the model is never held: each tensor is
// drawn and encoded on its own and a shard is written as soon as it is
// full, so the memory needed is one shard's, not the model's. That is
// how a Llama-3.1-8B-shaped checkpoint (16 GB in bfloat16) is made on a
// machine that could not hold its float32 form (bench/llama8b-depth.sh).
// s.DType must be empty: dtype says how the checkpoint stores the draws.
func WriteHF(dir string, s Spec, dtype string, maxShardBytes int64) error {
	if s.DType != "" {
		return fmt.Errorf("synth: write %s: Spec.DType is %q; WriteHF takes the checkpoint's dtype instead", dir, s.DType)
	}
	if maxShardBytes <= 0 {
		return fmt.Errorf("synth: write %s: maximum shard size %d is not positive", dir, maxShardBytes)
	}
	cfg, err := Config(s)
	if err != nil {
		return err
	}
	c, err := cfg.LlamaConfig()
	if err != nil {
		return err
	}
	doc, err := hf.ConfigJSON(c, cfg, dtype)
	if err != nil {
		return fmt.Errorf("synth: write %s: %w", dir, err)
	}
	dt := map[string]safetensors.DType{"float32": safetensors.DTypeF32, "bfloat16": safetensors.DTypeBF16, "float16": safetensors.DTypeF16}[dtype]

	// The tensors in the order New draws them: the stream of numbers is
	// one sequence, so this order, not the file's, fixes every value.
	hd, q, kv := c.HeadDim(), c.QDim(), c.KVDim()
	var ts []plannedTensor
	add := func(name string, random bool, shape ...int) {
		ts = append(ts, plannedTensor{name: name, shape: shape, random: random})
	}
	add("model.embed_tokens.weight", true, c.Vocab, c.Dim)
	for i := range c.Layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		add(p+"input_layernorm.weight", false, c.Dim)
		add(p+"post_attention_layernorm.weight", false, c.Dim)
		add(p+"self_attn.q_proj.weight", true, q, c.Dim)
		add(p+"self_attn.k_proj.weight", true, kv, c.Dim)
		add(p+"self_attn.v_proj.weight", true, kv, c.Dim)
		add(p+"self_attn.o_proj.weight", true, c.Dim, q)
		add(p+"mlp.gate_proj.weight", true, c.HiddenDim, c.Dim)
		add(p+"mlp.up_proj.weight", true, c.HiddenDim, c.Dim)
		add(p+"mlp.down_proj.weight", true, c.Dim, c.HiddenDim)
		if c.QKVBias {
			add(p+"self_attn.q_proj.bias", true, q)
			add(p+"self_attn.k_proj.bias", true, kv)
			add(p+"self_attn.v_proj.bias", true, kv)
		}
		if c.QKNorm {
			add(p+"self_attn.q_norm.weight", false, hd)
			add(p+"self_attn.k_norm.weight", false, hd)
		}
	}
	add("model.norm.weight", false, c.Dim)
	if !c.SharedClassifier {
		add("lm_head.weight", true, c.Vocab, c.Dim)
	}

	// Shards are planned from the sizes first, as hf.Save groups them, so
	// that every file name knows the shard count.
	var shards [][]plannedTensor
	var size, total int64
	for _, t := range ts {
		n := int64(t.len()) * int64(dt.Size())
		if len(shards) == 0 || size+n > maxShardBytes && size > 0 {
			shards = append(shards, nil)
			size = 0
		}
		shards[len(shards)-1] = append(shards[len(shards)-1], t)
		size += n
		total += n
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, hf.ConfigFileName), doc, 0o644); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	g := gaussian{src: rand.NewPCG(s.Seed, 0x73796e7468)}
	meta := map[string]string{"format": "pt"}
	weightMap := map[string]string{}
	for i, shard := range shards {
		name := safetensors.SingleFileName
		if len(shards) > 1 {
			name = fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
		}
		enc := make([]safetensors.Tensor, len(shard))
		for j, t := range shard {
			enc[j] = safetensors.Tensor{Name: t.name, DType: dt, Shape: t.shape, Data: t.encode(&g, dt)}
			weightMap[t.name] = name
		}
		if err := safetensors.WriteFile(filepath.Join(dir, name), enc, meta); err != nil {
			return fmt.Errorf("synth: %w", err)
		}
	}
	if len(shards) == 1 {
		return nil
	}
	b, err := json.MarshalIndent(map[string]any{"metadata": map[string]any{"total_size": total}, "weight_map": weightMap}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, safetensors.IndexFileName), append(b, '\n'), 0o644)
}

// plannedTensor is one tensor WriteHF writes: N(0, 0.02²) draws, or ones.
type plannedTensor struct {
	name   string
	shape  []int
	random bool
}

func (t plannedTensor) len() int {
	n := 1
	for _, d := range t.shape {
		n *= d
	}
	return n
}

// encode draws t's values (New's draws, in New's float32 rounding) and
// encodes them as dt, a chunk at a time.
func (t plannedTensor) encode(g *gaussian, dt safetensors.DType) []byte {
	n, size := t.len(), dt.Size()
	out := make([]byte, n*size)
	buf := make([]float32, min(n, 1<<16))
	for lo := 0; lo < n; lo += len(buf) {
		v := buf[:min(len(buf), n-lo)]
		for i := range v {
			if t.random {
				v[i] = float32(0.02 * g.next())
			} else {
				v[i] = 1
			}
		}
		dst := out[lo*size : (lo+len(v))*size]
		switch dt {
		case safetensors.DTypeBF16:
			half.EncodeBF16(dst, v)
		case safetensors.DTypeF16:
			half.EncodeF16(dst, v)
		default:
			for i, x := range v {
				binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(x))
			}
		}
	}
	return out
}
