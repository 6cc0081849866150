package ops_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"lrmc/compiler/ir"
	"lrmc/internal/shareddata"
	"lrmc/kernels/ggufmodel"
	"lrmc/kernels/hf"
	"lrmc/kernels/llama"
	"lrmc/kernels/llama2c"
	"lrmc/planner"
)

func maxRelDiff(a, b []float32) float64 {
	var diff, scale float64
	for i := range a {
		diff = math.Max(diff, math.Abs(float64(a[i]-b[i])))
		scale = math.Max(scale, math.Abs(float64(a[i])))
	}
	return diff / scale
}

// A depth-pruned stories260K exported in every format loads back with the
// pruned model's logits: bit-identical from GGUF (same RoPE layout),
// within float32 rounding from HF (whose rotate-half layout reorders the
// rotary arithmetic).
func TestDepthPrunedExportsLoadBack(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	r := stories(t, out, 2)
	r.Output.Formats = []string{"llama2c", "hf", "gguf"}
	r.Output.DType = "float32"
	if err := apply(t, context.Background(), dir, r, &recorder{}); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(out, "shortgpt-2")
	ref, err := llama2c.Load(filepath.Join(run, "model.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if ref.Config.Layers != 3 {
		t.Fatalf("exported model has %d blocks, want 3", ref.Config.Layers)
	}
	toks := []int32{1, 403, 407, 261, 378, 432, 383, 286, 261, 376}
	want := ref.Forward(toks, 1, len(toks))

	fromHF, cfg, err := hf.Load(filepath.Join(run, "hf"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NumHiddenLayers != 3 || cfg.Architecture != hf.ArchLlama {
		t.Errorf("config.json: %d layers, %s", cfg.NumHiddenLayers, cfg.Architecture)
	}
	if d := maxRelDiff(want, fromHF.Forward(toks, 1, len(toks))); d > 2e-6 {
		t.Errorf("HF export: logits differ by %.3g of their scale", d)
	}
	fromGGUF, meta, err := ggufmodel.Load(filepath.Join(run, "model.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(meta.Tokenizer) == 0 {
		t.Error("GGUF export carries no tokenizer")
	}
	if d := maxRelDiff(want, fromGGUF.Forward(toks, 1, len(toks))); d != 0 {
		t.Errorf("GGUF export: logits differ by %.3g of their scale, want identical", d)
	}

	var pv planner.Provenance
	b, err := os.ReadFile(filepath.Join(run, "provenance.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &pv); err != nil {
		t.Fatal(err)
	}
	if pv.Run != "shortgpt-2" || len(pv.Inputs) != 3 || len(pv.Nodes) == 0 || len(pv.Model) != 64 {
		t.Errorf("provenance: %+v", pv)
	}
}

// A synthetic Qwen3 model calibrated on chat data with thinking on exports
// a bfloat16 HF directory (tokenizer files included) and a GGUF with the
// Qwen3 tokenizer and chat template.
func TestSyntheticQwen3ChatExports(t *testing.T) {
	data := shareddata.Path(t, "text", "reasoning_tool_use", "reason_tool_use_demo_50.think.jsonl")
	tok := shareddata.Path(t, "tokenizers", "qwen3")
	on := true
	chat := func(from, to float64) ir.Data {
		return ir.Data{Path: data, Format: "chat", Template: "model", Thinking: &on, Split: ir.Split{From: from, To: to}}
	}
	model := ir.Model{Tokenizer: tok, Synthetic: &ir.Synthetic{Arch: "qwen3", Layers: 3, Dim: 32, Heads: 2, KVHeads: 1, HeadDim: 16, FFN: 64, SeqLen: 512, Tie: true, Seed: 3}}
	eval := []ir.Eval{{Task: "perplexity", Data: chat(0.8, 1), Samples: 2, SeqLen: 64}}
	out := t.TempDir()
	r := &ir.Recipe{File: "t.cue", Dense: false, Runs: []ir.Run{{
		Name: "s", Model: model, Eval: eval,
		Calibration: ir.Calibration{Data: chat(0, 0.8), Samples: 4, SeqLen: 64, Seed: 1},
		Prune:       ir.Prune{Paradigm: "depth", Method: "shortgpt", Remove: 1},
	}}, Output: ir.Output{Dir: out, Formats: []string{"hf", "gguf"}, DType: "bfloat16"}}
	if err := apply(t, context.Background(), t.TempDir(), r, &recorder{}); err != nil {
		t.Fatal(err)
	}
	m, cfg, err := hf.Load(filepath.Join(out, "s", "hf"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Architecture != hf.ArchQwen3 || cfg.NumHiddenLayers != 2 || cfg.TorchDType != "bfloat16" || !m.Config.QKNorm {
		t.Errorf("HF export config: %s, %d layers, %s", cfg.Architecture, cfg.NumHiddenLayers, cfg.TorchDType)
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		if _, err := os.Stat(filepath.Join(out, "s", "hf", f)); err != nil {
			t.Errorf("HF export lacks %s", f)
		}
	}
	g, meta, err := ggufmodel.Load(filepath.Join(out, "s", "model.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	if meta.Architecture != "qwen3" || g.Config.Layers != 2 || g.Config.RopeStyle != llama.RopeHalf {
		t.Errorf("GGUF export: %s, %d layers, rope %v", meta.Architecture, g.Config.Layers, g.Config.RopeStyle)
	}
	keys := map[string]bool{}
	for _, kv := range meta.Tokenizer {
		keys[kv.Key] = true
	}
	for _, k := range []string{"tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.chat_template"} {
		if !keys[k] {
			t.Errorf("GGUF export lacks %s", k)
		}
	}
	// Both exports hold the same bfloat16 weights.
	toks := []int32{9707, 11, 1879, 0}
	if d := maxRelDiff(m.Forward(toks, 1, 4), g.Forward(toks, 1, 4)); d > 1e-5 {
		t.Errorf("HF and GGUF exports disagree by %.3g", d)
	}
}
