package dynamic

import (
	"context"

	"lrmc/executor"
	"lrmc/executor/ops"
	kdyn "lrmc/kernels/dynamic"
	"lrmc/kernels/train"
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
	lm, w, err := stageInputs(c, p.Samples, p.SeqLen)
	if err != nil {
		return nil, err
	}
	t, err := ops.Input[Trained](c, 2)
	if err != nil {
		return nil, err
	}
	fz, err := kdyn.Frozen(t.Routers)
	if err != nil {
		return nil, err
	}
	targets := make([]string, len(loraTargets))
	for i, n := range loraTargets {
		targets[i] = n + "_proj"
	}
	lc := train.LoRAConfig{Rank: p.Rank, Alpha: float64(2 * p.Rank), Targets: targets, Seed: uint64(p.Seed)}
	net, err := train.New(lm, p.Batch, p.SeqLen, train.WithGEMM(), train.WithLoRA(lc), train.WithGate(fz))
	if err != nil {
		return nil, err
	}
	losses, err := stage{net: net, g: fz, windows: w, batch: p.Batch, steps: p.Steps, every: p.CheckpointEvery, seed: int(p.Seed), lr: p.LR}.run(ctx, c)
	if err != nil {
		return nil, err
	}
	rec, err := ops.LoRARecovered(net, losses)
	if err != nil {
		return nil, err
	}
	return Trained{Routers: t.Routers, RouterLoss: t.RouterLoss, LoRA: rec.Blob, LoRALoss: losses}, nil
}

// loraTargets are the projections stage 2 adapts: every one, as the
// study's LoRA stage does.
var loraTargets = []string{"q", "k", "v", "o", "gate", "up", "down"}
