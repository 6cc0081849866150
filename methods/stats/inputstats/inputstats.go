// Package inputstats is a shared statistic: per block of the dense model,
// the input statistics of its linear layers over the calibration windows
// (kernels/calibstats: Σx, Σx² per channel at the four input sites, and
// optionally XᵀX). Each block's statistics are one cached node computed
// from the dense capture chain's hidden state entering the block, keyed by
// the model, the calibration windows, the block and whether XᵀX is
// gathered, never by the method or the sparsity, so a sweep over ratios or
// patterns, and every method reading input norms or Hessians (Wanda,
// SparseGPT, Wanda-sp, FLAP), reuses them.
//
// Every block is measured on the dense model's activations (the "dense
// prefix"): the references of Wanda and SparseGPT instead re-run block i's
// calibration through the already pruned blocks before it, which would tie
// the statistics to one method and one ratio.
package inputstats

import (
	"context"
	"fmt"
	"os"

	"github.com/dustin/go-humanize"

	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/kernels/calibstats"
	"lrmc/methods"
	"lrmc/methods/stats/capture"
	"lrmc/planner"
)

// Op gathers one block's input statistics.
const Op = "stats.inputs"

// Params: inputs are the model and the dense hidden state entering Layer
// (capture's chain). All four sites are always gathered (their sums cost
// little); Hessian adds XᵀX.
type Params struct {
	Layer   int  `json:"layer"`
	Samples int  `json:"samples"`
	SeqLen  int  `json:"seqLen"`
	Hessian bool `json:"hessian"`
}

// MaxHessianEnv names the environment variable that bounds the memory of
// one block's XᵀX matrices ("8GiB", "512MiB", or bytes); by default
// calibstats.DefaultMaxHessianBytes. It is a resource limit, not part of
// any key: raising it never recomputes a cached statistic.
const MaxHessianEnv = "LRMC_MAX_HESSIAN_BYTES"

func init() {
	methods.Register(methods.Unit{Ops: map[string]executor.Op{Op: op{}}})
}

// Plan plans the statistics of every block of the model for the run's
// calibration windows, in block order; with hessian, each holds XᵀX too.
func Plan(mp *planner.MethodPlan, windows *planner.Node, hessian bool) []*planner.Node {
	c := mp.Run.Calibration
	blocks := mp.Info.Blocks
	out := make([]*planner.Node, blocks)
	h := capture.Embed(mp, windows)
	what := "input norms"
	if hessian {
		what = "input norms and XᵀX"
	}
	for i := range blocks {
		out[i] = mp.Add(Op, Params{Layer: i, Samples: c.Samples, SeqLen: c.SeqLen, Hessian: hessian},
			fmt.Sprintf("block %d %s", i, what), mp.Model, h)
		if i+1 < blocks {
			h = capture.Next(mp, h, i)
		}
	}
	return out
}

// maxHessianBytes reads MaxHessianEnv; 0 means the default.
func maxHessianBytes() (int64, error) {
	s := os.Getenv(MaxHessianEnv)
	if s == "" {
		return 0, nil
	}
	n, err := humanize.ParseBytes(s)
	if err != nil || n == 0 || n > 1<<62 {
		return 0, fmt.Errorf("%s=%q is not a positive size such as 8GiB", MaxHessianEnv, s)
	}
	return int64(n), nil
}

// op gathers one block's statistics. Inputs: model, hidden state entering
// the block.
type op struct{ codec }

func (op) Version() int { return 1 }

func (op) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p Params
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	model, err := ops.Input[*ops.Model](c, 0)
	if err != nil {
		return nil, err
	}
	h, err := ops.Input[ops.Hidden](c, 1)
	if err != nil {
		return nil, err
	}
	bound, err := maxHessianBytes()
	if err != nil {
		return nil, err
	}
	m := model.LM
	if h.Dim != m.Config.Dim || h.Rows != p.Samples*p.SeqLen {
		return nil, fmt.Errorf("block %d input is %d×%d, planned %d×%d", p.Layer, h.Rows, h.Dim, p.Samples*p.SeqLen, m.Config.Dim)
	}
	return calibstats.Collect(ctx, m, p.Layer, h.Data, p.Samples, p.SeqLen,
		calibstats.Options{Hessian: p.Hessian, MaxHessianBytes: bound}, c.Progress)
}

// codec stores *calibstats.Layer in calibstats' byte format.
type codec struct{}

func (codec) Encode(v any) ([]byte, error) {
	l, ok := v.(*calibstats.Layer)
	if !ok {
		return nil, fmt.Errorf("result is %T, want *calibstats.Layer", v)
	}
	return l.MarshalBinary()
}

func (codec) Decode(b []byte) (any, error) { return calibstats.Unmarshal(b) }
