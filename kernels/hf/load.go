package hf

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"lrmc/kernels/llama"
	"lrmc/kernels/safetensors"
)

// weight is one tensor of a checkpoint: its Hugging Face name and shape, and
// the llama.Model field that holds it.
type weight struct {
	name  string
	shape []int
	data  *[]float32
}

// weights lists m's tensors under their Hugging Face names, in the order
// transformers' state_dict has them. m.Layers must already have
// Config.Layers entries. The classifier is listed only when it is not tied.
func weights(m *llama.Model) []weight {
	c := m.Config
	d, q, kv, h, hd := c.Dim, c.QDim(), c.KVDim(), c.HiddenDim, c.HeadDim()
	ws := []weight{{"model.embed_tokens.weight", []int{c.Vocab, d}, &m.Embedding}}
	for i := range m.Layers {
		l := &m.Layers[i]
		p := fmt.Sprintf("model.layers.%d.", i)
		ws = append(ws,
			weight{p + "input_layernorm.weight", []int{d}, &l.AttnNorm},
			weight{p + "self_attn.q_proj.weight", []int{q, d}, &l.Wq},
			weight{p + "self_attn.k_proj.weight", []int{kv, d}, &l.Wk},
			weight{p + "self_attn.v_proj.weight", []int{kv, d}, &l.Wv},
			weight{p + "self_attn.o_proj.weight", []int{d, q}, &l.Wo},
		)
		if c.QKVBias {
			ws = append(ws,
				weight{p + "self_attn.q_proj.bias", []int{q}, &l.Bq},
				weight{p + "self_attn.k_proj.bias", []int{kv}, &l.Bk},
				weight{p + "self_attn.v_proj.bias", []int{kv}, &l.Bv},
			)
		}
		if c.QKNorm {
			ws = append(ws,
				weight{p + "self_attn.q_norm.weight", []int{hd}, &l.QNorm},
				weight{p + "self_attn.k_norm.weight", []int{hd}, &l.KNorm},
			)
		}
		ws = append(ws,
			weight{p + "post_attention_layernorm.weight", []int{d}, &l.FFNNorm},
			weight{p + "mlp.gate_proj.weight", []int{h, d}, &l.W1},
			weight{p + "mlp.up_proj.weight", []int{h, d}, &l.W3},
			weight{p + "mlp.down_proj.weight", []int{d, h}, &l.W2},
		)
	}
	ws = append(ws, weight{"model.norm.weight", []int{d}, &m.FinalNorm})
	if !c.SharedClassifier {
		ws = append(ws, weight{"lm_head.weight", []int{c.Vocab, d}, &m.Classifier})
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
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, nil, err
	}
	lc, err := cfg.LlamaConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("hf: %s: %w", filepath.Join(dir, ConfigFileName), err)
	}
	r, err := safetensors.OpenDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("hf: %s: %w", dir, err)
	}
	defer r.Close()

	m := &llama.Model{Config: lc, Layers: make([]llama.Layer, lc.Layers)}
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
		if *w.data, err = t.Float32(); err != nil {
			return nil, nil, fmt.Errorf("hf: %s: %w", location(r, dir, w.name), err)
		}
	}
	if lc.SharedClassifier {
		m.Classifier = m.Embedding
	}
	if err := m.Validate(); err != nil {
		return nil, nil, fmt.Errorf("hf: %s: %w", dir, err)
	}
	return m, cfg, nil
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
