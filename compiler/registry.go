package compiler

import (
	"fmt"
	"slices"
	"strings"

	"lrmc/methods/spec"
)

// A registry lists the names a recipe may use for one kind of thing, and
// which of them lrmc implements. Adding a task or format is adding a row
// here (and its implementation elsewhere); methods register themselves
// (lrmc/methods/spec), so adding one touches only its own package.
type registry struct {
	kind    string // "method", "task", ...
	plural  string
	built   []string
	planned []string
}

var (
	// evalTasks are the tasks that are not defined as data: perplexity,
	// and the planned ones. Each compilation adds the multiple-choice
	// tasks of #Tasks and of the recipe's tasks (compiler.tasks).
	evalTasks = registry{
		kind: "task", plural: "tasks",
		built: []string{"perplexity"},
	}
	outputFormats = registry{
		kind: "output format", plural: "output formats",
		// slicegpt is lrmc's own layout of width/slicegpt's sliced models
		// (kernels/slicegpt), the only format that holds them.
		built: []string{"llama2c", "hf", "gguf", "slicegpt"},
	}
	modelFormats = registry{
		kind: "model format", plural: "model formats",
		built: []string{"auto", "llama2c", "hf", "gguf"},
	}
	dataFormats = registry{
		kind: "data format", plural: "data formats",
		built: []string{"text", "jsonl", "chat", "instruction"},
	}
	// recoveryMethods train the pruned model: "lora" low-rank adapters,
	// "full" every weight; "none" leaves it as pruning left it.
	recoveryMethods = registry{
		kind: "recovery method", plural: "recovery methods",
		built: []string{"none", "lora", "full"},
	}
	// losses are the training objectives of recovery: next-token
	// cross-entropy, or distillation from the run's unpruned model.
	losses = registry{
		kind: "loss", plural: "losses",
		built: []string{"lm", "kd"},
	}
	// schedules shape the learning rate after warmup.
	schedules = registry{
		kind: "schedule", plural: "schedules",
		built: []string{"cosine", "constant"},
	}
	// loraTargets are the projections LoRA can adapt, named as PEFT's
	// target_modules shorten them: attention's q, k, v, o and the MLP's
	// gate, up, down.
	loraTargets = registry{
		kind: "LoRA target", plural: "LoRA targets",
		built: []string{"q", "k", "v", "o", "gate", "up", "down"},
	}
	// archs are the layouts a synthetic model can take.
	archs = registry{
		kind: "architecture", plural: "architectures",
		built: []string{"llama", "qwen2", "qwen3", "mistral"},
	}
)

// paradigms are the values of prune.paradigm: those of the registered
// methods (lrmc/methods/spec), and "none", which evaluates the model as it
// is and takes no method.
func paradigms() []string { return append(spec.Paradigms(), "none") }

// templates are the values of data.template: "none" reads documents as
// they are, "model" renders them with the model's own chat template.
var templates = []string{"none", "model"}

// dtypes are the weight types of hf and gguf exports.
var dtypes = []string{"float32", "bfloat16", "float16"}

// computes are the arithmetic of a model's matrix products.
var computes = []string{"f32", "bf16"}

// check returns "" when name is built, else the message to report.
func (r registry) check(name string) string {
	if slices.Contains(r.built, name) {
		return ""
	}
	builtList := fmt.Sprintf("built %s: %s", r.plural, strings.Join(r.built, ", "))
	if slices.Contains(r.planned, name) {
		return fmt.Sprintf("%s %q is not built yet; %s", r.kind, name, builtList)
	}
	msg := fmt.Sprintf("unknown %s %q; %s", r.kind, name, builtList)
	if len(r.planned) > 0 {
		msg += "; planned: " + strings.Join(r.planned, ", ")
	}
	return msg
}

// checkMethod is check for a method within its paradigm, worded with the
// paradigm apart: `method "sleb" (depth) is not built yet`.
func checkMethod(paradigm, method string) string {
	built, planned := spec.Keys(false), spec.Keys(true)
	builtList := "built methods: " + strings.Join(built, ", ")
	s, ok := spec.Lookup(paradigm, method)
	switch {
	case ok && !s.Planned:
		return ""
	case ok:
		return fmt.Sprintf("method %q (%s) is not built yet; %s", method, paradigm, builtList)
	case len(planned) == 0:
		return fmt.Sprintf("unknown method %q; %s", method, builtList)
	default:
		return fmt.Sprintf("unknown method %q; %s; planned: %s", method, builtList, strings.Join(planned, ", "))
	}
}
