// Package dynamic is the dynamic-pruning paradigm: per-token routers that
// decide, for every token, whether a block (D-LLM) or its attention and MLP
// (MoD, SkipGPT) run, with the skipped computation really skipped at
// evaluation (kernels/dynamic). Each method is its own package below this
// one (mod, dllm, skipgpt) and registers itself with Register; they share
// the recipe fields, the planning and the ops here:
//
//   - dynamic.routers (stage 1): the routers trained on the calibration
//     windows with the base model frozen; checkpointed, so an interrupted
//     training resumes bit for bit. Keyed by the model, the windows and
//     the stage-1 fields, so a sweep over stage-2 settings reuses it.
//   - dynamic.lora (stage 2, when loraSteps > 0): LoRA adapters trained
//     with the routers frozen in evaluation mode (deterministic decisions).
//   - dynamic.model: the base model (LoRA merged) with its routers, which
//     perplexity and speed evaluate with the compute-skipping forward
//     passes (not cached: a view).
//   - export.dynamic-hf and dynamic.files: routers.safetensors and
//     routers.json beside the exported weights.
//
// The calibration windows and their tokens are keyed without the ratio,
// so a ratio sweep tokenizes and cuts them once.
package dynamic

import (
	"fmt"

	"lrmc/compiler/ir"
	"lrmc/executor"
	kdyn "lrmc/kernels/dynamic"
	"lrmc/methods"
	"lrmc/methods/spec"
	"lrmc/planner"
)

// The paradigm's ops.
const (
	OpRouters = "dynamic.routers"
	OpLoRA    = "dynamic.lora"
	OpModel   = "dynamic.model"
	OpHF      = "export.dynamic-hf"
	OpFiles   = "dynamic.files"
)

func init() {
	methods.Register(methods.Unit{Ops: map[string]executor.Op{
		OpRouters: trainRouters{}, OpLoRA: trainLoRA{}, OpModel: model{}, OpHF: exportHF{}, OpFiles: files{},
	}})
}

// Field names, as recipes write them under prune.
const (
	FieldRatio           = "ratio"
	FieldRouterSteps     = "routerSteps"
	FieldRouterBatch     = "routerBatch"
	FieldRouterLR        = "routerLR"
	FieldRouterSeed      = "routerSeed"
	FieldLambda          = "lambda"
	FieldLoRASteps       = "loraSteps"
	FieldLoRALR          = "loraLR"
	FieldLoRARank        = "loraRank"
	FieldCheckpointEvery = "checkpointEvery"
	FieldDenseFirst      = "denseFirst"
)

// Defaults from the study's SkipGPT recipe (stage 1 lr 2e-3 with λ = 20,
// stage 2 LoRA lr 2e-4); MoD and D-LLM train their routers with the same
// settings so the three compare at equal budgets.
const (
	DefaultRouterSteps = 100
	DefaultRouterBatch = 8
	DefaultRouterLR    = 2e-3
	DefaultLoRALR      = 2e-4
	DefaultLoRARank    = 8
)

// fields are every dynamic method's recipe fields; Lambda is added by the
// methods with a ratio loss.
func fields() []spec.Field {
	return []spec.Field{
		{Name: FieldRatio, CUE: "number & >0 & <1", Kind: "float",
			Doc: "target skip ratio s: the fraction of the routed computation skipped (MoD keeps k = max(1, ⌊(1−s)·T⌋) tokens)"},
		{Name: FieldRouterSteps, CUE: "int & >=1", Default: DefaultRouterSteps, Doc: "stage 1: optimizer steps training the routers (base frozen)"},
		{Name: FieldRouterBatch, CUE: "int & >=1", Default: DefaultRouterBatch, Doc: "calibration windows per training step (stages 1 and 2)"},
		{Name: FieldRouterLR, CUE: "number & >0", Default: DefaultRouterLR, Doc: "stage 1: the routers' learning rate (AdamW)"},
		{Name: FieldRouterSeed, CUE: "int & >=0", Default: 1, Doc: "seeds the routers' initialization, the Gumbel noise and the window order"},
		{Name: FieldLoRASteps, CUE: "int & >=0", Default: 0, Doc: "stage 2: LoRA steps with the routers frozen (0: routers only)"},
		{Name: FieldLoRALR, CUE: "number & >0", Default: DefaultLoRALR, Doc: "stage 2: the LoRA adapters' learning rate"},
		{Name: FieldLoRARank, CUE: "int & >=1", Default: DefaultLoRARank, Doc: "stage 2: LoRA rank on every projection (alpha = 2·rank)"},
		{Name: FieldCheckpointEvery, CUE: "int & >=0", Default: 0, Doc: "save training state every so many steps (0: a tenth of the steps)"},
	}
}

