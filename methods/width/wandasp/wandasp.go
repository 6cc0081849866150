// Package wandasp is Wanda-sp (An et al. 2024's structured Wanda
// baseline, in FLAP's repository): every block removes the same share of
// its attention groups and MLP channels, those whose o/down projection
// columns score lowest by |W|·‖X‖ (kernels/width).
package wandasp

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

// Op decides what each block keeps.
const Op = "width.wanda-sp"

// Params: inputs are the model and one input statistics node per block.
type Params struct {
	Ratio float64 `json:"ratio"`
}

func init() {
	methods.Register(methods.Unit{
		Spec: &spec.Spec{Paradigm: "width", Name: "wanda-sp", Calibration: true,
			Fields: []spec.Field{width.Ratio}, Check: width.CheckRatio},
		Plan: plan,
		Ops:  map[string]executor.Op{Op: decide{}},
	})
}

func plan(mp *planner.MethodPlan) *planner.Pruned {
	stats := width.InputStats(mp)
	if stats == nil {
		return nil
	}
	p := Params{Ratio: mp.Run.Prune.Options.Float("ratio")}
	return width.Plan(mp, Op, p, fmt.Sprintf("wanda-sp: ratio %g", p.Ratio), stats...)
}

// decide scores and plans. Inputs: model, block statistics in block order.
type decide struct{ ops.JSONCodec[width.Decision] }

func (decide) Version() int { return 1 }

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
		if attn[i], mlp[i], err = kwidth.WandaSPScores(lm.Config, i, &lm.Layers[i], o.SumSq, d.SumSq, float64(o.Sequences)); err != nil {
			return nil, err
		}
	}
	plan, err := kwidth.WandaSPPlan(lm.Config, attn, mlp, p.Ratio)
	if err != nil {
		return nil, err
	}
	return width.NewDecision("wanda-sp", p.Ratio, m.LM, plan, nil), nil
}
