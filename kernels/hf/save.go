package hf

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"lrmc/internal/atomicfile"
	"lrmc/kernels/llama"
	"lrmc/kernels/safetensors"
)

// dtypes maps Save's dtype names (transformers' torch_dtype spellings) to
// safetensors element types.
var dtypes = map[string]safetensors.DType{
	"float32":  safetensors.DTypeF32,
	"bfloat16": safetensors.DTypeBF16,
	"float16":  safetensors.DTypeF16,
}

// CompanionFiles are the files of a checkpoint directory besides config.json
// and the weights that transformers reads to use the model; Save copies
// those present in Config.Dir.
var CompanionFiles = []string{
	"generation_config.json", "tokenizer.json", "tokenizer_config.json", "tokenizer.model",
	"special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt",
	"chat_template.jinja", "chat_template.json",
}

// Save writes m as a Hugging Face checkpoint directory dir: config.json and
// the weights in dtype ("float32", "bfloat16" or "float16"), in one
// model.safetensors or, when they exceed maxShardBytes (0: never), in shards
// with a model.safetensors.index.json.
//
// cfg is the configuration m was loaded with, or nil for a model from
// elsewhere (written as Qwen2ForCausalLM when it has q/k/v biases,
// Qwen3ForCausalLM when it has q/k norms, else LlamaForCausalLM). Its
// document is written back with the shape fields set to m's (hidden_size,
// intermediate_size, num_hidden_layers, num_attention_heads,
// num_key_value_heads, head_dim, vocab_size, tie_word_embeddings,
// torch_dtype); settings Save cannot rewrite (rms_norm_eps, rope_theta,
// rope_scaling) must match m's, and what the document lacks is filled in
// from m. A model the architecture cannot express (Qwen2 without q/k/v
// biases, say) is an error. An interleaved-RoPE model has its q/k rows permuted to Hugging
// Face's rotate-half layout.
//
// A 16-bit model (see llama.DType) saved in its own dtype is written bit
// for bit; in another dtype each tensor is widened first, then rounded.
//
// The directory is built beside dir under a temporary name and renamed into
// place, so an interrupted Save leaves no half-written checkpoint; an
// existing dir is replaced.
func Save(dir string, m *llama.Model, cfg *Config, dtype string, maxShardBytes int64) error {
	dt, ok := dtypes[dtype]
	if !ok {
		return fmt.Errorf("hf: save %s: dtype %q is not one of float32, bfloat16, float16", dir, dtype)
	}
	if maxShardBytes < 0 {
		return fmt.Errorf("hf: save %s: maximum shard size %d is negative", dir, maxShardBytes)
	}
	if err := m.Validate(); err != nil {
		return fmt.Errorf("hf: save %s: the model has no single Hugging Face config: %w", dir, err)
	}
	doc, err := configDocument(m.Config, cfg, dtype)
	if err != nil {
		return fmt.Errorf("hf: save %s: %w", dir, err)
	}
	m = m.WithRopeStyle(llama.RopeHalf)

	parent, base := filepath.Split(filepath.Clean(dir))
	if parent == "" {
		parent = "."
	}
	tmp, err := os.MkdirTemp(parent, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("hf: save: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("hf: save: %w", err)
	}
	if err := atomicfile.WriteBytes(filepath.Join(tmp, ConfigFileName), 0o644, doc); err != nil {
		return fmt.Errorf("hf: save %s: %w", dir, err)
	}
	if err := writeWeights(tmp, weights(m), dt, m.DType(), maxShardBytes); err != nil {
		return fmt.Errorf("hf: save %s: %w", dir, err)
	}
	if cfg != nil && cfg.Dir != "" {
		for _, name := range CompanionFiles {
			if err := copyFile(filepath.Join(tmp, name), filepath.Join(cfg.Dir, name)); err != nil {
				return fmt.Errorf("hf: save %s: %w", dir, err)
			}
		}
	}
	if err := atomicfile.ReplaceDir(tmp, dir, ""); err != nil {
		return fmt.Errorf("hf: save: %w", err)
	}
	committed = true
	return nil
}

// ConfigJSON is the config.json Save writes for a model of shape mc with
// weights in dtype, from cfg's document (or from nothing): for writers
// that stream a checkpoint's tensors instead of holding a llama.Model.
func ConfigJSON(mc llama.Config, cfg *Config, dtype string) ([]byte, error) {
	if _, ok := dtypes[dtype]; !ok {
		return nil, fmt.Errorf("hf: dtype %q is not one of float32, bfloat16, float16", dtype)
	}
	return configDocument(mc, cfg, dtype)
}

// configDocument builds config.json for m from cfg's document (or from
// nothing), after checking that the architecture can express m.
func configDocument(mc llama.Config, cfg *Config, dtype string) ([]byte, error) {
	var arch string
	switch {
	case cfg != nil:
		arch = cfg.Architecture
	case mc.QKVBias:
		arch = ArchQwen2
	case mc.QKNorm:
		arch = ArchQwen3
	default:
		arch = ArchLlama
	}
	switch want := (llama.Config{QKVBias: arch == ArchQwen2, QKNorm: arch == ArchQwen3}); {
	case mc.QKVBias != want.QKVBias:
		return nil, fmt.Errorf("%s cannot express a model with QKVBias=%v", arch, mc.QKVBias)
	case mc.QKNorm != want.QKNorm:
		return nil, fmt.Errorf("%s cannot express a model with QKNorm=%v", arch, mc.QKNorm)
	}
	if err := oneShape(mc); err != nil {
		return nil, err
	}

	doc := map[string]any{}
	if cfg != nil {
		for k, v := range cfg.raw {
			doc[k] = v
		}
		lc, err := cfg.LlamaConfig()
		if err != nil {
			return nil, err
		}
		// The model's own settings must be the config's: Save rewrites
		// shapes, not the arithmetic.
		switch {
		case lc.NormEps != mc.NormEps:
			return nil, fmt.Errorf("model's norm eps %g differs from config.json's rms_norm_eps %g", mc.NormEps, lc.NormEps)
		case lc.RopeTheta != mc.RopeTheta:
			return nil, fmt.Errorf("model's rope theta %g differs from config.json's rope_theta %g", mc.RopeTheta, lc.RopeTheta)
		case lc.RopeScaling != mc.RopeScaling:
			return nil, fmt.Errorf("model's rope scaling %+v differs from config.json's %+v", mc.RopeScaling, lc.RopeScaling)
		}
		if err := resizeLayerTypes(doc, mc.Layers); err != nil {
			return nil, err
		}
	}
	// What the document lacks (all of it, without a cfg or with one built
	// in code rather than read) comes from the model.
	setDefault := func(key string, v any) {
		if _, ok := doc[key]; !ok {
			doc[key] = v
		}
	}
	setDefault("architectures", []string{arch})
	setDefault("model_type", modelTypes[arch])
	setDefault("hidden_act", "silu")
	// float32(eps) printed as the shortest float32 decimal, so that 1e-5
	// stays 1e-05 rather than 9.999999747378752e-06.
	setDefault("rms_norm_eps", json.Number(fmt.Sprint(mc.NormEps)))
	_, hasParams := doc["rope_parameters"]
	if !hasParams {
		setDefault("rope_theta", mc.RopeTheta)
		if s := mc.RopeScaling; s.Type != "" {
			setDefault("rope_scaling", map[string]any{
				"rope_type": s.Type, "factor": s.Factor, "low_freq_factor": s.LowFreqFactor,
				"high_freq_factor": s.HighFreqFactor, "original_max_position_embeddings": s.OriginalMaxPositions,
			})
		}
	}
	setDefault("max_position_embeddings", mc.SeqLen)
	doc["hidden_size"] = mc.Dim
	doc["intermediate_size"] = mc.HiddenDim
	doc["num_hidden_layers"] = mc.Layers
	doc["num_attention_heads"] = mc.Heads
	doc["num_key_value_heads"] = mc.KVHeads
	doc["head_dim"] = mc.HeadDim()
	doc["vocab_size"] = mc.Vocab
	doc["tie_word_embeddings"] = mc.SharedClassifier
	doc["torch_dtype"] = dtype
	if _, ok := doc["dtype"]; ok {
		doc["dtype"] = dtype
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// oneShape reports what of a width-pruned model config.json cannot hold:
// transformers' Llama and Qwen configs give every layer the same heads and
// MLP width, and have no o_proj/down_proj bias without biases on every
// projection.
func oneShape(mc llama.Config) error {
	switch {
	case !mc.Uniform():
		return fmt.Errorf("the model's blocks differ in heads or MLP width, which a config.json cannot express (export GGUF, which holds per-block widths)")
	case mc.OutBias:
		return fmt.Errorf("the model has o_proj/down_proj output biases (FLAP's bias compensation), which a config.json cannot express (export GGUF)")
	}
	return nil
}

// resizeLayerTypes fits the per-layer attention kinds newer Qwen configs
// list (layer_types) to n layers. Which layers a pruned model kept is not
// known here, so that works only when every layer is of one kind.
func resizeLayerTypes(doc map[string]any, n int) error {
	raw, ok := doc["layer_types"].(json.RawMessage)
	if !ok {
		return nil
	}
	var types []string
	if err := json.Unmarshal(raw, &types); err != nil {
		return fmt.Errorf("layer_types: %w", err)
	}
	if len(types) == n {
		return nil
	}
	if len(types) == 0 || slices.ContainsFunc(types, func(s string) bool { return s != types[0] }) {
		return fmt.Errorf("layer_types %v mixes attention kinds; cannot tell which %d of them the model kept", types, n)
	}
	doc["layer_types"] = slices.Repeat([]string{types[0]}, n)
	return nil
}

// writeWeights writes ws in dt, converting one shard's tensors at a time so
// that at most one shard's bytes are held besides the float32 model.
//
// A 16-bit model's tensors (hdt, ignored for a float32 model) are written bit
// for bit when dt is their own type, else widened one tensor at a time.
func writeWeights(dir string, ws []weight, dt safetensors.DType, hdt llama.DType, maxShardBytes int64) error {
	meta := map[string]string{"format": "pt"} // transformers refuses safetensors without it
	var (
		groups [][]weight
		size   int64
		total  int64
	)
	for _, w := range ws {
		n := int64(w.len()) * int64(dt.Size())
		if len(groups) == 0 || maxShardBytes > 0 && size+n > maxShardBytes && size > 0 {
			groups = append(groups, nil)
			size = 0
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], w)
		size += n
		total += n
	}
	encode := func(g []weight) ([]safetensors.Tensor, error) {
		ts := make([]safetensors.Tensor, len(g))
		for i, w := range g {
			t, err := encodeWeight(w, dt, hdt)
			if err != nil {
				return nil, err
			}
			ts[i] = t
		}
		return ts, nil
	}
	if len(groups) == 1 {
		ts, err := encode(groups[0])
		if err != nil {
			return err
		}
		return safetensors.WriteFile(filepath.Join(dir, safetensors.SingleFileName), ts, meta)
	}
	index := struct {
		Metadata  map[string]any    `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}{map[string]any{"total_size": total}, map[string]string{}}
	for i, g := range groups {
		name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(groups))
		ts, err := encode(g)
		if err != nil {
			return err
		}
		if err := safetensors.WriteFile(filepath.Join(dir, name), ts, meta); err != nil {
			return err
		}
		for _, w := range g {
			index.WeightMap[w.name] = name
		}
	}
	b, err := json.MarshalIndent(index, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(dir, safetensors.IndexFileName), 0o644, append(b, '\n'))
}

// encodeWeight is w as a safetensors tensor of type dt; hdt is the 16-bit
// type of w.half.
func encodeWeight(w weight, dt safetensors.DType, hdt llama.DType) (safetensors.Tensor, error) {
	if w.half == nil {
		return safetensors.FromFloat32(w.name, dt, w.shape, *w.data)
	}
	if dt != halfTypes[hdt] {
		return safetensors.FromFloat32(w.name, dt, w.shape, llama.Widen(hdt, *w.half))
	}
	data := make([]byte, 2*len(*w.half))
	for i, v := range *w.half {
		binary.LittleEndian.PutUint16(data[2*i:], v)
	}
	return safetensors.Tensor{Name: w.name, DType: dt, Shape: slices.Clone(w.shape), Data: data}, nil
}

// copyFile copies src (following a hub cache's symbolic links) to dst; a
// missing src is not an error.
func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.Write(dst, 0o644, func(w io.Writer) error {
		if _, err := io.Copy(w, in); err != nil {
			return fmt.Errorf("copying %s: %w", src, err)
		}
		return nil
	})
}
