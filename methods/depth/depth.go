// Package depth is the depth-pruning paradigm: what its methods share.
// A depth method removes whole blocks; the recipe says how many (remove,
// ratio) or which (layers), and the method plans the scores from which
// prune.depth decides. Each method is its own package below this one and
// registers itself with Register.
package depth

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"

	"lrmc/compiler/ir"
	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/kernels/shortgpt"
	"lrmc/methods"
	"lrmc/methods/spec"
	"lrmc/planner"
)

const (
	// OpPrune decides which blocks to remove.
	OpPrune = "prune.depth"
	// OpApply applies a depth decision to a model (not cached: cheap).
	OpApply = "model.depth"
)

// PruneParams: inputs are the method's score nodes (see Scores), and none
// when Layers is given explicitly (Method "explicit").
type PruneParams struct {
	Method string `json:"method"`
	Blocks int    `json:"blocks"`
	Remove int    `json:"remove,omitempty"`
	Layers []int  `json:"layers,omitempty"`
	// EarlyBarrier and LatterBarrier protect the first and the last blocks
	// from scored removal (absent, so keys stay, when zero).
	EarlyBarrier  int `json:"earlyBarrier,omitempty"`
	LatterBarrier int `json:"latterBarrier,omitempty"`
}

// ApplyParams: inputs are the model and a depth decision.
type ApplyParams struct{}

func init() {
	methods.Register(methods.Unit{Ops: map[string]executor.Op{OpPrune: prune{}, OpApply: apply{}}})
}

// Method is a depth method: its name under paradigm depth, its own recipe
// fields (beside remove, ratio and layers), and its scores.
type Method struct {
	Name   string
	Fields []spec.Field
	Check  func(o ir.Options, report func(field, format string, args ...any))
	// Score plans the nodes prune.depth takes as inputs; nil on error
	// (reported through mp).
	Score func(mp *planner.MethodPlan, a Amount) []*planner.Node
	// Ops are the method's own ops.
	Ops map[string]executor.Op
}

// Amount is what a scored depth run removes.
type Amount struct {
	Blocks, Remove int
	// Early and Latter are the method's barriers: blocks [0, Early) and
	// [Blocks-Latter, Blocks) are never removed (nor scored, where scoring
	// them costs work).
	Early, Latter int
	// Windows are the run's calibration windows.
	Windows *planner.Node
}

// Barrier fields: a method that protects its first and last blocks
// declares them with its own defaults (Shortened LLaMA's Taylor+ keeps 4
// and 2, SLEB 1 and 1).
const (
	EarlyBarrier  = "earlyBarrier"
	LatterBarrier = "latterBarrier"
)

// BarrierFields declares earlyBarrier and latterBarrier with defaults.
func BarrierFields(early, latter int) []spec.Field {
	return []spec.Field{
		{Name: EarlyBarrier, CUE: "#Count & >=0", Default: early,
			Doc: "the first earlyBarrier blocks are never removed"},
		{Name: LatterBarrier, CUE: "#Count & >=0", Default: latter,
			Doc: "the last latterBarrier blocks are never removed"},
	}
}

// Register registers a depth method.
func Register(m Method) {
	s := &spec.Spec{Paradigm: "depth", Name: m.Name, Calibration: true, Fields: m.Fields, Check: m.Check,
		CheckShape: func(p ir.Prune, sh spec.Shape, report func(field, format string, args ...any)) {
			checkAmount(p, sh.Blocks, report)
		}}
	methods.Register(methods.Unit{
		Spec: s,
		Plan: func(mp *planner.MethodPlan) *planner.Pruned { return plan(mp, m) },
		Ops:  m.Ops,
	})
}

// plan checks the amount, plans the method's scores and the decision, and
// applies it; explicit layers need no scores.
func plan(mp *planner.MethodPlan, m Method) *planner.Pruned {
	decision := decide(mp, m)
	if decision == nil {
		return nil
	}
	model := mp.Add(OpApply, ApplyParams{}, "apply depth pruning", mp.Model, decision)
	return &planner.Pruned{Model: model, Decision: decision}
}

