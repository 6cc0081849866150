package dynamic

import (
	"context"
	"fmt"

	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/planner"
)

// model hands the routed model to evaluation and export: the base model,
// with stage 2's LoRA adapters merged when there is a stage 2, the
// routers, and the calibration text, which speed measurement runs (routers
// decide by content: on random tokens they skip what they would not skip
// on text). Inputs: model, calibration windows, stage 1, [stage 2]. Not
// cached: a merge is cheap beside training, and without LoRA it is a view.
type model struct{ ops.Ephemeral }

func (model) Version() int { return 1 }

func (model) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p ModelParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	base, err := ops.Input[*ops.Model](c, 0)
	if err != nil {
		return nil, err
	}
	if base.LM == nil {
		return nil, fmt.Errorf("dynamic pruning routes a Llama model; input 0 holds none")
	}
	w, err := ops.Input[ops.Tokens](c, 1)
	if err != nil {
		return nil, err
	}
	t, err := ops.Input[Trained](c, 2)
	if err != nil {
		return nil, err
	}
	out := &ops.Model{LM: base.LM, HF: base.HF, GGUF: base.GGUF}
	if p.LoRA {
		t2, err := ops.Input[Trained](c, 3)
		if err != nil {
			return nil, err
		}
		// Stage 2's adapters are recovery's LoRA blob: merged by the
		// recovery's own op (PEFT's merge_and_unload).
		merge := ops.Registry()[planner.OpModelRecovered]
		merged, err := merge.Run(ctx, &executor.Call{Node: c.Node, Inputs: []any{base, ops.Recovered{Method: "lora", Blob: t2.LoRA}}, Log: c.Log})
		if err != nil {
			return nil, fmt.Errorf("merging stage 2's adapters: %w", err)
		}
		out = merged.(*ops.Model)
	}
	cfg := out.LM.Config
	if err := t.Routers.Validate(cfg.Layers, cfg.Dim); err != nil {
		return nil, err
	}
	out.Routers, out.Text = t.Routers, w.IDs
	return out, nil
}
