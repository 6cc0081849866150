package train

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"lrmc/kernels/llama"
	"lrmc/kernels/safetensors"
)

// AdapterConfig is PEFT's adapter_config.json for a LoRA adapter, with the
// fields PEFT's LoraConfig needs to load it; PEFT fills the rest with its
// defaults.
type AdapterConfig struct {
	PeftType            string   `json:"peft_type"` // "LORA"
	TaskType            string   `json:"task_type"` // "CAUSAL_LM"
	BaseModelNameOrPath string   `json:"base_model_name_or_path"`
	R                   int      `json:"r"`
	LoraAlpha           float64  `json:"lora_alpha"`
	LoraDropout         float64  `json:"lora_dropout"`
	TargetModules       []string `json:"target_modules"`
	Bias                string   `json:"bias"` // "none": biases are not trained
	FanInFanOut         bool     `json:"fan_in_fan_out"`
	InferenceMode       bool     `json:"inference_mode"`
	UseRSLoRA           bool     `json:"use_rslora"`
	UseDoRA             bool     `json:"use_dora"`
	InitLoraWeights     bool     `json:"init_lora_weights"`
}

// PEFTConfig describes the Net's adapters for PEFT; base names the base
// model (a hub id or a path).
func (n *Net) PEFTConfig(base string) (AdapterConfig, error) {
	lc := n.o.lora
	if lc == nil {
		return AdapterConfig{}, fmt.Errorf("train: the net has no LoRA adapters")
	}
	var targets []string
	for _, p := range projNames { // a fixed order whatever the recipe's
		for _, t := range lc.Targets {
			if t == p {
				targets = append(targets, p)
				break
			}
		}
	}
	return AdapterConfig{PeftType: "LORA", TaskType: "CAUSAL_LM", BaseModelNameOrPath: base,
		R: lc.Rank, LoraAlpha: lc.Alpha, LoraDropout: lc.Dropout, TargetModules: targets,
		Bias: "none", InferenceMode: true, InitLoraWeights: true}, nil
}

// AdapterTensors are the adapters under PEFT's names,
// base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight [r, in] and
// …lora_B.weight [out, r], as float32.
func (n *Net) AdapterTensors() []safetensors.Tensor {
	var ts []safetensors.Tensor
	for _, a := range n.adapters {
		ts = append(ts,
			safetensors.F32(a.A.Name, []int{a.Rank, a.In}, a.A.Data),
			safetensors.F32(a.B.Name, []int{a.Out, a.Rank}, a.B.Data))
	}
	return ts
}

// SaveAdapter writes adapter_model.safetensors and adapter_config.json into
// dir, the layout PeftModel.from_pretrained reads.
func (n *Net) SaveAdapter(dir, base string) error {
	cfg, err := n.PEFTConfig(base)
	if err != nil {
		return err
	}
	js, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("train: encoding adapter_config.json: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("train: saving adapter: %w", err)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "adapter_model.safetensors"), n.AdapterTensors(),
		map[string]string{"format": "pt"}); err != nil {
		return fmt.Errorf("train: saving adapter: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "adapter_config.json"), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("train: saving adapter: %w", err)
	}
	return nil
}

// MergeLoRA adds each adapter's scale·B·A into the matching weight of dst,
// as PEFT's merge_and_unload does (W ← W + (B·A)·scale, the product summed
// over the rank in order in float32). dst must not be the model a Net with
// these adapters still trains or evaluates, or the adapters would count
// twice.
func MergeLoRA(dst *llama.Model, adapters []*Adapter) error {
	if dt := dst.DType(); dt != llama.Float32 {
		return fmt.Errorf("train: merge: the model's weights are %s; merging needs float32 weights (widen it with Model.Float32 first)", dt)
	}
	for _, a := range adapters {
		if a.Layer < 0 || a.Layer >= len(dst.Layers) {
			return fmt.Errorf("train: merge: adapter %s is for layer %d, the model has %d", a.A.Name, a.Layer, len(dst.Layers))
		}
		l := &dst.Layers[a.Layer]
		w := map[string][]float32{QProj: l.Wq, KProj: l.Wk, VProj: l.Wv, OProj: l.Wo, GateProj: l.W1, UpProj: l.W3, DownProj: l.W2}[a.Module]
		if len(w) != a.In*a.Out {
			return fmt.Errorf("train: merge: %s holds %d floats, adapter %s is %d×%d", a.Module, len(w), a.A.Name, a.Out, a.In)
		}
		for o := range a.Out {
			row := w[o*a.In : (o+1)*a.In]
			bo := a.B.Data[o*a.Rank : (o+1)*a.Rank]
			for i := range row {
				var s float32
				for r, b := range bo {
					s += float32(b * a.A.Data[r*a.In+i])
				}
				row[i] += float32(s * a.Scale)
			}
		}
	}
	return nil
}

// LoadAdapter reads the Net's adapters from PEFT tensors (an opened
// adapter_model.safetensors), F32, F16 or BF16. It is strict both ways:
// every adapter must be present with its shape, and a LoRA tensor in the
// file that the Net has no adapter for is an error rather than silently
// dropped.
func (n *Net) LoadAdapter(r safetensors.Reader) error {
	want := map[string]bool{}
	for _, a := range n.adapters {
		for _, c := range []struct {
			p     []float32
			name  string
			shape [2]int
		}{{a.A.Data, a.A.Name, [2]int{a.Rank, a.In}}, {a.B.Data, a.B.Name, [2]int{a.Out, a.Rank}}} {
			want[c.name] = true
			t, ok := r.Tensor(c.name)
			if !ok {
				return fmt.Errorf("train: load adapter: tensor %s is missing", c.name)
			}
			if len(t.Shape) != 2 || t.Shape[0] != c.shape[0] || t.Shape[1] != c.shape[1] {
				return fmt.Errorf("train: load adapter: tensor %s has shape %v, want %v", c.name, t.Shape, c.shape)
			}
			v, err := t.Float32()
			if err != nil {
				return fmt.Errorf("train: load adapter: %w", err)
			}
			copy(c.p, v)
		}
	}
	for _, name := range r.Names() {
		if !want[name] {
			return fmt.Errorf("train: load adapter: tensor %s has no matching adapter in the net", name)
		}
	}
	return nil
}