func decide(mp *planner.MethodPlan, m Method) *planner.Node {
	pr := mp.Run.Prune
	blocks := mp.Info.Blocks
	remove, ok := checkAmount(pr, blocks, mp.Errorf)
	if !ok {
		return nil
	}
	if len(pr.Layers) > 0 {
		layers := slices.Sorted(slices.Values(pr.Layers))
		return mp.Add(OpPrune, PruneParams{Method: "explicit", Blocks: blocks, Layers: layers},
			fmt.Sprintf("remove blocks %v", pr.Layers))
	}
	early, latter := pr.Options.Int(EarlyBarrier), pr.Options.Int(LatterBarrier)
	windows := mp.Windows()
	if windows == nil {
		return nil
	}
	scores := m.Score(mp, Amount{Blocks: blocks, Remove: remove, Early: early, Latter: latter, Windows: windows})
	if scores == nil {
		return nil
	}
	return mp.Add(OpPrune, PruneParams{Method: pr.Method, Blocks: blocks, Remove: remove, EarlyBarrier: early, LatterBarrier: latter},
		fmt.Sprintf("%s: remove %d of %d blocks", pr.Method, remove, blocks), scores...)
}

// checkAmount checks remove, ratio or layers against a model of blocks
// blocks and returns the number of blocks removed. vet runs it on the
// shape read from the checkpoint's header (spec.Spec.CheckShape), the plan
// on the planner's, so both report the same message.
func checkAmount(pr ir.Prune, blocks int, errorf func(field, format string, args ...any)) (int, bool) {
	if len(pr.Layers) > 0 {
		seen := map[int]bool{}
		for i, l := range pr.Layers {
			if l < 0 || l >= blocks {
				errorf(fmt.Sprintf("prune.layers[%d]", i), "block %d does not exist: the model has blocks 0..%d", l, blocks-1)
				return 0, false
			}
			if seen[l] {
				errorf(fmt.Sprintf("prune.layers[%d]", i), "block %d is listed twice", l)
				return 0, false
			}
			seen[l] = true
		}
		if len(pr.Layers) >= blocks {
			errorf("prune.layers", "removing %d blocks leaves none of the model's %d", len(pr.Layers), blocks)
			return 0, false
		}
		return len(pr.Layers), true
	}
	remove, field := pr.Remove, "prune.remove"
	if pr.Ratio > 0 {
		field = "prune.ratio"
		remove = int(math.Floor(pr.Ratio * float64(blocks)))
		if remove < 1 {
			errorf(field, "ratio %g of %d blocks removes no block", pr.Ratio, blocks)
			return 0, false
		}
	}
	if remove >= blocks {
		errorf(field, "removing %d blocks leaves none: the model has %d", remove, blocks)
		return 0, false
	}
	early, latter := pr.Options.Int(EarlyBarrier), pr.Options.Int(LatterBarrier)
	if free := blocks - early - latter; remove > free {
		errorf(field, "cannot remove %d blocks: earlyBarrier %d and latterBarrier %d leave %d of the model's %d blocks to choose from",
			remove, early, latter, max(free, 0), blocks)
		return 0, false
	}
	return remove, true
}

// Decision is a depth-pruning decision.
type Decision struct {
	Method  string    `json:"method"`
	Blocks  int       `json:"blocks"`
	Removed []int     `json:"removed"`
	Kept    []int     `json:"kept"`
	Scores  []float64 `json:"scores,omitempty"` // per block; the lowest are removed
	Order   []int     `json:"order,omitempty"`  // SLEB: the removal order
}

// Metrics are what a depth decision adds to its run's metrics.
func (d Decision) Metrics() map[string]any {
	m := map[string]any{"removed": d.Removed}
	if d.Scores != nil {
		m["blockScores"] = d.Scores
	}
	if d.Order != nil {
		m["removalOrder"] = d.Order
	}
	return m
}

// The results a method's score nodes give prune.depth, one of:

// BlockScore is one block's score, one input per block in block order
// (lower: less important, removed first).
type BlockScore interface {
	BlockScore() (layer int, score float64)
}

// BlockScores are every block's scores in one input.
type BlockScores interface {
	BlockScores() []float64
}

