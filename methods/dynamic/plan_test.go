package dynamic_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"lrmc/cache"
	"lrmc/compiler"
	"lrmc/executor/ops"
	"lrmc/internal/shareddata"
	_ "lrmc/methods/all"
	"lrmc/methods/dynamic"
	"lrmc/planner"
)

// head is a stories260K recipe's shared part: calibration (what the
// routers train on), held-out perplexity and the exports.
func head(t *testing.T) string {
	model := shareddata.Path(t, "models", "stories260K", "stories260K.bin")
	text := shareddata.Path(t, "text", "tinystories", "tinystories_val.txt")
	return `model: path: "` + model + `"
calibration: {data: {path: "` + text + `", format: "text", split: {from: 0, to: 0.9}}, samples: 16, seqLen: 64, seed: 1}
eval: [{task: "perplexity", data: {path: "` + text + `", format: "text", split: {from: 0.9, to: 1}}, samples: 4, seqLen: 64}]
dense: false
output: {dir: "out", formats: ["llama2c", "hf"]}
`
}

func plan(t *testing.T, recipe string) *planner.Graph {
	t.Helper()
	path := filepath.Join(t.TempDir(), "d.cue")
	if err := os.WriteFile(path, []byte(recipe), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := compiler.Compile(path)
	if err != nil {
		t.Fatal(err)
	}
	store, err := cache.Open(t.TempDir(), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	g, err := planner.Plan(r, &ops.Env{Files: store})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// nodes returns the graph's nodes of op used by run.
func nodes(g *planner.Graph, op, run string) []*planner.Node {
	var out []*planner.Node
	for _, n := range g.Nodes {
		if n.Op == op && slices.Contains(n.Runs, run) {
			out = append(out, n)
		}
	}
	return out
}

func one(t *testing.T, g *planner.Graph, op, run string) *planner.Node {
	t.Helper()
	ns := nodes(g, op, run)
	if len(ns) != 1 {
		t.Fatalf("run %s has %d %s nodes, want 1", run, len(ns), op)
	}
	return ns[0]
}

// Keys: a ratio sweep shares the calibration tokens and windows and trains
// routers per ratio; runs that differ only in stage 2 share stage 1;
// defaults (the study's lr 2e-3, λ = 20) reach the params, and λ only
// SkipGPT's.
func TestPlanKeys(t *testing.T) {
	g := plan(t, head(t)+`runs: {
	"mod-2": prune: {paradigm: "dynamic", method: "mod", ratio: 0.2}
	"mod-4": prune: {paradigm: "dynamic", method: "mod", ratio: 0.4}
	"skip-4": prune: {paradigm: "dynamic", method: "skipgpt", ratio: 0.4, routerSteps: 10}
	"skip-4-lora": prune: {paradigm: "dynamic", method: "skipgpt", ratio: 0.4, routerSteps: 10, loraSteps: 5}
	"skip-4-lora-lr": prune: {paradigm: "dynamic", method: "skipgpt", ratio: 0.4, routerSteps: 10, loraSteps: 5, loraLR: 1e-3}
	"dllm-4": prune: {paradigm: "dynamic", method: "dllm", ratio: 0.4}
}
`)
	w2, w4 := one(t, g, planner.OpCalibWindows, "mod-2"), one(t, g, planner.OpCalibWindows, "mod-4")
	if w2 != w4 || len(nodes(g, planner.OpCalibWindows, "skip-4")) != 1 || len(nodes(g, planner.OpTokens, "mod-2")) != 2 {
		t.Error("the ratio sweep does not share one set of calibration windows and tokens")
	}
	r2, r4 := one(t, g, dynamic.OpRouters, "mod-2"), one(t, g, dynamic.OpRouters, "mod-4")
	if r2 == r4 {
		t.Error("two ratios share one router training")
	}
	var p dynamic.RoutersParams
	json.Unmarshal(r2.Params, &p)
	want := dynamic.RoutersParams{Method: "mod", Skip: 0.2, Steps: dynamic.DefaultRouterSteps, Batch: dynamic.DefaultRouterBatch,
		LR: 2e-3, Seed: 1, Samples: 16, SeqLen: 64}
	if p != want {
		t.Errorf("mod-2 stage 1: %+v, want %+v", p, want)
	}
	if r2.Inputs[1] != w2 {
		t.Error("stage 1 does not train on the calibration windows")
	}
	s := one(t, g, dynamic.OpRouters, "skip-4")
	json.Unmarshal(s.Params, &p)
	if p.Lambda != 20 || p.Steps != 10 {
		t.Errorf("skipgpt stage 1: %+v, want λ 20 and 10 steps", p)
	}
	json.Unmarshal(one(t, g, dynamic.OpRouters, "dllm-4").Params, &p)
	if p.Lambda != 1 || p.DenseFirst != 2 {
		t.Errorf("dllm stage 1: %+v, want its reference's α 1 and 2 dense first blocks", p)
	}
	for _, run := range []string{"skip-4-lora", "skip-4-lora-lr"} {
		if one(t, g, dynamic.OpRouters, run) != s {
			t.Errorf("%s retrains stage 1 although only stage 2 differs", run)
		}
	}
	if nodes(g, dynamic.OpLoRA, "skip-4") != nil {
		t.Error("loraSteps 0 planned a stage 2")
	}
	l1, l2 := one(t, g, dynamic.OpLoRA, "skip-4-lora"), one(t, g, dynamic.OpLoRA, "skip-4-lora-lr")
	var lp dynamic.LoRAParams
	json.Unmarshal(l1.Params, &lp)
	if l1 == l2 || lp.LR != 2e-4 || lp.Rank != 8 || lp.Steps != 5 || l1.Inputs[2] != s {
		t.Errorf("stage 2: %+v (shared with another lr: %v)", lp, l1 == l2)
	}
	// The routed model feeds perplexity; the last stage is the decision.
	m := one(t, g, dynamic.OpModel, "skip-4-lora")
	if len(m.Inputs) != 4 || m.Inputs[1] != one(t, g, planner.OpCalibWindows, "skip-4-lora") || m.Inputs[3] != l1 {
		t.Errorf("the routed model's inputs are %d, want model, calibration windows, stage 1, stage 2", len(m.Inputs))
	}
	if ppl := one(t, g, planner.OpPerplexity, "skip-4-lora"); ppl.Inputs[0] != m {
		t.Error("perplexity does not evaluate the routed model")
	}
	if met := one(t, g, planner.OpMetrics, "skip-4-lora"); !slices.Contains(met.Inputs, l1) {
		t.Error("stage 2 does not report to the run's metrics")
	}
}

// Outputs: the routers and their configuration beside model.bin, and
// inside the Hugging Face directory (its own export).
func TestPlanOutputs(t *testing.T) {
	g := plan(t, head(t)+`runs: "dllm-4": prune: {paradigm: "dynamic", method: "dllm", ratio: 0.4}
`)
	paths := map[string]string{}
	for _, o := range g.Outputs {
		if o.Node != nil {
			paths[o.Path] = o.Node.Op
		}
	}
	for path, op := range map[string]string{
		"dllm-4/model.bin": planner.OpExportLlama2c, "dllm-4/hf": dynamic.OpHF,
		"dllm-4/routers.safetensors": dynamic.OpFiles, "dllm-4/routers.json": dynamic.OpFiles,
	} {
		if paths[path] != op {
			t.Errorf("output %s is written by %q, want %s (outputs %v)", path, paths[path], op, paths)
		}
	}
	for p := range paths {
		if strings.HasPrefix(p, "dllm-4/") && strings.Contains(p, "adapter") {
			t.Errorf("a dynamic run writes a recovery adapter: %s", p)
		}
	}
}

// Vet, and planning after it, reject what needs the model's shape or the
// calibration, at the field: more dense first blocks than the model has, a
// batch larger than the calibration.
func TestShapeErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.cue")
	os.WriteFile(path, []byte(head(t)+`runs: {
	a: prune: {paradigm: "dynamic", method: "dllm", ratio: 0.4, denseFirst: 5}
	b: prune: {paradigm: "dynamic", method: "mod", ratio: 0.4, routerBatch: 17}
}
`), 0o644)
	err := compiler.Vet(path)
	for _, want := range []string{
		`runs."a".prune.denseFirst: denseFirst 5 leaves none of the model's 5 blocks to route`,
		`runs."b".prune.routerBatch: routerBatch 17 exceeds the 16 calibration windows the routers train on`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("vet: %v\nwant %q", err, want)
		}
	}
}
