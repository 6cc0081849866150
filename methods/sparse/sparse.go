// Package sparse is the unstructured and semi-structured pruning paradigm:
// what its methods share. A sparse method zeroes individual weights of
// every block's seven projections, to a fraction (sparsity) or an N:M
// pattern ("2:4"), and the model keeps its shape: exports hold dense
// tensors with zeros. Each method is its own package below this one and
// registers itself with Register; they differ in the statistics they read
// (none, input norms, XᵀX; methods/stats/inputstats) and in the kernel
// (kernels/sparse).
package sparse

import (
	"context"
	"fmt"

	"lrmc/compiler/ir"
	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/kernels/calibstats"
	"lrmc/kernels/llama"
	ksparse "lrmc/kernels/sparse"
	"lrmc/methods"
	"lrmc/methods/spec"
	"lrmc/methods/stats/inputstats"
	"lrmc/planner"
)

const (
	// OpPrune prunes a model (not cached: the pruned model is recomputed
	// from the cached statistics whenever something downstream runs).
	OpPrune = "sparse.prune"
	// OpSummary measures a pruned model's sparsity, the run's reported
	// decision.
	OpSummary = "sparse.summary"
)

// PruneParams: inputs are the model, then one statistics node per block
// (none for magnitude). Exactly one of Sparsity and Pattern is set.
type PruneParams struct {
	Method    string  `json:"method"`
	Sparsity  float64 `json:"sparsity,omitempty"`
	Pattern   string  `json:"pattern,omitempty"`
	BlockSize int     `json:"blockSize,omitempty"`
	Dampening float64 `json:"dampening,omitempty"`
}

// SummaryParams: input is the pruned model.
type SummaryParams struct {
	Target string `json:"target"` // the sparsity or pattern asked for
}

func init() {
	methods.Register(methods.Unit{Ops: map[string]executor.Op{OpPrune: prune{}, OpSummary: summary{}}})
}

// Fields every sparse method takes: the amount.
var Fields = []spec.Field{
	{Name: "sparsity", CUE: "number & >0 & <1", Kind: "float",
		Doc: "fraction of each layer's weights zeroed (exactly one of sparsity and pattern)"},
	{Name: "pattern", CUE: `string & =~"^[0-9]+:[0-9]+$"`, Kind: "string",
		Doc: `N:M semi-structured sparsity, N kept of every M consecutive inputs of a row ("2:4")`},
}

// Method is a sparse method.
type Method struct {
	Name string
	// Stats says the method reads input statistics, Hessian that they
	// hold XᵀX.
	Stats, Hessian bool
	// Fields are the method's own fields beside sparsity and pattern.
	Fields []spec.Field
	// Check validates its own fields (the amount is checked here).
	Check func(o ir.Options, p ksparse.Pattern, report func(field, format string, args ...any))
	// Params fills the method's own fields into the prune op's params.
	Params func(o ir.Options, p *PruneParams)
}

// Register registers a sparse method.
func Register(m Method) {
	s := &spec.Spec{
		Paradigm: "sparse", Name: m.Name, Calibration: m.Stats,
		Fields: append(append([]spec.Field{}, Fields...), m.Fields...),
		Check: func(o ir.Options, report func(field, format string, args ...any)) {
			p, ok := amount(o, report)
			if ok && m.Check != nil {
				m.Check(o, p, report)
			}
		},
	}
	methods.Register(methods.Unit{Spec: s, Plan: func(mp *planner.MethodPlan) *planner.Pruned { return plan(mp, m) }})
}

// amount reads sparsity or pattern, reporting a missing, doubled or
// malformed one.
func amount(o ir.Options, report func(field, format string, args ...any)) (ksparse.Pattern, bool) {
	_, hasS := o["sparsity"]
	_, hasP := o["pattern"]
	switch {
	case hasS && hasP:
		report("pattern", "pattern conflicts with sparsity: sparse pruning takes exactly one of sparsity (a fraction) and pattern (N:M)")
		return ksparse.Pattern{}, false
	case hasP:
		p, err := ksparse.ParseNM(o.String("pattern"))
		if err != nil {
			report("pattern", "%v", err)
			return ksparse.Pattern{}, false
		}
		return p, true
	case hasS:
		p, err := ksparse.Unstructured(o.Float("sparsity"))
		if err != nil {
			report("sparsity", "%v", err)
			return ksparse.Pattern{}, false
		}
		return p, true
	}
	report("sparsity", "sparse pruning needs one of sparsity (a fraction of the weights) or pattern (N:M, e.g. \"2:4\")")
	return ksparse.Pattern{}, false
}

