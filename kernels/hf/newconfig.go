package hf

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"lrmc/kernels/llama"
)

// NewConfig writes the config.json of architecture arch (one of
// Architectures) for a model of shape c, and parses it back, so that a
// model that did not come from a Hugging Face directory (a llama2.c
// checkpoint, a synthetic model) can be saved as one. Settings the
// architecture cannot express, such as q/k/v biases on Llama, are errors.
func NewConfig(arch string, c llama.Config) (*Config, error) {
	if !slices.Contains(Architectures, arch) {
		return nil, fmt.Errorf("hf: architecture %s is not supported (supported: %s)", arch, strings.Join(Architectures, ", "))
	}
	if c.QKVBias != (arch == ArchQwen2) {
		return nil, fmt.Errorf("hf: %s models %s q/k/v biases", arch, map[bool]string{true: "have", false: "have no"}[arch == ArchQwen2])
	}
	if c.QKNorm != (arch == ArchQwen3) {
		return nil, fmt.Errorf("hf: %s models %s q/k norms", arch, map[bool]string{true: "have", false: "have no"}[arch == ArchQwen3])
	}
	if err := oneShape(c); err != nil {
		return nil, fmt.Errorf("hf: %w", err)
	}
	doc := map[string]any{
		"architectures":           []string{arch},
		"model_type":              modelTypes[arch],
		"hidden_size":             c.Dim,
		"intermediate_size":       c.HiddenDim,
		"num_hidden_layers":       c.Layers,
		"num_attention_heads":     c.Heads,
		"num_key_value_heads":     c.KVHeads,
		"head_dim":                c.HeadDim(),
		"vocab_size":              c.Vocab,
		"max_position_embeddings": c.SeqLen,
		"rms_norm_eps":            json.Number(fmt.Sprint(c.NormEps)), // 1e-06, not 9.99…e-07
		"rope_theta":              c.RopeTheta,
		"tie_word_embeddings":     c.SharedClassifier,
		"hidden_act":              "silu",
		"torch_dtype":             "float32",
	}
	if arch == ArchQwen2 {
		doc["attention_bias"] = true
	}
	if s := c.RopeScaling; s.Type != "" {
		doc["rope_scaling"] = map[string]any{
			"rope_type": s.Type, "factor": s.Factor, "low_freq_factor": s.LowFreqFactor,
			"high_freq_factor": s.HighFreqFactor, "original_max_position_embeddings": s.OriginalMaxPositions,
		}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("hf: new %s config: %w", arch, err)
	}
	return cfg, nil
}
