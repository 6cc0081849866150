package planner_test

import (
	"encoding/json"
	"testing"

	"lrmc/compiler/ir"
	"lrmc/planner"
)

// A LoRA adapter names as its base the hub repository when the run
// fine-tunes an unpruned hf: model (PEFT fetches it), and otherwise the
// exported base beside it.
func TestPEFTBaseName(t *testing.T) {
	for _, c := range []struct {
		model, paradigm, want string
	}{
		{"hf:Qwen/Qwen3-0.6B", "none", "Qwen/Qwen3-0.6B"},
		{"hf:Qwen/Qwen3-0.6B@v1", "none", "../base"},
		{"hf:Qwen/Qwen3-0.6B", "depth", "../base"},
		{"/m/model.bin", "none", "../base"},
	} {
		model := ir.Model{Path: c.model, Format: "auto"}
		data := ir.Data{Path: "/d/text.txt", Format: "text", Split: ir.Split{From: 0, To: 0.9}}
		run := ir.Run{Name: "r", Model: model,
			Calibration: ir.Calibration{Data: data, Samples: 8, SeqLen: 64, Seed: 1},
			Prune:       ir.Prune{Paradigm: c.paradigm},
			Recovery: ir.Recovery{Method: "lora", Data: data, Steps: 2, Batch: 1, SeqLen: 64, Accumulation: 1, LR: 1e-3,
				Schedule: "constant", Rank: 2, Alpha: 4, Targets: []string{"q"}, Loss: "lm", Seed: 1, CheckpointEvery: 1},
		}
		if c.paradigm == "depth" {
			run.Prune.Method, run.Prune.Remove = "shortgpt", 1
		}
		r := &ir.Recipe{File: "r.cue", Runs: []ir.Run{run}, Output: ir.Output{Dir: "/out"}}
		g, err := planner.Plan(r, keyEnv{})
		if err != nil {
			t.Fatalf("%s %s: %v", c.model, c.paradigm, err)
		}
		got := ""
		for _, n := range g.Nodes {
			if n.Op == planner.OpExportPEFT {
				var p planner.PEFTParams
				json.Unmarshal(n.Params, &p)
				got = p.Base
			}
		}
		if got != c.want {
			t.Errorf("%s %s: base_model_name_or_path %q, want %q", c.model, c.paradigm, got, c.want)
		}
	}
}
