package train

import (
	"fmt"
	"math"

	"lrmc/kernels/train/optim"
)

// Importance holds first-order Taylor scores of a model's prunable units.
type Importance struct {
	// Blocks[l] scores block l. Element-wise it is Shortened LLaMA's Taylor
	// score, Σ |w·G| over every weight of the block's projections and norms
	// (not biases: the reference scores parameters named "weight");
	// vector-wise it is the sum of the block's Heads, KVHeads and Channels
	// scores.
	Blocks []float64
	// Heads[l][h] is query head h's LLM-Pruner group: its Wq rows (and Bq
	// entries) and its Wo columns.
	Heads [][]float64
	// KVHeads[l][g] is key/value head g: its Wk and Wv rows (and biases).
	// Without GQA a head's full LLM-Pruner group is Heads + KVHeads; with
	// GQA the kv head is shared by Heads/KVHeads query heads.
	KVHeads [][]float64
	// Channels[l][j] is MLP channel j: row j of gate and up, column j of down.
	Channels [][]float64
}

// Taylor accumulates first-order Taylor importance, |ΔL| ≈ |w·∂L/∂w| for
// removing weights, over calibration batches, in both of LLM-Pruner's
// variants. As the references do (Shortened LLaMA sums the signed w·g of
// every batch and takes the absolute value once; LLM-Pruner scores one
// batch's gradient), the signed gradients of the batches are summed first,
// G = Σ_b ∂L_b/∂w, and the scores are taken of w·G: element-wise scores
// each weight by |w·G| and sums them over a unit's weights; vector-wise
// scores each weight vector (a row, or a column of o_proj and down_proj)
// by |Σ w·G| over the vector, the first-order change of zeroing it whole,
// and sums the vectors of a unit. Element and Vector are current after
// every Add.
type Taylor struct {
	n               *Net
	Element, Vector Importance
	Batches         int
	// sum[p] is Σ_b of p's gradient, in float64 so the order of batches
	// changes it by rounding only.
	sum map[*optim.Param][]float64
}

// NewTaylor scores n's model; n must be built with FullFineTune so that
// every weight has a gradient buffer.
func NewTaylor(n *Net) (*Taylor, error) {
	if !n.o.full {
		return nil, fmt.Errorf("train: taylor importance needs the gradient of every weight; build the net with FullFineTune")
	}
	t := &Taylor{n: n, sum: map[*optim.Param][]float64{}}
	t.Element, t.Vector = t.newImportance(), t.newImportance()
	return t, nil
}

func (t *Taylor) newImportance() Importance {
	c := t.n.c
	imp := Importance{Blocks: make([]float64, c.Layers)}
	for i := range c.Layers {
		w := c.Width(i)
		imp.Heads = append(imp.Heads, make([]float64, w.Heads))
		imp.KVHeads = append(imp.KVHeads, make([]float64, w.KVHeads))
		imp.Channels = append(imp.Channels, make([]float64, w.HiddenDim))
	}
	return imp
}

// blockParams are layer l's scored parameters: its norms and its
// projections' weights and biases.
func (t *Taylor) blockParams(l layerParams) []*optim.Param {
	var ps []*optim.Param
	for _, p := range []*optim.Param{l.attnNorm, l.ffnNorm, l.qNorm, l.kNorm} {
		if p != nil {
			ps = append(ps, p)
		}
	}
	for _, lin := range l.lin {
		ps = append(ps, lin.w)
		if lin.b != nil {
			ps = append(ps, lin.b)
		}
	}
	return ps
}

// Add computes the gradient of the loss on one calibration batch, adds it
// to the running sum and rescores.
func (t *Taylor) Add(b Batch) error {
	ps := t.n.Params()
	optim.ZeroGrads(ps)
	if _, err := t.n.ForwardBackward(b, 1); err != nil {
		return fmt.Errorf("train: taylor batch %d: %w", t.Batches, err)
	}
	for _, l := range t.n.layers {
		for _, p := range t.blockParams(l) {
			s := t.sum[p]
			if s == nil {
				s = make([]float64, len(p.Grad))
				t.sum[p] = s
			}
			for i, g := range p.Grad {
				s[i] += float64(g)
			}
		}
	}
	t.Batches++
	t.score()
	return nil
}

