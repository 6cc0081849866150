// Package hf reads and writes Hugging Face transformers checkpoints — a
// directory holding config.json and safetensors weights — as llama.Models,
// for the Llama-family architectures whose blocks llama.Model computes:
// LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM and
// Qwen3ForCausalLM (and so the DeepSeek-R1-Distill models built on them).
//
// Loading is strict: every tensor the configuration implies must be present
// with its exact shape, and a tensor it does not imply is an error, so a
// checkpoint is never half-loaded.
package hf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"lrmc/kernels/llama"
)

// ConfigFileName is the model configuration inside a checkpoint directory.
const ConfigFileName = "config.json"

// The architectures this package loads, as config.json's "architectures"
// names them.
const (
	ArchLlama   = "LlamaForCausalLM"
	ArchMistral = "MistralForCausalLM"
	ArchQwen2   = "Qwen2ForCausalLM"
	ArchQwen3   = "Qwen3ForCausalLM"
)

// Architectures lists the supported architectures.
var Architectures = []string{ArchLlama, ArchMistral, ArchQwen2, ArchQwen3}

// modelTypes is config.json's model_type for each architecture.
var modelTypes = map[string]string{ArchLlama: "llama", ArchMistral: "mistral", ArchQwen2: "qwen2", ArchQwen3: "qwen3"}

// Config is what lrmc reads from a config.json. Defaults are those of the
// architecture's transformers configuration class where a field is absent.
type Config struct {
	Architecture string // architectures[0], one of Architectures
	ModelType    string // model_type

	HiddenSize            int
	IntermediateSize      int
	NumHiddenLayers       int
	NumAttentionHeads     int
	NumKeyValueHeads      int // num_key_value_heads; num_attention_heads when absent
	HeadDim               int // head_dim, or hidden_size/num_attention_heads when absent (Qwen3: 128)
	VocabSize             int
	MaxPositionEmbeddings int
	RMSNormEps            float64
	RopeTheta             float64
	RopeScaling           llama.RopeScaling // the zero value for none ("default")
	TieWordEmbeddings     bool
	// SlidingWindow is the attention window when the model uses one
	// (Mistral's sliding_window; Qwen's when use_sliding_window is set), else
	// 0. llama.Model attends to the whole context, which is the same thing
	// for sequences no longer than the window; LlamaConfig caps SeqLen there.
	SlidingWindow int

	BOSTokenID  int   // bos_token_id, or -1 when absent
	EOSTokenIDs []int // eos_token_id, which may be one id or a list
	TorchDType  string

	// Dir is the directory the config was read from ("" for one built in
	// memory). Save copies the tokenizer and generation files from it.
	Dir string

	// raw is the whole document, so that Save writes back the fields lrmc
	// does not interpret (token ids, chat settings, …) unchanged.
	raw map[string]json.RawMessage
}

// fields is the part of config.json that lrmc interprets. Pointers tell an
// absent (or null) field from a zero one.
type fields struct {
	Architectures         []string        `json:"architectures"`
	ModelType             string          `json:"model_type"`
	HiddenSize            *int            `json:"hidden_size"`
	IntermediateSize      *int            `json:"intermediate_size"`
	NumHiddenLayers       *int            `json:"num_hidden_layers"`
	NumAttentionHeads     *int            `json:"num_attention_heads"`
	NumKeyValueHeads      *int            `json:"num_key_value_heads"`
	HeadDim               *int            `json:"head_dim"`
	VocabSize             *int            `json:"vocab_size"`
	MaxPositionEmbeddings *int            `json:"max_position_embeddings"`
	RMSNormEps            *float64        `json:"rms_norm_eps"`
	RopeTheta             *float64        `json:"rope_theta"`
	RopeScaling           map[string]any  `json:"rope_scaling"`
	RopeParameters        map[string]any  `json:"rope_parameters"`
	TieWordEmbeddings     *bool           `json:"tie_word_embeddings"`
	AttentionBias         *bool           `json:"attention_bias"`
	MLPBias               *bool           `json:"mlp_bias"`
	SlidingWindow         *int            `json:"sliding_window"`
	UseSlidingWindow      *bool           `json:"use_sliding_window"`
	BOSTokenID            json.RawMessage `json:"bos_token_id"`
	EOSTokenID            json.RawMessage `json:"eos_token_id"`
	TorchDType            string          `json:"torch_dtype"`
	DType                 string          `json:"dtype"` // transformers ≥ 4.56 spells torch_dtype so
}

