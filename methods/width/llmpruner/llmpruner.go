// Package llmpruner is LLM-Pruner (Ma et al. 2023) block-wise: every block
// in a range removes the same fraction of its attention groups and MLP
// channels, those of least first-order Taylor importance, summed over
// each dependency group (kernels/width). The gradients are the shared
// Taylor node (methods/stats/taylor), the one Shortened LLaMA's Taylor
// criterion reads, so a depth and a width run on the same calibration
// compute them once, and a ratio sweep reuses them.
package llmpruner

import (
	"context"
	"fmt"

	"lrmc/executor"
	"lrmc/executor/ops"
	kwidth "lrmc/kernels/width"
	"lrmc/methods"
	"lrmc/methods/spec"
	"lrmc/methods/stats/taylor"
	"lrmc/methods/width"
	"lrmc/planner"
)

// Op decides what each block keeps.
const Op = "width.llm-pruner"

// Params: inputs are the model and the Taylor scores.
type Params struct {
	Ratio      float64 `json:"ratio"`
	Start      int     `json:"start"`
	End        int     `json:"end"`
	Importance string  `json:"importance"`
}

func init() {
	methods.Register(methods.Unit{
		Spec: &spec.Spec{Paradigm: "width", Name: "llm-pruner", Calibration: true,
			Fields: []spec.Field{
				width.Ratio,
				{Name: "layerStart", CUE: "int & >=0", Kind: "int", Doc: "first block pruned (default 4, LLM-Pruner's block_*_layer_start)"},
				{Name: "layerEnd", CUE: "int & >=1", Kind: "int", Doc: "block after the last pruned (default blocks−2, LLM-Pruner's block_*_layer_end)"},
				{Name: "importance", CUE: `"element" | "vector"`, Default: "element",
					Doc: "first-order Taylor: element-wise Σ|w·g| (LLM-Pruner's param_first) or vector-wise Σ|Σw·g|"},
			},
			Check: width.CheckRatio,
		},
		Plan: plan,
		Ops:  map[string]executor.Op{Op: decide{}},
	})
}

func plan(mp *planner.MethodPlan) *planner.Pruned {
	o := mp.Run.Prune.Options
	r := kwidth.DefaultRange(mp.Info.Blocks)
	if v, ok := o["layerStart"]; ok {
		r.Start = v.(int)
	}
	if v, ok := o["layerEnd"]; ok {
		r.End = v.(int)
	}
	if r.Start < 0 || r.End > mp.Info.Blocks || r.Start >= r.End {
		field := "prune.layerEnd"
		if _, ok := o["layerStart"]; ok {
			field = "prune.layerStart"
		}
		mp.Errorf(field, "blocks [%d, %d) to prune are empty or outside the model's %d blocks (LLM-Pruner's default leaves the first 4 and the last 2; set layerStart and layerEnd)",
			r.Start, r.End, mp.Info.Blocks)
		return nil
	}
	windows := mp.Windows()
	if windows == nil {
		return nil
	}
	p := Params{Ratio: o.Float("ratio"), Start: r.Start, End: r.End, Importance: o.String("importance")}
	return width.Plan(mp, Op, p, fmt.Sprintf("llm-pruner: ratio %g of blocks [%d, %d)", p.Ratio, p.Start, p.End),
		taylor.Plan(mp, windows))
}

// decide ranks each block's groups by their summed Taylor importance.
// Inputs: model, Taylor scores.
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
	s, err := ops.Input[taylor.Scores](c, 1)
	if err != nil {
		return nil, err
	}
	imp := s.Element
	if p.Importance == "vector" {
		imp = s.Vector
	}
	if len(imp.Heads) != m.LM.Config.Layers {
		return nil, fmt.Errorf("taylor scores cover %d blocks, the model has %d", len(imp.Heads), m.LM.Config.Layers)
	}
	layers := make([]kwidth.TaylorLayer, len(imp.Heads))
	for i := range layers {
		layers[i] = kwidth.TaylorLayer{Heads: imp.Heads[i], KVHeads: imp.KVHeads[i], Channels: imp.Channels[i]}
	}
	plan, err := kwidth.LLMPrunerPlan(m.LM.Config, layers, p.Ratio, kwidth.Range{Start: p.Start, End: p.End})
	if err != nil {
		return nil, err
	}
	return width.NewDecision("llm-pruner", p.Ratio, m.LM, plan, nil), nil
}
