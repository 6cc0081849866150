package ops

import (
	"context"
	"fmt"

	"lrmc/executor"
	"lrmc/kernels/llama"
	"lrmc/kernels/llama2c"
	"lrmc/planner"
)

// modelLoad reads a checkpoint into memory. Inputs: model source, tokenizer
// source. Not cached: the checkpoint file is its own cache.
type modelLoad struct{ ephemeral }

func (modelLoad) Version() int { return 1 }

func (modelLoad) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.ModelLoadParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	path, err := input[string](c, 0)
	if err != nil {
		return nil, err
	}
	switch p.Format {
	case "llama2c":
		return llama2c.Load(path)
	}
	return nil, fmt.Errorf("%s: model format %q is not supported", path, p.Format)
}

// modelDepth applies a depth decision. Inputs: model, decision. Not cached:
// dropping blocks shares the weights and costs nothing.
type modelDepth struct{ ephemeral }

func (modelDepth) Version() int { return 1 }

func (modelDepth) Run(ctx context.Context, c *executor.Call) (any, error) {
	m, err := input[*llama.Model](c, 0)
	if err != nil {
		return nil, err
	}
	d, err := input[Decision](c, 1)
	if err != nil {
		return nil, err
	}
	if d.Blocks != m.Config.Layers {
		return nil, fmt.Errorf("decision is for a model of %d blocks, this one has %d", d.Blocks, m.Config.Layers)
	}
	return m.Keep(d.Kept)
}