// ReadConfig reads and checks dir/config.json. It touches no weights, so a
// planner can size a model cheaply.
func ReadConfig(dir string) (*Config, error) {
	path := filepath.Join(dir, ConfigFileName)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("hf: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("hf: %s: %w", path, err)
	}
	c.Dir = dir
	return c, nil
}

// ParseConfig decodes and checks the bytes of a config.json.
func ParseConfig(b []byte) (*Config, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	var f fields
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, err
	}
	if len(f.Architectures) == 0 {
		return nil, fmt.Errorf("no architectures listed (supported: %s)", strings.Join(Architectures, ", "))
	}
	c := &Config{Architecture: f.Architectures[0], ModelType: f.ModelType, raw: raw}
	if !slices.Contains(Architectures, c.Architecture) {
		return nil, fmt.Errorf("architecture %s is not supported (supported: %s)", c.Architecture, strings.Join(Architectures, ", "))
	}
	var missing []string
	need := func(dst *int, v *int, name string) {
		if v == nil {
			missing = append(missing, name)
			return
		}
		*dst = *v
	}
	need(&c.HiddenSize, f.HiddenSize, "hidden_size")
	need(&c.IntermediateSize, f.IntermediateSize, "intermediate_size")
	need(&c.NumHiddenLayers, f.NumHiddenLayers, "num_hidden_layers")
	need(&c.NumAttentionHeads, f.NumAttentionHeads, "num_attention_heads")
	need(&c.VocabSize, f.VocabSize, "vocab_size")
	need(&c.MaxPositionEmbeddings, f.MaxPositionEmbeddings, "max_position_embeddings")
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	if c.NumAttentionHeads <= 0 {
		return nil, fmt.Errorf("num_attention_heads is %d, must be positive", c.NumAttentionHeads)
	}

	c.NumKeyValueHeads = c.NumAttentionHeads
	if f.NumKeyValueHeads != nil {
		c.NumKeyValueHeads = *f.NumKeyValueHeads
	}
	switch {
	case f.HeadDim != nil:
		c.HeadDim = *f.HeadDim
	case c.Architecture == ArchQwen3:
		c.HeadDim = 128 // Qwen3Config's default
	default:
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}
	if err := checkLimits(c); err != nil {
		return nil, err
	}
	c.RMSNormEps = 1e-6 // the default of all four configuration classes
	if f.RMSNormEps != nil {
		c.RMSNormEps = *f.RMSNormEps
	}
	c.TieWordEmbeddings = f.TieWordEmbeddings != nil && *f.TieWordEmbeddings
	var err error

	// Rope settings live at the top level (rope_theta, rope_scaling) or, in
	// transformers ≥ 5, together in rope_parameters.
	c.RopeTheta = 10000
	scaling := f.RopeScaling
	if f.RopeParameters != nil {
		if th, ok := f.RopeParameters["rope_theta"].(float64); ok {
			c.RopeTheta = th
		}
		scaling = f.RopeParameters
	}
	if f.RopeTheta != nil {
		c.RopeTheta = *f.RopeTheta
	}
	if c.RopeScaling, err = parseRopeScaling(scaling); err != nil {
		return nil, err
	}

	// Biases other than Qwen2's q/k/v ones are not part of llama.Model.
	if c.Architecture != ArchQwen2 && f.AttentionBias != nil && *f.AttentionBias {
		return nil, fmt.Errorf("attention_bias is true: %s attention biases (o_proj included) are not supported", c.Architecture)
	}
	if f.MLPBias != nil && *f.MLPBias {
		return nil, fmt.Errorf("mlp_bias is true: MLP biases are not supported")
	}
	if f.SlidingWindow != nil && (c.Architecture == ArchMistral || f.UseSlidingWindow != nil && *f.UseSlidingWindow) {
		c.SlidingWindow = *f.SlidingWindow
	}

	if c.BOSTokenID, err = tokenID(f.BOSTokenID, "bos_token_id"); err != nil {
		return nil, err
	}
	if c.EOSTokenIDs, err = tokenIDs(f.EOSTokenID); err != nil {
		return nil, err
	}
	c.TorchDType = f.TorchDType
	if c.TorchDType == "" {
		c.TorchDType = f.DType
	}
	if _, err := c.LlamaConfig(); err != nil {
		return nil, err
	}
	return c, nil
}

