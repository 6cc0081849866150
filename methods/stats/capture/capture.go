// Package capture is a shared statistic: the hidden states of the
// calibration windows entering each block of the dense model, as a chain
// of cached nodes (embeddings, then block 0's output, ...). Every method
// that needs activations asks for them here, so equal calibration shares
// one chain, and a method change reuses it.
package capture

import (
	"context"
	"fmt"

	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/kernels/llama"
	"lrmc/methods"
	"lrmc/planner"
)

const (
	// OpEmbed is the hidden state entering block 0.
	OpEmbed = "capture.embed"
	// OpBlock is the hidden state leaving block Layer, computed from the
	// one entering it: a prefix chain that methods share.
	OpBlock = "capture.block"
)

// EmbedParams: inputs are the model and the calibration windows.
type EmbedParams struct {
	Samples int `json:"samples"`
	SeqLen  int `json:"seqLen"`
}

// BlockParams: inputs are the model and the hidden state entering Layer.
type BlockParams struct {
	Layer   int `json:"layer"`
	Samples int `json:"samples"`
	SeqLen  int `json:"seqLen"`
}

func init() {
	methods.Register(methods.Unit{Ops: map[string]executor.Op{OpEmbed: embed{}, OpBlock: block{}}})
}

// Embed plans the hidden state entering block 0 for the run's calibration
// windows. Capture nodes are keyed by the model, the windows and the
// layer, so every method and every run with the same calibration shares
// them.
func Embed(mp *planner.MethodPlan, windows *planner.Node) *planner.Node {
	c := mp.Run.Calibration
	return mp.Add(OpEmbed, EmbedParams{Samples: c.Samples, SeqLen: c.SeqLen}, "capture embeddings", mp.Model, windows)
}

// Next plans the hidden state leaving block layer, from in, the state
// entering it.
func Next(mp *planner.MethodPlan, in *planner.Node, layer int) *planner.Node {
	c := mp.Run.Calibration
	return mp.Add(OpBlock, BlockParams{Layer: layer, Samples: c.Samples, SeqLen: c.SeqLen},
		fmt.Sprintf("capture block %d", layer), mp.Model, in)
}

// Input plans the hidden state entering block layer: the embeddings for
// block 0, else the chain of blocks before it.
func Input(mp *planner.MethodPlan, windows *planner.Node, layer int) *planner.Node {
	h := Embed(mp, windows)
	for i := range layer {
		h = Next(mp, h, i)
	}
	return h
}

// batch is how many calibration sequences go through a block at once:
// small enough to bound the attention and MLP buffers and to report
// progress, and fixed, so results never depend on it being tuned.
const batch = 4

// embed records the hidden state entering block 0. Inputs: model,
// calibration windows.
type embed struct{ ops.HiddenCodec }

func (embed) Version() int { return 1 }

func (embed) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p EmbedParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	model, err := ops.Input[*ops.Model](c, 0)
	if err != nil {
		return nil, err
	}
	m := model.LM
	w, err := ops.Input[ops.Tokens](c, 1)
	if err != nil {
		return nil, err
	}
	if w.Rows != p.Samples || w.Cols != p.SeqLen {
		return nil, fmt.Errorf("calibration windows are %d×%d, planned %d×%d", w.Rows, w.Cols, p.Samples, p.SeqLen)
	}
	dim := m.Config.Dim
	out := make([]float32, len(w.IDs)*dim)
	m.Embed(w.IDs, out)
	return ops.Hidden{Data: out, Rows: len(w.IDs), Dim: dim}, nil
}

// block records the hidden state leaving block Layer. Inputs: model, the
// hidden state entering that block.
type block struct{ ops.HiddenCodec }

func (block) Version() int { return 1 }

func (block) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p BlockParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	model, err := ops.Input[*ops.Model](c, 0)
	if err != nil {
		return nil, err
	}
	m := model.LM
	h, err := ops.Input[ops.Hidden](c, 1)
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
	// One workspace for all batches: the block's buffers at 4 sequences
	// are too large for llama's shared pool to keep between calls.
	ws := new(llama.Workspace)
	for s := 0; s < p.Samples; s += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b := min(batch, p.Samples-s)
		m.BlockInto(ws, out[s*seq:(s+b)*seq], p.Layer, h.Data[s*seq:(s+b)*seq], b, p.SeqLen)
		c.Progress(int64(s+b), int64(p.Samples))
	}
	// The capture walks the blocks in order: a memory-mapped checkpoint's
	// block need not stay resident once its output is recorded, so the
	// walk holds one block's weights at a time (a hint; values unchanged).
	m.EvictLayer(p.Layer)
	return ops.Hidden{Data: out, Rows: h.Rows, Dim: dim}, nil
}