// plan plans the statistics the method reads (shared with every method
// and amount asking for the same), the pruning and its summary.
func plan(mp *planner.MethodPlan, m Method) *planner.Pruned {
	o := mp.Run.Prune.Options
	p, ok := amount(o, func(field, format string, args ...any) { mp.Errorf("prune."+field, format, args...) })
	if !ok {
		return nil
	}
	params := PruneParams{Method: m.Name}
	if p.NM() {
		params.Pattern = p.String()
		if mp.Info.Dim%p.M != 0 {
			mp.Errorf("prune.pattern", "%s sparsity needs the model's width %d to be a multiple of %d", p, mp.Info.Dim, p.M)
			return nil
		}
	} else {
		params.Sparsity = p.Ratio
	}
	if m.Params != nil {
		m.Params(o, &params)
	}
	inputs := []*planner.Node{mp.Model}
	if m.Stats {
		windows := mp.Windows()
		if windows == nil {
			return nil
		}
		inputs = append(inputs, inputstats.Plan(mp, windows, m.Hessian)...)
	}
	pruned := mp.Add(OpPrune, params, fmt.Sprintf("%s %s", m.Name, p), inputs...)
	sum := mp.Add(OpSummary, SummaryParams{Target: p.String()}, "sparsity of "+m.Name+" "+p.String(), pruned)
	return &planner.Pruned{Model: pruned, Decision: sum}
}

// prune prunes a copy of the model. Inputs: model, then per block its
// input statistics (wanda, sparsegpt).
type prune struct{ ops.Ephemeral }

func (prune) Version() int { return 1 }

func (prune) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p PruneParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	model, err := ops.Input[*ops.Model](c, 0)
	if err != nil {
		return nil, err
	}
	pat, err := ksparse.Unstructured(p.Sparsity)
	if p.Pattern != "" {
		pat, err = ksparse.ParseNM(p.Pattern)
	}
	if err != nil {
		return nil, err
	}
	var stats []*calibstats.Layer
	for i := 1; i < len(c.Inputs); i++ {
		s, err := ops.Input[*calibstats.Layer](c, i)
		if err != nil {
			return nil, err
		}
		stats = append(stats, s)
	}
	// Prune a float32 copy: the dense model's weights are shared with
	// every other run.
	dt := model.LM.DType()
	lm := model.LM.Float32()
	if lm == model.LM {
		lm = lm.Clone()
	}
	if _, err := ksparse.Prune(lm, ksparse.Method(p.Method), pat, stats,
		ksparse.SparseGPTOptions{BlockSize: p.BlockSize, PercDamp: p.Dampening}); err != nil {
		return nil, err
	}
	// Rounding to 16 bits keeps zeros zero.
	if lm, err = lm.WithDType(dt); err != nil {
		return nil, err
	}
	out := *model
	out.LM = lm
	return &out, nil
}

// Summary is a pruned model's measured sparsity over the pruned
// projections.
type Summary struct {
	Target   string  `json:"target"`
	Zeros    int64   `json:"zeros"`
	Weights  int64   `json:"weights"`
	Sparsity float64 `json:"sparsity"`
}

// Metrics are what a sparse decision adds to its run's metrics: the
// measured sparsity of the projections and their zero count (params still
// counts every weight: the model keeps its shape).
func (s Summary) Metrics() map[string]any {
	return map[string]any{"sparsity": s.Sparsity, "sparsityTarget": s.Target, "zeroWeights": s.Zeros}
}

// summary counts the zeros of the seven projections of every block.
// Input: the pruned model.
type summary struct{ ops.JSONCodec[Summary] }

func (summary) Version() int { return 1 }

func (summary) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p SummaryParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	model, err := ops.Input[*ops.Model](c, 0)
	if err != nil {
		return nil, err
	}
	s := Summary{Target: p.Target}
	for _, w := range model.LM.WeightRefs() {
		switch w.Part {
		case llama.PartWq, llama.PartWk, llama.PartWv, llama.PartWo, llama.PartW1, llama.PartW2, llama.PartW3:
		default:
			continue
		}
		if w.Half != nil {
			for _, v := range *w.Half {
				if v&0x7fff == 0 {
					s.Zeros++
				}
			}
		} else {
			for _, v := range *w.Data {
				if v == 0 {
					s.Zeros++
				}
			}
		}
		s.Weights += int64(w.Len())
	}
	if s.Weights > 0 {
		s.Sparsity = float64(s.Zeros) / float64(s.Weights)
	}
	return s, nil
}