// checkLimits rejects sizes no real model has, under config.json's names,
// before anything is sized by them: the planner plans per layer from
// num_hidden_layers, and a loader allocates from the others.
func checkLimits(c *Config) error {
	for _, f := range []struct {
		name     string
		v, limit int
	}{
		{"hidden_size", c.HiddenSize, llama.MaxDim},
		{"intermediate_size", c.IntermediateSize, llama.MaxHiddenDim},
		{"num_hidden_layers", c.NumHiddenLayers, llama.MaxLayers},
		{"num_attention_heads", c.NumAttentionHeads, llama.MaxHeads},
		{"num_key_value_heads", c.NumKeyValueHeads, llama.MaxHeads},
		{"head_dim", c.HeadDim, llama.MaxHeadDim},
		{"vocab_size", c.VocabSize, llama.MaxVocab},
		{"max_position_embeddings", c.MaxPositionEmbeddings, llama.MaxSeqLen},
	} {
		if err := llama.CheckLimit(f.name, f.v, f.limit); err != nil {
			return err
		}
	}
	return nil
}

// parseRopeScaling reads rope_scaling (or rope_parameters), whose type is
// under "rope_type" (or the older "type").
func parseRopeScaling(m map[string]any) (llama.RopeScaling, error) {
	if m == nil {
		return llama.RopeScaling{}, nil
	}
	typ, _ := m["rope_type"].(string)
	if typ == "" {
		typ, _ = m["type"].(string)
	}
	switch typ {
	case "", "default":
		return llama.RopeScaling{}, nil
	case "llama3":
	default:
		return llama.RopeScaling{}, fmt.Errorf("rope_scaling type %q is not supported (only \"llama3\")", typ)
	}
	num := func(key string) (float64, error) {
		v, ok := m[key].(float64)
		if !ok {
			return 0, fmt.Errorf("rope_scaling %s is missing or not a number", key)
		}
		return v, nil
	}
	var s llama.RopeScaling
	s.Type = typ
	var err error
	if s.Factor, err = num("factor"); err != nil {
		return s, err
	}
	if s.LowFreqFactor, err = num("low_freq_factor"); err != nil {
		return s, err
	}
	if s.HighFreqFactor, err = num("high_freq_factor"); err != nil {
		return s, err
	}
	orig, err := num("original_max_position_embeddings")
	if err != nil {
		return s, err
	}
	s.OriginalMaxPositions = int(orig)
	return s, nil
}

// tokenID reads an optional integer token id; -1 when absent or null.
func tokenID(raw json.RawMessage, name string) (int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return -1, nil
	}
	var id int
	if err := json.Unmarshal(raw, &id); err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return id, nil
}

// tokenIDs reads eos_token_id, which transformers allows to be one id or a
// list of them.
func tokenIDs(raw json.RawMessage) ([]int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	raw = bytes.TrimSpace(raw)
	if raw[0] == '[' {
		var ids []int
		if err := json.Unmarshal(raw, &ids); err != nil {
			return nil, fmt.Errorf("eos_token_id: %w", err)
		}
		return ids, nil
	}
	id, err := tokenID(raw, "eos_token_id")
	return []int{id}, err
}

// LlamaConfig is the llama.Config of a checkpoint with this configuration:
// rotate-half RoPE (Hugging Face's layout), an explicit head size (so that
// pruning heads later cannot change it), q/k/v biases for Qwen2 and q/k
// norms for Qwen3.
func (c *Config) LlamaConfig() (llama.Config, error) {
	seq := c.MaxPositionEmbeddings
	if c.SlidingWindow > 0 && c.SlidingWindow < seq {
		seq = c.SlidingWindow
	}
	lc := llama.Config{
		Dim:              c.HiddenSize,
		HiddenDim:        c.IntermediateSize,
		Layers:           c.NumHiddenLayers,
		Heads:            c.NumAttentionHeads,
		KVHeads:          c.NumKeyValueHeads,
		Vocab:            c.VocabSize,
		SeqLen:           seq,
		NormEps:          float32(c.RMSNormEps),
		RopeTheta:        c.RopeTheta,
		SharedClassifier: c.TieWordEmbeddings,
		HeadSize:         c.HeadDim,
		QKVBias:          c.Architecture == ArchQwen2,
		QKNorm:           c.Architecture == ArchQwen3,
		RopeStyle:        llama.RopeHalf,
		RopeScaling:      c.RopeScaling,
	}
	if err := lc.Validate(); err != nil {
		return lc, err
	}
	return lc, nil
}
