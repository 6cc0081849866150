// Package width is the width-pruning paradigm: what its methods share. A
// width method removes attention groups (a kv head with its query heads)
// and MLP channels inside blocks (kernels/width); each method is its own
// package below this one, planning a decision node (a width.Plan, with
// FLAP's compensation means) that the shared model.width op applies.
//
// Input statistics: Wanda-sp and FLAP read the shared per-block input
// statistics of the dense model (methods/stats/inputstats, keyed by the
// model, the calibration windows and the block, never by method or
// ratio), so a sweep, the two methods, and the sparse methods' Wanda all
// share one set of nodes.
package width

import (
	"context"
	"fmt"

	"lrmc/compiler/ir"
	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/kernels/calibstats"
	"lrmc/kernels/llama"
	kwidth "lrmc/kernels/width"
	"lrmc/methods"
	"lrmc/methods/spec"
	"lrmc/methods/stats/inputstats"
	"lrmc/planner"
)

const (
	// OpApply applies a width decision to a model (not cached: a copy of
	// the kept rows and columns).
	OpApply = "model.width"
)

// ApplyParams: inputs are the model and a Decision.
type ApplyParams struct{}

func init() {
	methods.Register(methods.Unit{Ops: map[string]executor.Op{OpApply: apply{}}})
}

// Ratio is the width methods' amount: the fraction of parameters removed,
// with #Prune's own constraint.
var Ratio = spec.Field{Name: "ratio", CUE: "number & >0 & <1", Kind: "float",
	Doc: "fraction of the pruned blocks' projection weights to remove"}

// CheckRatio reports a missing ratio.
func CheckRatio(o ir.Options, report func(field, format string, args ...any)) {
	if _, ok := o["ratio"]; !ok {
		report("ratio", "width pruning needs ratio, the fraction of parameters to remove")
	}
}

// Decision is a width-pruning decision: what every block keeps, and for
// FLAP the means its bias compensation adds.
type Decision struct {
	Method       string               `json:"method"`
	Ratio        float64              `json:"ratio"`
	Plan         kwidth.Plan          `json:"plan"`
	Widths       []llama.LayerWidth   `json:"widths"`
	ParamsBefore int64                `json:"paramsBefore"`
	ParamsAfter  int64                `json:"paramsAfter"`
	Compensation *kwidth.Compensation `json:"compensation,omitempty"`
}

// Metrics are what a width decision adds to its run's metrics.
func (d Decision) Metrics() map[string]any {
	return map[string]any{"widths": d.Widths, "paramsBefore": d.ParamsBefore, "paramsAfter": d.ParamsAfter,
		"removedFraction": 1 - float64(d.ParamsAfter)/float64(d.ParamsBefore)}
}

// NewDecision records plan p (and comp) of method on model m, with the
// widths and parameter counts the pruned model will have.
func NewDecision(method string, ratio float64, m *llama.Model, p kwidth.Plan, comp *kwidth.Compensation) Decision {
	ws := make([]llama.LayerWidth, len(p))
	for i, lp := range p {
		w := m.Config.Width(i)
		ws[i] = llama.LayerWidth{Heads: len(lp.KVHeads) * (w.Heads / w.KVHeads), KVHeads: len(lp.KVHeads), HiddenDim: len(lp.Channels)}
	}
	c := m.Config.SetWidths(ws)
	c.OutBias = c.OutBias || comp != nil
	return Decision{Method: method, Ratio: ratio, Plan: p, Widths: ws, ParamsBefore: m.Config.Params(), ParamsAfter: c.Params(), Compensation: comp}
}

// Plan plans method's decision node (op with params and the extra inputs
// after the model) and its application.
func Plan(mp *planner.MethodPlan, op string, params any, label string, inputs ...*planner.Node) *planner.Pruned {
	decision := mp.Add(op, params, label, append([]*planner.Node{mp.Model}, inputs...)...)
	model := mp.Add(OpApply, ApplyParams{}, "apply width pruning", mp.Model, decision)
	return &planner.Pruned{Model: model, Decision: decision}
}

// InputStats plans every block's shared input statistics (without XᵀX);
// nil on error (reported).
func InputStats(mp *planner.MethodPlan) []*planner.Node {
	windows := mp.Windows()
	if windows == nil {
		return nil
	}
	return inputstats.Plan(mp, windows, false)
}

// Stats returns the input statistics among a call's inputs from index
// first on, one per block, checked against the model.
func Stats(c *executor.Call, first int, m *llama.Model) ([]*calibstats.Layer, error) {
	if len(c.Inputs)-first != m.Config.Layers {
		return nil, fmt.Errorf("%d block statistics for a model of %d blocks", len(c.Inputs)-first, m.Config.Layers)
	}
	out := make([]*calibstats.Layer, m.Config.Layers)
	for i := range out {
		l, err := ops.Input[*calibstats.Layer](c, first+i)
		if err != nil {
			return nil, err
		}
		if l.Layer != i {
			return nil, fmt.Errorf("statistics %d are of block %d", i, l.Layer)
		}
		out[i] = l
	}
	return out, nil
}

// apply prunes the model by a decision. Inputs: model, decision. Not
// cached: it copies the kept rows and columns, cheap beside deciding.
type apply struct{ ops.Ephemeral }

func (apply) Version() int { return 1 }

func (apply) Run(ctx context.Context, c *executor.Call) (any, error) {
	m, err := ops.Input[*ops.Model](c, 0)
	if err != nil {
		return nil, err
	}
	d, err := ops.Input[Decision](c, 1)
	if err != nil {
		return nil, err
	}
	lm, err := kwidth.Prune(m.LM, d.Plan, d.Compensation)
	if err != nil {
		return nil, err
	}
	return &ops.Model{LM: lm, HF: m.HF, GGUF: m.GGUF}, nil
}
