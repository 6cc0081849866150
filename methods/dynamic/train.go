package dynamic

import (
	"context"
	"fmt"
	"time"

	"lrmc/executor"
	"lrmc/executor/ops"
	kdyn "lrmc/kernels/dynamic"
	"lrmc/kernels/llama"
	"lrmc/kernels/train"
	"lrmc/kernels/train/optim"
)

// stageInputs are a training stage's model (input 0, as the float32
// weights training works on) and calibration windows (input 1).
func stageInputs(c *executor.Call, samples, seqLen int) (*llama.Model, ops.Tokens, error) {
	m, err := ops.Input[*ops.Model](c, 0)
	if err != nil {
		return nil, ops.Tokens{}, err
	}
	if m.LM == nil {
		return nil, ops.Tokens{}, fmt.Errorf("dynamic pruning routes a Llama model; input 0 holds none")
	}
	w, err := ops.CalibrationWindows(c, 1, samples, seqLen)
	if err != nil {
		return nil, ops.Tokens{}, err
	}
	return m.LM.Float32(), w, nil
}

// stage trains net through gate g (the routers, training or frozen) at a
// constant learning rate with the gradients clipped, and returns every
// step's loss.
type stage struct {
	net                       *train.Net
	g                         *kdyn.Gate
	windows                   ops.Tokens
	batch, steps, every, seed int
	lr                        float64
}

// maxGradNorm clips both stages' gradients, as the study's trainers do.
const maxGradNorm = 1.0

func (s stage) run(ctx context.Context, c *executor.Call) ([]float64, error) {
	tr, err := train.NewTrainer(s.net, train.TrainerConfig{Schedule: optim.Constant{PeakLR: s.lr, Total: s.steps}, MaxGradNorm: maxGradNorm})
	if err != nil {
		return nil, err
	}
	l := loop{tr: tr, windows: s.windows, batch: s.batch, steps: s.steps, every: s.every, seed: s.seed,
		measure: func(m map[string]float64) { m["execute"] = s.g.ExecuteFraction() }}
	return l.run(ctx, c)
}

// loop is what the two training stages share: steps optimizer steps over
// batches of calibration windows, visited in a seeded order epoch after
// epoch, with the trainer's state and the losses so far saved to the
// cache every `every` steps (0: a tenth of the steps), so an interrupted
// stage resumes there and ends bit-identical to an uninterrupted one.
type loop struct {
	tr                        *train.Trainer
	windows                   ops.Tokens
	batch, steps, every, seed int
	// measure adds measurements of the step just taken to its report.
	measure func(m map[string]float64)
}

func (l loop) run(ctx context.Context, c *executor.Call) ([]float64, error) {
	var losses []float64
	start := 0
	if step, state, ok, err := c.Checkpoints.Load(); err != nil {
		return nil, err
	} else if ok {
		var ck ops.Checkpoint
		if err := ck.Unmarshal(state); err != nil {
			return nil, fmt.Errorf("checkpoint at step %d: %w", step, err)
		}
		if err := l.tr.UnmarshalBinary(ck.Trainer); err != nil {
			return nil, fmt.Errorf("checkpoint at step %d: %w", step, err)
		}
		start, losses = int(step), ck.Losses
		c.Log.Info("resuming training", "op", c.Node.Op, "step", start, "of", l.steps)
	}
	every := l.every
	if every <= 0 {
		every = max(1, l.steps/10)
	}
	w := l.windows
	order := ops.NewRowOrder(w.Rows, uint64(l.seed))
	tokensPerStep := float64(l.batch * w.Cols)
	for step := start; step < l.steps; step++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		bt := make([]int32, 0, l.batch*w.Cols)
		for e := range l.batch {
			r := order.Row(step*l.batch + e)
			bt = append(bt, w.IDs[r*w.Cols:(r+1)*w.Cols]...)
		}
		st, err := l.tr.Step([]train.Batch{{Tokens: bt, Targets: train.NextTokenTargets(bt, nil, l.batch, w.Cols)}})
		if err != nil {
			return nil, fmt.Errorf("step %d: %w", step, err)
		}
		losses = append(losses, st.Loss)
		m := map[string]float64{"loss": st.Loss, "lr": st.LR, "grad_norm": st.GradNorm, "tokens_per_s": tokensPerStep / time.Since(t0).Seconds()}
		if l.measure != nil {
			l.measure(m)
		}
		if c.Report != nil {
			c.Report(int64(step+1), int64(l.steps), m)
		}
		if (step+1)%every == 0 && step+1 < l.steps {
			state, err := l.tr.MarshalBinary()
			if err != nil {
				return nil, err
			}
			if err := c.Checkpoints.Save(int64(step+1), ops.Checkpoint{Trainer: state, Losses: losses}.Marshal()); err != nil {
				return nil, err
			}
		}
	}
	return losses, nil
}
