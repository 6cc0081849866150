package bench

import (
	"fmt"
	"io"
	"time"

	"lrmc/kernels/llama"
)

// CaptureOptions says how to time calibration capture; zero fields take the
// defaults named beside them.
type CaptureOptions struct {
	Samples int // sequences in the batch (64)
	SeqLen  int // tokens per sequence (512)
	// Layers is how many blocks to time (1); the total is extrapolated to
	// all of the shape's blocks, which share one shape and so one cost.
	Layers  int
	Threads int // runtime.GOMAXPROCS during the run (1)
	// Batch is how many sequences go through a block at once (4, as the
	// capture.block op runs them: it bounds the block's buffers).
	Batch    int
	Progress io.Writer
}

func (o CaptureOptions) withDefaults() CaptureOptions {
	if o.Samples <= 0 {
		o.Samples = 64
	}
	if o.SeqLen <= 0 {
		o.SeqLen = 512
	}
	if o.Layers <= 0 {
		o.Layers = 1
	}
	if o.Threads <= 0 {
		o.Threads = 1
	}
	if o.Batch <= 0 {
		o.Batch = 4
	}
	return o
}

// CaptureResult is the cost of running a calibration batch through every
// block of a model, as activation capture does (the hidden state leaving
// block i enters block i+1); storing the activations is not included.
type CaptureResult struct {
	Shape       string `json:"shape"`
	Samples     int    `json:"samples"`
	SeqLen      int    `json:"seq_len"`
	Threads     int    `json:"threads"`
	Batch       int    `json:"batch"`
	LayersTimed int    `json:"layers_timed"`
	LayersTotal int    `json:"layers_total"`
	// SecondsPerLayer is the mean wall time of one block over the batch.
	SecondsPerLayer float64 `json:"seconds_per_layer"`
	// Seconds is SecondsPerLayer × LayersTotal: measured when every layer
	// was timed, else extrapolated.
	Seconds      float64 `json:"seconds"`
	Extrapolated bool    `json:"extrapolated"`
	TokensPerS   float64 `json:"tokens_per_s"` // batch tokens through all blocks per second
	GFLOPS       float64 `json:"gflops"`
}

// MeasureCapture builds s with only the blocks it times (the embedding table
// stays full size) and runs o.Samples sequences of o.SeqLen random tokens
// through them, o.Batch sequences per block call as capture.block does.
// The whole capture path (executor, cache writes, scores) is timed by
// methods/stats/capture's BenchmarkCaptureQwen3.
func MeasureCapture(s ModelShape, o CaptureOptions) (CaptureResult, error) {
	o = o.withDefaults()
	total := s.Spec.Layers
	spec := s.Spec
	spec.Layers = min(o.Layers, total)
	m, err := ModelShape{s.Name, spec}.Build()
	if err != nil {
		return CaptureResult{}, err
	}
	c := m.Config
	res := CaptureResult{Shape: s.Name, Samples: o.Samples, SeqLen: o.SeqLen, Threads: o.Threads, Batch: o.Batch,
		LayersTimed: spec.Layers, LayersTotal: total, Extrapolated: spec.Layers < total}
	tokens := randomTokens(o.Samples*o.SeqLen, c.Vocab, 9)
	var sum time.Duration
	withProcs(o.Threads, func() {
		h := m.Embed(tokens, nil)
		seq := o.SeqLen * c.Dim
		ws := new(llama.Workspace) // as capture.block carries one over its batches
		for i := range m.Layers {
			t0 := time.Now()
			out := make([]float32, len(h))
			for s := 0; s < o.Samples; s += o.Batch {
				b := min(o.Batch, o.Samples-s)
				m.BlockInto(ws, out[s*seq:(s+b)*seq], i, h[s*seq:(s+b)*seq], b, o.SeqLen)
			}
			h = out
			d := time.Since(t0)
			sum += d
			if o.Progress != nil {
				fmt.Fprintf(o.Progress, "bench: capture %s layer %d/%d (%d×%d tokens, t=%d): %.2fs\n",
					s.Name, i+1, spec.Layers, o.Samples, o.SeqLen, o.Threads, d.Seconds())
			}
		}
	})
	res.SecondsPerLayer = sum.Seconds() / float64(spec.Layers)
	res.Seconds = res.SecondsPerLayer * float64(total)
	tokensN := float64(o.Samples * o.SeqLen)
	res.TokensPerS = tokensN / res.Seconds
	perLayer := 2*float64(layerMatrixParams(c))*tokensN + float64(o.Samples)*attentionFLOPs(c, o.SeqLen)
	res.GFLOPS = perLayer / res.SecondsPerLayer / 1e9
	return res, nil
}