// Lambda is the weight of a method's compute-ratio loss, with the
// method's default: SkipGPT's λ in LM + λ·|(1−s) − mean execute
// probability| (20), D-LLM's α in LM + α·mean over tokens of |executed
// fraction of layers − (1−s)| (1, its reference's lambda_active). MoD has
// none: top-k fixes its ratio.
func Lambda(def float64) spec.Field {
	return spec.Field{Name: FieldLambda, CUE: "number & >0", Default: def,
		Doc: "weight of the compute-ratio loss (SkipGPT's λ, default 20; D-LLM's α, default 1)"}
}

// DenseFirst keeps a method's first blocks without routers, with the
// method's default: D-LLM's reference routes from block 2 on (its
// dynamic_start_layer); SkipGPT routes every block. MoD's first and last
// blocks are always dense.
func DenseFirst(def int) spec.Field {
	return spec.Field{Name: FieldDenseFirst, CUE: "int & >=0", Default: def,
		Doc: "the first blocks always run, without routers (D-LLM's default 2, as its reference; SkipGPT's 0)"}
}

// Register registers dynamic method m under paradigm dynamic, with the
// shared fields and extra ones (Lambda, DenseFirst).
func Register(m kdyn.Method, extra ...spec.Field) {
	methods.Register(methods.Unit{
		Spec: &spec.Spec{Paradigm: "dynamic", Name: string(m), Calibration: true,
			Fields: append(fields(), extra...), Check: checkRatio(m), RunCheck: checkRun(m),
			CheckShape: func(p ir.Prune, sh spec.Shape, report func(field, format string, args ...any)) {
				checkShape(m, p, sh.Blocks, report)
			}},
		Plan: func(mp *planner.MethodPlan) *planner.Pruned { return plan(mp, m) },
	})
}

func checkRatio(m kdyn.Method) func(o ir.Options, report func(field, format string, args ...any)) {
	return func(o ir.Options, report func(field, format string, args ...any)) {
		if _, ok := o[FieldRatio]; !ok {
			report(FieldRatio, "dynamic/%s needs ratio, the target fraction of computation skipped", m)
		}
	}
}

// checkRun rejects what a routed model cannot go through: recovery trains
// the dense weights without the routers (a dynamic method trains its own
// stage-2 LoRA with them: loraSteps). Every evaluation runs the routed
// model: perplexity and speed with the compute-skipping passes,
// multiple-choice scoring with the routed forward pass (unbatched),
// generation with the compute-skipping decoder. A training batch needs as
// many calibration windows.
func checkRun(m kdyn.Method) func(run ir.Run, report func(field, format string, args ...any)) {
	return func(run ir.Run, report func(field, format string, args ...any)) {
		if rm := run.Recovery.Method; rm != "" && rm != "none" {
			report("recovery.method", "recovery %q trains the weights without the routers; dynamic/%s trains its own stage-2 LoRA with the routers frozen: set prune.loraSteps", rm, m)
		}
		checkBatch(run, report)
	}
}

// checkBatch reports a training batch larger than the calibration: vet
// runs it (RunCheck), the plan again on the IR it is given.
func checkBatch(run ir.Run, report func(field, format string, args ...any)) bool {
	b, n := run.Prune.Options.Int(FieldRouterBatch), run.Calibration.Samples
	if n > 0 && b > n {
		report("prune."+FieldRouterBatch, "routerBatch %d exceeds the %d calibration windows the routers train on", b, n)
		return false
	}
	return true
}

