package ops

import (
	"context"
	"fmt"

	"lrmc/executor"
	"lrmc/kernels/dynamic"
	"lrmc/kernels/ggufmodel"
	"lrmc/kernels/hf"
	"lrmc/kernels/llama"
	"lrmc/kernels/llama2c"
	"lrmc/kernels/slicegpt"
	"lrmc/kernels/synth"
	"lrmc/planner"
)

// Model is a loaded model and what exports need of its source to write it
// back faithfully.
type Model struct {
	// LM is the model, nil when Sliced holds it instead.
	LM *llama.Model
	// Sliced is a SliceGPT-sliced model (width/slicegpt), which is not a
	// Llama model (shortcut matrices between blocks): only perplexity
	// evaluates it (the compiler rejects the rest), and LM is nil.
	Sliced *slicegpt.Model
	// Routers, when set, are LM's dynamic-pruning routers
	// (methods/dynamic): perplexity and speed run LM with its
	// compute-skipping forward passes; exports write the weights and the
	// methods' own ops write the routers beside them.
	Routers *dynamic.Routers
	// Text, for a routed model, is a stream of the text its routers were
	// trained on (the calibration windows in order), which speed is
	// measured on: routers decide by content.
	Text []int32
	// HF is the configuration of a Hugging Face or synthetic model.
	HF *hf.Config
	// GGUF is the metadata of a GGUF model (tokenizer included).
	GGUF *ggufmodel.Meta
}

// modelLoad reads a checkpoint into memory, or makes a synthetic one.
// Inputs: model source and tokenizer source (tokenizer only when
// synthetic). Not cached: the checkpoint file is its own cache, and a
// synthetic model is cheaper to make than to read back.
type modelLoad struct{ ephemeral }

func (modelLoad) Version() int { return 1 }

func (modelLoad) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.ModelLoadParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	m, err := loadModel(c, p)
	if err != nil || p.Compute == "" {
		return m, err
	}
	// The compute mode rides on the loaded model, so every op that runs it
	// (and whose key descends from this one) multiplies in bf16.
	lm, err := m.LM.WithCompute(llama.Compute(p.Compute))
	if err != nil {
		return nil, fmt.Errorf("model compute: %w", err)
	}
	m.LM = lm
	return m, nil
}

// loadModel reads or makes the model p names, with its weights as p.DType.
func loadModel(c *executor.Call, p planner.ModelLoadParams) (*Model, error) {
	if s := p.Synthetic; s != nil {
		m, cfg, err := synth.New(synth.Spec{
			Arch: s.Arch, Layers: s.Layers, Dim: s.Dim, Heads: s.Heads, KVHeads: s.KVHeads, HeadDim: s.HeadDim,
			FFN: s.FFN, Vocab: s.Vocab, SeqLen: s.SeqLen, Tie: s.Tie, Seed: uint64(s.Seed),
		})
		if err != nil {
			return nil, err
		}
		return withDType(&Model{LM: m, HF: cfg}, p.DType)
	}
	path, err := input[string](c, 0)
	if err != nil {
		return nil, err
	}
	switch p.Format {
	case "llama2c":
		m, err := llama2c.Load(path)
		if err != nil {
			return nil, err
		}
		return withDType(&Model{LM: m}, p.DType)
	case "hf":
		// 16-bit checkpoints load straight into 16-bit weights, never
		// through a float32 copy.
		m, cfg, err := hf.LoadDType(path, p.DType)
		if err != nil {
			return nil, err
		}
		return withRouters(path, &Model{LM: m, HF: cfg})
	case "gguf":
		m, meta, err := ggufmodel.LoadDType(path, p.DType)
		if err != nil {
			return nil, err
		}
		return &Model{LM: m, GGUF: meta}, nil
	}
	return nil, fmt.Errorf("%s: model format %q is not supported", path, p.Format)
}

// withDType converts a model's weights to the in-memory dtype ("" keeps
// float32).
func withDType(m *Model, dtype string) (*Model, error) {
	if dtype == "" {
		return m, nil
	}
	dt, err := llama.ParseDType(dtype)
	if err != nil {
		return nil, err
	}
	lm, err := m.LM.WithDType(dt)
	if err != nil {
		return nil, err
	}
	m.LM = lm
	return m, nil
}

// llamaInput is input i of a call as a *Model that holds a Llama model:
// a sliced model (SliceGPT) reaching an op other than perplexity is
// refused by name, not dereferenced. The compiler rejects such recipes
// first; this keeps a hand-built plan from crashing.
func llamaInput(c *executor.Call, i int) (*Model, error) {
	m, err := input[*Model](c, i)
	if err != nil {
		return nil, err
	}
	if m.LM == nil {
		if m.Sliced != nil {
			return nil, fmt.Errorf("%s needs a Llama model; input %d is a SliceGPT-sliced model, which only perplexity evaluates", c.Node.Op, i)
		}
		return nil, fmt.Errorf("%s: input %d holds no model", c.Node.Op, i)
	}
	return m, nil
}
