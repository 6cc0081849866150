package sparse

import (
	"fmt"

	"lrmc/kernels/calibstats"
	"lrmc/kernels/llama"
)

// Method names a pruning criterion.
type Method string

const (
	MethodMagnitude Method = "magnitude"
	MethodWanda     Method = "wanda"
	MethodSparseGPT Method = "sparsegpt"
)

// Needs says what calibration statistics a method reads: none, the input
// norms, or the norms and the Hessian.
func (m Method) Needs() (stats, hessian bool, err error) {
	switch m {
	case MethodMagnitude:
		return false, false, nil
	case MethodWanda:
		return true, false, nil
	case MethodSparseGPT:
		return true, true, nil
	}
	return false, false, fmt.Errorf("sparse: unknown method %q (magnitude, wanda, sparsegpt)", m)
}

// Projection is one linear layer of a block and the site its input comes
// from.
type Projection struct {
	Name string // q, k, v, o, gate, up, down
	Site llama.Site
	W    *[]float32
	Rows int
	Cols int
}

// Projections lists block i's seven linear layers of a float32 model, in the
// order the references visit them.
func Projections(m *llama.Model, i int) []Projection {
	c := m.Config
	l := &m.Layers[i]
	d, q, kv, h := c.Dim, c.QDim(), c.KVDim(), c.HiddenDim
	return []Projection{
		{"q", llama.SiteAttnIn, &l.Wq, q, d},
		{"k", llama.SiteAttnIn, &l.Wk, kv, d},
		{"v", llama.SiteAttnIn, &l.Wv, kv, d},
		{"o", llama.SiteOIn, &l.Wo, d, q},
		{"gate", llama.SiteMLPIn, &l.W1, h, d},
		{"up", llama.SiteMLPIn, &l.W3, h, d},
		{"down", llama.SiteDownIn, &l.W2, d, h},
	}
}

// Result sums up a pruned model.
type Result struct {
	Pruned, Total int64   // zero weights after pruning, weights of the pruned layers
	Loss          float64 // SparseGPT's summed reconstruction loss (0 for the others)
}

// Sparsity is Pruned/Total.
func (r Result) Sparsity() float64 {
	if r.Total == 0 {
		return 0
	}
	return float64(r.Pruned) / float64(r.Total)
}

// Prune prunes every linear layer of every block of m, a float32 model,
// in place. stats[i] are block i's input statistics of the dense model
// (calibstats.Collect over the dense prefix; nil for magnitude). Unlike
// the references, which re-run block i's calibration through the already
// pruned blocks before it, every block here is scored on the dense
// model's activations, so the statistics are computed once and serve
// every method and ratio.
func Prune(m *llama.Model, method Method, p Pattern, stats []*calibstats.Layer, o SparseGPTOptions) (Result, error) {
	if m.Half != nil {
		return Result{}, fmt.Errorf("sparse: the model is %s; prune its float32 form", m.Half.DType)
	}
	needStats, _, err := method.Needs()
	if err != nil {
		return Result{}, err
	}
	if needStats && len(stats) != len(m.Layers) {
		return Result{}, fmt.Errorf("sparse: %s needs statistics of %d blocks, got %d", method, len(m.Layers), len(stats))
	}
	var res Result
	for i := range m.Layers {
		for _, pr := range Projections(m, i) {
			w := *pr.W
			name := fmt.Sprintf("block %d %s", i, pr.Name)
			var site *calibstats.Site
			if needStats {
				if stats[i] == nil || stats[i].Layer != i {
					return Result{}, fmt.Errorf("sparse: %s: no statistics of block %d", method, i)
				}
				if site, err = stats[i].Site(pr.Site); err != nil {
					return Result{}, fmt.Errorf("sparse: %s: %s: %w", method, name, err)
				}
				if site.Width != pr.Cols {
					return Result{}, fmt.Errorf("sparse: %s: %s reads %d inputs but its statistics are %d wide", method, name, pr.Cols, site.Width)
				}
			}
			var mask []bool
			switch method {
			case MethodMagnitude:
				mask, err = Magnitude(w, pr.Rows, pr.Cols, p)
			case MethodWanda:
				mask, err = Wanda(w, pr.Rows, pr.Cols, site.Norm(), p)
			case MethodSparseGPT:
				var h []float64
				if h, err = site.Hessian(); err == nil {
					var loss float64
					loss, err = SparseGPT(w, pr.Rows, pr.Cols, h, p, o)
					res.Loss += loss
				}
			}
			if err != nil {
				return Result{}, fmt.Errorf("sparse: %s: %w", name, err)
			}
			if mask != nil {
				Apply(w, mask)
			}
			for _, v := range w {
				if v == 0 {
					res.Pruned++
				}
			}
			res.Total += int64(len(w))
		}
	}
	return res, nil
}
