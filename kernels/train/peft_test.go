package train

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"lrmc/kernels/safetensors"
)

func loraNet(t *testing.T) (*Net, Batch) {
	t.Helper()
	cs := gradCase{cfg: smallCfg, b: 2, t: 6, noisy: true, opts: []Option{WithLoRA(LoRAConfig{Rank: 4, Alpha: 8, Dropout: 0.1,
		Targets: []string{DownProj, QProj, VProj, GateProj}, Seed: 2})}}
	return cs.build(t)
}

// TestMergeLoRA merges the adapters into a fresh copy of the base and
// checks that the merged model without adapters computes the loss of the
// base with adapters, and each merged weight against a float64 W + s·B·A.
func TestMergeLoRA(t *testing.T) {
	n, bt := loraNet(t)
	withAdapters, err := n.Loss(bt)
	if err != nil {
		t.Fatal(err)
	}
	merged := randModel(smallCfg, 11)
	if err := MergeLoRA(merged, n.Adapters()); err != nil {
		t.Fatal(err)
	}
	base := n.Model()
	for _, a := range n.Adapters() {
		l, bl := merged.Layers[a.Layer], base.Layers[a.Layer]
		w, w0 := map[string][2][]float32{QProj: {l.Wq, bl.Wq}, VProj: {l.Wv, bl.Wv}, GateProj: {l.W1, bl.W1}, DownProj: {l.W2, bl.W2}}[a.Module][0],
			map[string][2][]float32{QProj: {l.Wq, bl.Wq}, VProj: {l.Wv, bl.Wv}, GateProj: {l.W1, bl.W1}, DownProj: {l.W2, bl.W2}}[a.Module][1]
		for o := range a.Out {
			for i := range a.In {
				var d float64
				for r := range a.Rank {
					d += float64(a.B.Data[o*a.Rank+r]) * float64(a.A.Data[r*a.In+i])
				}
				want := float64(w0[o*a.In+i]) + float64(a.Scale)*d
				if math.Abs(float64(w[o*a.In+i])-want) > 1e-6*(1+math.Abs(want)) {
					t.Fatalf("layer %d %s [%d,%d]: merged %g, want %g", a.Layer, a.Module, o, i, w[o*a.In+i], want)
				}
			}
		}
	}
	plain, err := New(merged, 2, 6)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := plain.Loss(bt)
	if math.Abs(got.Total-withAdapters.Total) > 1e-5*withAdapters.Total {
		t.Fatalf("merged loss %.8g, with adapters %.8g", got.Total, withAdapters.Total)
	}
	bad := *merged
	bad.Layers = bad.Layers[:1]
	if err := MergeLoRA(&bad, n.Adapters()); err == nil ||
		err.Error() != "train: merge: adapter base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight is for layer 1, the model has 1" {
		t.Fatalf("merge into a shorter model: %v", err)
	}
}

func TestSaveAdapter(t *testing.T) {
	n, _ := loraNet(t)
	dir := filepath.Join(t.TempDir(), "adapter")
	if err := n.SaveAdapter(dir, "stories260K"); err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "peft_type": "LORA",
  "task_type": "CAUSAL_LM",
  "base_model_name_or_path": "stories260K",
  "r": 4,
  "lora_alpha": 8,
  "lora_dropout": 0.1,
  "target_modules": [
    "q_proj",
    "v_proj",
    "gate_proj",
    "down_proj"
  ],
  "bias": "none",
  "fan_in_fan_out": false,
  "inference_mode": true,
  "use_rslora": false,
  "use_dora": false,
  "init_lora_weights": true
}
`
	if string(js) != want {
		t.Fatalf("adapter_config.json:\n%s\nwant:\n%s", js, want)
	}
	f, err := safetensors.Open(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := len(f.Names()); got != 2*4*smallCfg.Layers {
		t.Fatalf("%d tensors, want %d", got, 2*4*smallCfg.Layers)
	}
	for _, a := range n.Adapters() {
		for _, c := range []struct {
			name  string
			shape []int
			data  []float32
		}{{a.A.Name, []int{4, a.In}, a.A.Data}, {a.B.Name, []int{a.Out, 4}, a.B.Data}} {
			tn, ok := f.Tensor(c.name)
			if !ok || tn.DType != safetensors.DTypeF32 || len(tn.Shape) != 2 || tn.Shape[0] != c.shape[0] || tn.Shape[1] != c.shape[1] {
				t.Fatalf("tensor %s: %v %v %v, want F32 %v", c.name, ok, tn.DType, tn.Shape, c.shape)
			}
			if string(tn.Data) != string(safetensors.F32("", nil, c.data).Data) {
				t.Fatalf("tensor %s: data differs", c.name)
			}
		}
	}
	if _, ok := f.Tensor("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"); !ok {
		t.Fatal("PEFT name for down_proj's lora_B missing")
	}
}

func TestLoadAdapter(t *testing.T) {
	n, _ := loraNet(t)
	dir := t.TempDir()
	if err := n.SaveAdapter(dir, "base"); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fresh, _ := loraNet(t)
	for _, a := range fresh.Adapters() {
		clear(a.A.Data)
		clear(a.B.Data)
	}
	if err := fresh.LoadAdapter(f); err != nil {
		t.Fatal(err)
	}
	for i, a := range n.Adapters() {
		b := fresh.Adapters()[i]
		if string(safetensors.F32("", nil, a.A.Data).Data) != string(safetensors.F32("", nil, b.A.Data).Data) ||
			string(safetensors.F32("", nil, a.B.Data).Data) != string(safetensors.F32("", nil, b.B.Data).Data) {
			t.Fatalf("adapter %s differs after the round trip", a.A.Name)
		}
	}
	// A net with fewer targets must refuse the extra tensors; one with
	// another rank must refuse the shapes; one with more must miss some.
	for _, c := range []struct {
		lc   LoRAConfig
		want string
	}{
		{LoRAConfig{Rank: 4, Alpha: 8, Targets: []string{QProj, VProj, GateProj}},
			"train: load adapter: tensor base_model.model.model.layers.0.mlp.down_proj.lora_A.weight has no matching adapter in the net"},
		{LoRAConfig{Rank: 2, Alpha: 8, Targets: []string{QProj}},
			"train: load adapter: tensor base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight has shape [4 32], want [2 32]"},
		{LoRAConfig{Rank: 4, Alpha: 8, Targets: []string{QProj, KProj}},
			"train: load adapter: tensor base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight is missing"},
	} {
		other, err := New(randModel(smallCfg, 1), 1, 4, WithLoRA(c.lc))
		if err != nil {
			t.Fatal(err)
		}
		if err := other.LoadAdapter(f); err == nil || err.Error() != c.want {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
}