// score computes Element and Vector from the summed gradients.
func (t *Taylor) score() {
	t.Element, t.Vector = t.newImportance(), t.newImportance()
	c := t.n.c
	hd := c.HeadDim()
	for li, l := range t.n.layers {
		for _, p := range []*optim.Param{l.attnNorm, l.ffnNorm, l.qNorm, l.kNorm} {
			if p != nil {
				t.Element.Blocks[li] += absSalience(p.Data, t.sum[p])
			}
		}
		for mod, lin := range l.lin {
			w, g := lin.w.Data, t.sum[lin.w]
			t.Element.Blocks[li] += absSalience(w, g)
			// Per output row (q, k, v, gate, up) or input column (o, down).
			var elem, vec []float64
			if mod == modO || mod == modDown {
				elem, vec = columnSalience(w, g, lin.out, lin.in)
				// An output bias (Config.OutBias) belongs to no column's
				// group, and the block's score counts weights only.
			} else {
				elem, vec = rowSalience(w, g, lin.out, lin.in)
				if lin.b != nil {
					// A bias entry belongs to its row's group, not to the
					// block's score (which counts weights only).
					bg := t.sum[lin.b]
					for j := range elem {
						s := float64(lin.b.Data[j]) * bg[j]
						elem[j] += math.Abs(s)
						vec[j] += s // the bias entry extends the row's vector
					}
				}
			}
			for j, v := range vec {
				vec[j] = math.Abs(v)
			}
			switch mod {
			case modQ, modO:
				sumGroups(t.Element.Heads[li], elem, hd)
				sumGroups(t.Vector.Heads[li], vec, hd)
			case modK, modV:
				sumGroups(t.Element.KVHeads[li], elem, hd)
				sumGroups(t.Vector.KVHeads[li], vec, hd)
			default:
				sumGroups(t.Element.Channels[li], elem, 1)
				sumGroups(t.Vector.Channels[li], vec, 1)
			}
		}
		var v float64
		for _, s := range [][]float64{t.Vector.Heads[li], t.Vector.KVHeads[li], t.Vector.Channels[li]} {
			for _, x := range s {
				v += x
			}
		}
		t.Vector.Blocks[li] = v
	}
}

func absSalience(w []float32, g []float64) float64 {
	var s float64
	for i, x := range w {
		s += math.Abs(float64(x) * g[i])
	}
	return s
}

// rowSalience returns, for each row of w [out, in], Σ|w·g| and Σ w·g (the
// vector score before its absolute value, which the caller takes once a
// bias entry has joined the row).
func rowSalience(w []float32, g []float64, out, in int) (elem, vec []float64) {
	elem, vec = make([]float64, out), make([]float64, out)
	for o := range out {
		var e, v float64
		for i := range in {
			s := float64(w[o*in+i]) * g[o*in+i]
			e += math.Abs(s)
			v += s
		}
		elem[o], vec[o] = e, v
	}
	return elem, vec
}

// columnSalience is rowSalience for the columns of w [out, in].
func columnSalience(w []float32, g []float64, out, in int) (elem, vec []float64) {
	elem, vec = make([]float64, in), make([]float64, in)
	for o := range out {
		for i := range in {
			s := float64(w[o*in+i]) * g[o*in+i]
			elem[i] += math.Abs(s)
			vec[i] += s
		}
	}
	return elem, vec
}

// sumGroups adds consecutive runs of size scores into dst.
func sumGroups(dst, scores []float64, size int) {
	for i, s := range scores {
		dst[i/size] += s
	}
}