// Ordered is a search that chose the blocks itself, in removal order.
type Ordered interface {
	RemovalOrder() []int
}

// prune picks the blocks to remove: the lowest-scoring, the order a search
// chose, or an explicit list.
type prune struct{ ops.JSONCodec[Decision] }

func (prune) Version() int { return 1 }

func (prune) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p PruneParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	d := Decision{Method: p.Method, Blocks: p.Blocks}
	switch {
	case p.Method == "explicit":
		d.Removed = slices.Clone(p.Layers)
	case len(c.Inputs) == 1 && isOrdered(c.Inputs[0]):
		order := c.Inputs[0].(Ordered).RemovalOrder()
		if len(order) != p.Remove {
			return nil, fmt.Errorf("%s search removed %d blocks, want %d", p.Method, len(order), p.Remove)
		}
		d.Removed = slices.Sorted(slices.Values(order))
		d.Order = slices.Clone(order)
	default:
		scores, err := Scores(c.Inputs, p.Blocks)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Method, err)
		}
		d.Scores = scores
		removed, err := Lowest(d.Scores, p.Remove, p.EarlyBarrier, p.LatterBarrier)
		if err != nil {
			return nil, err
		}
		d.Removed = removed
	}
	d.Kept = shortgpt.Keep(p.Blocks, d.Removed)
	return d, nil
}

// Lowest returns the remove lowest-scoring blocks among [early,
// len(scores)-latter), in ascending index order; among equal scores the
// lower index goes first. Without barriers it is kernels/shortgpt.Lowest.
func Lowest(scores []float64, remove, early, latter int) ([]int, error) {
	if early == 0 && latter == 0 {
		return shortgpt.Lowest(scores, remove)
	}
	n := len(scores)
	if remove < 1 || remove > n-early-latter {
		return nil, fmt.Errorf("cannot remove %d of %d blocks when the first %d and the last %d stay", remove, n, early, latter)
	}
	var cand []int
	for i := early; i < n-latter; i++ {
		if math.IsNaN(scores[i]) {
			return nil, fmt.Errorf("block %d has a NaN score", i)
		}
		cand = append(cand, i)
	}
	slices.SortStableFunc(cand, func(i, j int) int { return cmp.Compare(scores[i], scores[j]) })
	removed := cand[:remove]
	slices.Sort(removed)
	return removed, nil
}

func isOrdered(v any) bool { _, ok := v.(Ordered); return ok }

// Scores turns score inputs into one score per block: one BlockScores
// input, or one BlockScore input per block.
func Scores(inputs []any, blocks int) ([]float64, error) {
	if len(inputs) == 1 {
		if s, ok := inputs[0].(BlockScores); ok {
			v := s.BlockScores()
			if len(v) != blocks {
				return nil, fmt.Errorf("scores cover %d blocks, the model has %d", len(v), blocks)
			}
			return slices.Clone(v), nil
		}
	}
	if len(inputs) != blocks {
		return nil, fmt.Errorf("needs %d block scores, got %d", blocks, len(inputs))
	}
	scores := make([]float64, blocks)
	for i, in := range inputs {
		s, ok := in.(BlockScore)
		if !ok {
			return nil, fmt.Errorf("input %d is %T, not a block score", i, in)
		}
		layer, v := s.BlockScore()
		if layer != i {
			return nil, fmt.Errorf("score %d is for block %d", i, layer)
		}
		scores[i] = v
	}
	return scores, nil
}

// apply applies a depth decision. Inputs: model, decision. Not cached:
// dropping blocks shares the weights and costs nothing.
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
	if d.Blocks != m.LM.Config.Layers {
		return nil, fmt.Errorf("decision is for a model of %d blocks, this one has %d", d.Blocks, m.LM.Config.Layers)
	}
	lm, err := m.LM.Keep(d.Kept)
	if err != nil {
		return nil, err
	}
	return &ops.Model{LM: lm, HF: m.HF, GGUF: m.GGUF}, nil
}

// AllBut lists 0..n-1 without the given blocks.
func AllBut(n int, removed ...int) []int {
	var keep []int
	for i := range n {
		if !slices.Contains(removed, i) {
			keep = append(keep, i)
		}
	}
	return keep
}
