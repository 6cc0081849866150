package ops_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"lrmc/compiler/ir"
	"lrmc/internal/shareddata"
	"lrmc/kernels/generate"
	"lrmc/kernels/llama2c"
	"lrmc/kernels/textdata"
)

// The HF exports of a llama2.c model stand alone: the pruned model's hf/
// and a LoRA run's base/ carry a tokenizer.json converted from tok512.bin
// (same ids as llama2.c's encoder), bos/eos ids in config.json and a
// generation_config.json; base/ loads with lrmc's loader (no tokenizer
// named) and gives the pruned model's logits, as the llama2.c export of the
// same model does.
func TestLlama2cHFExportsStandAlone(t *testing.T) {
	out := t.TempDir()
	r := stories(t, out, 2)
	text := shareddata.Path(t, "text", "tinystories", "tinystories_val.txt")
	lora := r.Runs[0]
	lora.Name = "lora"
	lora.Recovery = ir.Recovery{
		Method: "lora", Data: ir.Data{Path: text, Format: "text", Split: ir.Split{From: 0, To: 0.9}},
		Steps: 2, Batch: 2, SeqLen: 32, Accumulation: 1, LR: 1e-3, Schedule: "constant",
		Rank: 2, Alpha: 4, Targets: []string{"q"}, Loss: "lm", Seed: 1, CheckpointEvery: 2,
	}
	r.Runs = append(r.Runs, lora)
	r.Output.Formats = []string{"llama2c", "hf"}
	r.Output.DType = "float32"
	if err := apply(t, context.Background(), t.TempDir(), r, &recorder{}); err != nil {
		t.Fatal(err)
	}
	ref, err := llama2c.Load(filepath.Join(out, "shortgpt-2", "model.bin"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := llama2c.LoadTokenizer(shareddata.Path(t, "models", "stories260K", "tok512.bin"), 512)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := textdata.ReadDocuments(text, "text", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{filepath.Join(out, "shortgpt-2", "hf"), filepath.Join(out, "lora", "base")} {
		m, err := generate.Load(dir, "", "")
		if err != nil {
			t.Fatalf("%s does not load alone: %v", dir, err)
		}
		for _, d := range docs[:50] {
			if got, want := m.Tok.EncodePrompt(d), tok.Encode(d, true, false); !slices.Equal(got, want) {
				t.Fatalf("%s: %q encodes as %v, llama2.c %v", dir, d, got, want)
			}
		}
		ids := tok.Encode(docs[0], true, false)[:16]
		if d := maxRelDiff(ref.Forward(ids, 1, len(ids)), m.LM.Forward(ids, 1, len(ids))); d > 2e-6 {
			t.Errorf("%s: logits differ from the llama2.c export by %.3g of their scale", dir, d)
		}
		var cfg, gen map[string]any
		readJSON(t, filepath.Join(dir, "config.json"), &cfg)
		readJSON(t, filepath.Join(dir, "generation_config.json"), &gen)
		if cfg["bos_token_id"] != 1.0 || cfg["eos_token_id"] != 2.0 || gen["bos_token_id"] != 1.0 || gen["eos_token_id"] != 2.0 {
			t.Errorf("%s: config.json ids %v/%v, generation_config.json %v/%v", dir, cfg["bos_token_id"], cfg["eos_token_id"], gen["bos_token_id"], gen["eos_token_id"])
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// The HF export of a GGUF model carries its tokenizer, converted from the
// GGUF metadata: it loads alone and encodes as the GGUF tokenizer does.
func TestGGUFHFExportCarriesTokenizer(t *testing.T) {
	out := t.TempDir()
	r := stories(t, out, 1)
	gg := shareddata.Path(t, "models", "stories260K", "stories260K.gguf")
	r.Dense = false
	r.Runs[0].Model = ir.Model{Path: gg, Format: "auto"}
	r.Output.Formats = []string{"hf"}
	r.Output.DType = "float32"
	if err := apply(t, context.Background(), t.TempDir(), r, &recorder{}); err != nil {
		t.Fatal(err)
	}
	ref, err := generate.Load(gg, "", "")
	if err != nil {
		t.Fatal(err)
	}
	m, err := generate.Load(filepath.Join(out, "shortgpt-1", "hf"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := textdata.ReadDocuments(shareddata.Path(t, "text", "tinystories", "tinystories_val.txt"), "text", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs[:100] {
		if got, want := m.Tok.EncodePrompt(d), ref.Tok.EncodePrompt(d); !slices.Equal(got, want) {
			t.Fatalf("%q encodes as %v, the GGUF tokenizer %v", d, got, want)
		}
	}
	if m.LM.Config.Layers != 4 {
		t.Errorf("exported model has %d blocks, want 4", m.LM.Config.Layers)
	}
}
