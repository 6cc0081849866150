package ops

import (
	"context"
	"fmt"

	"lrmc/executor"
	"lrmc/planner"
)

// captureBatch is how many calibration sequences go through a block at once:
// small enough to bound the attention and MLP buffers and to report
// progress, and fixed, so results never depend on it being tuned.
const captureBatch = 4

// captureEmbed records the hidden state entering block 0. Inputs: model,
// calibration windows.
type captureEmbed struct{ hiddenCodec }

func (captureEmbed) Version() int { return 1 }

func (captureEmbed) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.CaptureEmbedParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	model, err := input[*Model](c, 0)
	if err != nil {
		return nil, err
	}
	m := model.LM
	w, err := input[Tokens](c, 1)
	if err != nil {
		return nil, err
	}
	if w.Rows != p.Samples || w.Cols != p.SeqLen {
		return nil, fmt.Errorf("calibration windows are %d×%d, planned %d×%d", w.Rows, w.Cols, p.Samples, p.SeqLen)
	}
	dim := m.Config.Dim
	out := make([]float32, len(w.IDs)*dim)
	m.Embed(w.IDs, out)
	return Hidden{Data: out, Rows: len(w.IDs), Dim: dim}, nil
}

// captureBlock records the hidden state leaving block Layer. Inputs: model,
// the hidden state entering that block.
type captureBlock struct{ hiddenCodec }

func (captureBlock) Version() int { return 1 }

func (captureBlock) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.CaptureBlockParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	model, err := input[*Model](c, 0)
	if err != nil {
		return nil, err
	}
	m := model.LM
	h, err := input[Hidden](c, 1)
	if err != nil {
		return nil, err
	}
	dim := m.Config.Dim
	if h.Dim != dim || h.Rows != p.Samples*p.SeqLen {
		return nil, fmt.Errorf("block %d input is %d×%d, planned %d×%d", p.Layer, h.Rows, h.Dim, p.Samples*p.SeqLen, dim)
	}
	if p.Layer >= m.Config.Layers {
		return nil, fmt.Errorf("block %d does not exist in a model of %d blocks", p.Layer, m.Config.Layers)
	}
	out := make([]float32, len(h.Data))
	seq := p.SeqLen * dim
	for s := 0; s < p.Samples; s += captureBatch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b := min(captureBatch, p.Samples-s)
		res := m.Block(p.Layer, h.Data[s*seq:(s+b)*seq], b, p.SeqLen)
		copy(out[s*seq:], res)
		c.Progress(int64(s+b), int64(p.Samples))
	}
	return Hidden{Data: out, Rows: h.Rows, Dim: dim}, nil
}
