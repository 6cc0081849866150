package ops_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"lrmc/compiler/ir"
	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/internal/shareddata"
	"lrmc/kernels/safetensors"
	"lrmc/planner"
)

// recovering adds a run that recovers the two-block ShortGPT model with
// LoRA (or KD) on held-in TinyStories text, on a short schedule.
func recovering(t *testing.T, out string, loss string) *ir.Recipe {
	r := stories(t, out, 2)
	text := shareddata.Path(t, "text", "tinystories", "tinystories_val.txt")
	run := r.Runs[0]
	run.Name = "shortgpt-2-" + loss
	run.Recovery = ir.Recovery{
		Method: "lora", Data: ir.Data{Path: text, Format: "text", Split: ir.Split{From: 0, To: 0.9}},
		Steps: 24, Batch: 4, SeqLen: 64, Accumulation: 1, LR: 3e-3, Warmup: 0.1, Schedule: "cosine",
		MaxGradNorm: 1, Rank: 8, Alpha: 16, Dropout: 0.05, Targets: []string{"q", "k", "v", "o", "gate", "up", "down"},
		Loss: loss, Temperature: 2, Seed: 1, CheckpointEvery: 4,
	}
	if loss == "lm" {
		run.Recovery.Temperature = 0
	}
	r.Runs = append(r.Runs, run)
	return r
}

func perplexities(t *testing.T, out string) map[string]float64 {
	var res ops.Results
	if err := json.Unmarshal(readResults(t, out), &res); err != nil {
		t.Fatal(err)
	}
	ppl := map[string]float64{}
	for n, m := range res.Runs {
		ppl[n], _ = m["perplexity"].(float64)
	}
	return ppl
}

// LoRA recovery lowers the pruned model's held-out perplexity, with the LM
// loss and with distillation from the dense model; the adapter comes out
// in PEFT's layout.
func TestRecoveryLowersPerplexity(t *testing.T) {
	for _, loss := range []string{"lm", "kd"} {
		out := t.TempDir()
		if err := apply(t, context.Background(), t.TempDir(), recovering(t, out, loss), &recorder{}); err != nil {
			t.Fatal(err)
		}
		ppl := perplexities(t, out)
		pruned, recovered := ppl["shortgpt-2"], ppl["shortgpt-2-"+loss]
		t.Logf("%s: pruned %.3f, recovered %.3f", loss, pruned, recovered)
		if !(recovered < 0.8*pruned) {
			t.Errorf("%s recovery: perplexity %.3f, pruned %.3f: want at least 20%% lower", loss, recovered, pruned)
		}
		adapter := filepath.Join(out, "shortgpt-2-"+loss, "adapter")
		var cfg map[string]any
		b, err := os.ReadFile(filepath.Join(adapter, "adapter_config.json"))
		if err != nil {
			t.Fatal(err)
		}
		json.Unmarshal(b, &cfg)
		if cfg["peft_type"] != "LORA" || cfg["r"] != 8.0 || cfg["base_model_name_or_path"] != "../base" {
			t.Errorf("adapter_config.json: %v", cfg)
		}
		f, err := safetensors.Open(filepath.Join(adapter, "adapter_model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := f.Tensor("base_model.model.model.layers.2.mlp.down_proj.lora_B.weight"); !ok || len(f.Names()) != 3*7*2 {
			t.Errorf("adapter tensors: %d, names %v…", len(f.Names()), f.Names()[:2])
		}
		f.Close()
		if _, err := os.Stat(filepath.Join(out, "shortgpt-2-"+loss, "base", "config.json")); err != nil {
			t.Errorf("no base model beside the adapter: %v", err)
		}
	}
}

// An interrupted recovery resumes from its last checkpoint, not from step
// 0, and ends bit-identical to an uninterrupted one.
func TestRecoveryResumesFromCheckpoint(t *testing.T) {
	refOut := t.TempDir()
	if err := apply(t, context.Background(), t.TempDir(), recovering(t, refOut, "lm"), &recorder{}); err != nil {
		t.Fatal(err)
	}
	want := readResults(t, refOut)

	dir, out := t.TempDir(), t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	rec := &recorder{onEv: func(e executor.Event) {
		if e.Event == executor.EventProgress && e.Op == planner.OpRecover && e.Done == 10 {
			cancel()
		}
	}}
	if err := apply(t, ctx, dir, recovering(t, out, "lm"), rec); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted apply: %v", err)
	}
	rec = &recorder{}
	if err := apply(t, context.Background(), dir, recovering(t, out, "lm"), rec); err != nil {
		t.Fatal(err)
	}
	var resumedAt int64 = -1
	first := int64(-1)
	for _, e := range rec.events {
		if e.Event == executor.EventResumed && e.Op == planner.OpRecover {
			resumedAt = e.Done
		}
		if e.Event == executor.EventProgress && e.Op == planner.OpRecover && first < 0 {
			first = e.Done
		}
	}
	if resumedAt != 8 || first != 9 {
		t.Errorf("resumed at step %d with first step %d; want the checkpoint of step 8 and step 9 next", resumedAt, first)
	}
	if got := readResults(t, out); !bytes.Equal(got, want) {
		t.Errorf("resumed recovery differs from an uninterrupted one:\n%s\nwant\n%s", got, want)
	}
}
