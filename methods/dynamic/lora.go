package dynamic

import (
	"context"
	"fmt"

	"lrmc/executor"
	"lrmc/executor/ops"
)

// trainLoRA is stage 2: LoRA adapters on every projection trained with the
// routers frozen in evaluation mode (their deterministic decisions gate
// the blocks, no noise). Inputs: model, calibration windows, stage 1.
// Checkpointed like stage 1.
type trainLoRA struct{ trainedCodec }

func (trainLoRA) Version() int { return 1 }

func (trainLoRA) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p LoRAParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	m, err := ops.Input[*ops.Model](c, 0)
	if err != nil {
		return nil, err
	}
	w, err := windowsOf(c, 1, p.Samples, p.SeqLen)
	if err != nil {
		return nil, err
	}
	t, err := ops.Input[Trained](c, 2)
	if err != nil {
		return nil, err
	}
	_, _, _ = m, w, t
	return nil, fmt.Errorf("dynamic: stage-2 training is not merged yet")
}
