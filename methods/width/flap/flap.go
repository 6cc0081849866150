// Package flap is FLAP (An et al. 2024) with its default structure AL-AM:
// the fluctuation of each o/down projection input channel, weighted by its
// column's squared norm, standardized over all blocks, ranks attention
// groups and MLP channels of every block together; the removed channels'
// mean output is added back as a bias (kernels/width).
package flap

import (
	"context"
	"fmt"

	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/kernels/llama"
	kwidth "lrmc/kernels/width"
	"lrmc/methods"
	"lrmc/methods/spec"
	"lrmc/methods/width"
	"lrmc/planner"
)

// Op decides what each block keeps, and the compensation.
const Op = "width.flap"

// Params: inputs are the model and one input statistics node per block.
type Params struct {
	Ratio      float64 `json:"ratio"`
	Compensate bool    `json:"compensate"`
}

func init() {
	methods.Register(methods.Unit{
		Spec: &spec.Spec{Paradigm: "width", Name: "flap", Calibration: true,
			Fields: []spec.Field{width.Ratio,
				{Name: "compensate", CUE: "bool", Default: true, Doc: "add the removed channels' mean output as o/down biases (FLAP's bias compensation)"}},
			Check: width.CheckRatio},
		Plan: plan,
		Ops:  map[string]executor.Op{Op: decide{}},
	})
}

func plan(mp *planner.MethodPlan) *planner.Pruned {
	stats := width.InputStats(mp)
	if stats == nil {
		return nil
	}
	o := mp.Run.Prune.Options
	p := Params{Ratio: o.Float("ratio"), Compensate: o.Bool("compensate")}
	return width.Plan(mp, Op, p, fmt.Sprintf("flap: ratio %g", p.Ratio), stats...)
}

// decide scores, plans globally and computes the compensation. Inputs:
// model, block statistics in block order.
type decide struct{ ops.JSONCodec[width.Decision] }

func (decide) Version() int { return 2 } // 2: per-block standardization, as FLAP

func (decide) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p Params
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	m, err := ops.Input[*ops.Model](c, 0)
	if err != nil {
		return nil, err
	}
	lm := m.LM.Float32()
	stats, err := width.Stats(c, 1, lm)
	if err != nil {
		return nil, err
	}
	in := make([]kwidth.FLAPInputs, len(stats))
	attn, mlp := make([][]float64, len(stats)), make([][]float64, len(stats))
	for i, st := range stats {
		o, err := st.Site(llama.SiteOIn)
		if err != nil {
			return nil, err
		}
		d, err := st.Site(llama.SiteDownIn)
		if err != nil {
			return nil, err
		}
		in[i] = kwidth.FLAPInputs{OMean: o.Mean(), OVar: o.Variance(), DownMean: d.Mean(), DownVar: d.Variance()}
		if attn[i], mlp[i], err = kwidth.FLAPScores(lm.Config, i, &lm.Layers[i], in[i]); err != nil {
			return nil, err
		}
	}
	plan, err := kwidth.FLAPPlan(lm.Config, attn, mlp, p.Ratio)
	if err != nil {
		return nil, err
	}
	var comp *kwidth.Compensation
	if p.Compensate {
		comp = kwidth.FLAPCompensation(in)
	}
	return width.NewDecision("flap", p.Ratio, m.LM, plan, comp), nil
}