// checkShape checks the prune settings against a model of blocks blocks:
// vet runs it on the shape read from the checkpoint's header
// (spec.Spec.CheckShape), the plan on the planner's, so both report the
// same message.
func checkShape(m kdyn.Method, p ir.Prune, blocks int, report func(field, format string, args ...any)) bool {
	if m == kdyn.MoD && blocks < 3 {
		report("prune.method", "MoD keeps the first and last blocks dense; the model has %d blocks, none left to route", blocks)
		return false
	}
	if d := p.Options.Int(FieldDenseFirst); d >= blocks {
		report("prune."+FieldDenseFirst, "denseFirst %d leaves none of the model's %d blocks to route", d, blocks)
		return false
	}
	return true
}

// RoutersParams are stage 1's. Inputs: model, calibration windows.
type RoutersParams struct {
	Method string  `json:"method"`
	Skip   float64 `json:"skip"`
	Steps  int     `json:"steps"`
	Batch  int     `json:"batch"`
	LR     float64 `json:"lr"`
	Seed   int64   `json:"seed"`
	// Lambda weighs the ratio loss and DenseFirst blocks run unrouted
	// (SkipGPT and D-LLM; absent for MoD).
	Lambda          float64 `json:"lambda,omitempty"`
	DenseFirst      int     `json:"denseFirst,omitempty"`
	CheckpointEvery int     `json:"checkpointEvery,omitempty"`
	// Samples × SeqLen is the windows' shape (checked).
	Samples int `json:"samples"`
	SeqLen  int `json:"seqLen"`
}

// LoRAParams are stage 2's. Inputs: model, calibration windows, stage 1.
type LoRAParams struct {
	Steps           int     `json:"steps"`
	Batch           int     `json:"batch"`
	LR              float64 `json:"lr"`
	Rank            int     `json:"rank"`
	Seed            int64   `json:"seed"`
	CheckpointEvery int     `json:"checkpointEvery,omitempty"`
	Samples         int     `json:"samples"`
	SeqLen          int     `json:"seqLen"`
}

// ModelParams: inputs are the model, the calibration windows (the text
// speed is measured on), stage 1 and, when LoRA, stage 2.
type ModelParams struct {
	LoRA bool `json:"lora,omitempty"`
}

func plan(mp *planner.MethodPlan, m kdyn.Method) *planner.Pruned {
	o := mp.Run.Prune.Options
	c := mp.Run.Calibration
	if !checkBatch(mp.Run, mp.Errorf) || !checkShape(m, mp.Run.Prune, mp.Info.Blocks, mp.Errorf) {
		return nil
	}
	batch := o.Int(FieldRouterBatch)
	windows := mp.Windows()
	if windows == nil {
		return nil
	}
	rp := RoutersParams{
		Method: string(m), Skip: o.Float(FieldRatio), Steps: o.Int(FieldRouterSteps), Batch: batch,
		LR: o.Float(FieldRouterLR), Seed: int64(o.Int(FieldRouterSeed)), CheckpointEvery: o.Int(FieldCheckpointEvery),
		Samples: c.Samples, SeqLen: c.SeqLen,
	}
	if _, ok := o[FieldLambda]; ok {
		rp.Lambda = o.Float(FieldLambda)
	}
	rp.DenseFirst = o.Int(FieldDenseFirst)
	stage1 := mp.Add(OpRouters, rp, fmt.Sprintf("%s: train routers s=%g, %d steps", m, rp.Skip, rp.Steps), mp.Model, windows)
	decision, inputs := stage1, []*planner.Node{mp.Model, windows, stage1}
	var mparams ModelParams
	if steps := o.Int(FieldLoRASteps); steps > 0 {
		lp := LoRAParams{Steps: steps, Batch: batch, LR: o.Float(FieldLoRALR), Rank: o.Int(FieldLoRARank),
			Seed: rp.Seed, CheckpointEvery: rp.CheckpointEvery, Samples: c.Samples, SeqLen: c.SeqLen}
		decision = mp.Add(OpLoRA, lp, fmt.Sprintf("%s: LoRA with routers s=%g, %d steps", m, rp.Skip, steps), mp.Model, windows, stage1)
		inputs = append(inputs, decision)
		mparams.LoRA = true
	}
	routed := mp.Add(OpModel, mparams, fmt.Sprintf("%s routed model s=%g", m, rp.Skip), inputs...)
	own, files := exports(mp, routed)
	return &planner.Pruned{Model: routed, Decision: decision, Exports: own, Files: files}
}
