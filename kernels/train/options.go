package train

import (
	"fmt"

	"lrmc/kernels/train/optim"
)

// Module is an extra trainable component that lives beside the model (a
// dynamic-pruning router, say). Its parameters join the Net's: the optimizer
// updates them, and clipping and checkpoints include them. A plain Module
// is not called during the forward pass and computes its own gradients
// into Param.Grad; a Gate (WithGate) is called in every block.
type Module interface {
	Params() []*optim.Param
}

// Objective weighs the two losses. Both are means over the positions whose
// target is not negative.
type Objective struct {
	CE float32 // weight of next-token cross-entropy
	KL float32 // weight of distillation KL(teacher ‖ student)
	// Temperature softens both distributions in the KL term, which is then
	// scaled by Temperature² (Hinton et al.) so its gradient keeps its size.
	// Zero means 1.
	Temperature float32
}

func (o Objective) temperature() float32 {
	if o.Temperature == 0 {
		return 1
	}
	return o.Temperature
}

// Option configures New and PeakBytes.
type Option func(*options)

type options struct {
	full      bool
	lora      *LoRAConfig
	objective Objective
	logitRows int
	modules   []Module
	gemm      bool
	attnCache bool
	actsCache bool
	gate      Gate // nil: no gating
	gates     int  // WithGate calls
}

// FullFineTune makes every weight of the model trainable (for small models:
// it allocates a gradient buffer, and AdamW two moments, per weight).
func FullFineTune() Option { return func(o *options) { o.full = true } }

// WithLoRA adds LoRA adapters as c describes.
func WithLoRA(c LoRAConfig) Option { return func(o *options) { o.lora = &c } }

// WithObjective sets the loss; the default is cross-entropy alone.
func WithObjective(obj Objective) Option { return func(o *options) { o.objective = obj } }

// WithLogitRows sets how many positions go through the classifier at once
// (default 64): the logits buffer is rows × Vocab floats, whatever the batch.
func WithLogitRows(rows int) Option { return func(o *options) { o.logitRows = rows } }

// WithGEMM computes every matrix product with kernels/gemm's packed
// assembly kernels instead of the pure-Go tensor.MatMul that llama's prefill
// uses, attention in causal blocks with its (sequence, head) jobs in
// parallel, and the softmax and SiLU exponentials with tensor.FastExp32
// (within 2 ulps): an order of magnitude faster, as deterministic (any
// GOMAXPROCS gives the same bits), but rounded differently from the
// inference forward.
func WithGEMM() Option { return func(o *options) { o.gemm = true } }

// WithAttentionCache keeps every block's attention probabilities from the
// forward pass for its backward pass, Layers·b·Heads·t² floats, instead of
// recomputing them: the recompute before each block's backward then skips
// the scores and the softmax (its exponentials are most of the cost of
// small models' training). Results are bit for bit those without the
// cache. It needs WithGEMM.
func WithAttentionCache() Option { return func(o *options) { o.attnCache = true } }

// WithActivationCache keeps every block's activations from the forward
// pass for its backward pass (about n·(6·Dim + 3·QDim + 4·HiddenDim) floats
// per block for n = b·t positions) instead of recomputing the block before
// its backward: a third of the projections' products, and without
// WithAttentionCache the attention scores and softmax are still
// recomputed. Results are bit for bit those without the cache. It needs
// WithGEMM and no gate (a gate is called again when a block is
// recomputed).
func WithActivationCache() Option { return func(o *options) { o.actsCache = true } }

// WithModules adds extra trainable modules.
func WithModules(ms ...Module) Option {
	return func(o *options) { o.modules = append(o.modules, ms...) }
}

func buildOptions(opts []Option) (options, error) {
	o := options{objective: Objective{CE: 1}, logitRows: 64}
	for _, f := range opts {
		f(&o)
	}
	if o.logitRows <= 0 {
		return o, fmt.Errorf("train: logit rows is %d, must be positive", o.logitRows)
	}
	if err := checkGate(o); err != nil {
		return o, err
	}
	if o.attnCache && !o.gemm {
		return o, fmt.Errorf("train: the attention cache needs WithGEMM")
	}
	if o.actsCache && !o.gemm {
		return o, fmt.Errorf("train: the activation cache needs WithGEMM")
	}
	if o.actsCache && o.gate != nil {
		return o, fmt.Errorf("train: the activation cache cannot be used with a gate")
	}
	if o.objective.temperature() <= 0 {
		return o, fmt.Errorf("train: temperature is %g, must be positive", o.objective.Temperature)
	}
	if o.lora != nil {
		if err := o.lora.validate(); err != nil {
			return o, err
		}
	}
	for i, m := range o.modules {
		for _, p := range m.Params() {
			if p.Name == "" || len(p.Grad) != len(p.Data) {
				return o, fmt.Errorf("train: module %d: parameter %q has %d values and %d gradients; it needs a name and one gradient per value",
					i, p.Name, len(p.Data), len(p.Grad))
			}
		}
	}
	return o, nil
}
