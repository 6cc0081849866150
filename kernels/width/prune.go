// Package width is structured width pruning of Llama models: removing whole
// attention heads and MLP channels, each with every weight that depends on
// it, so that the pruned model is a smaller dense model (its blocks may
// differ in width: llama.Config.Widths).
//
// A dependency group is the unit removed. An attention group is a key/value
// head with the query heads that read it (GQA): their rows of Wq (and Bq),
// the kv head's rows of Wk and Wv (and Bk, Bv), and the query heads' columns
// of Wo. The per-head q/k norms (Qwen3) are shared by every head and stay.
// An MLP group is channel j: row j of gate and up, column j of down.
//
// The scorers (taylor.go: LLM-Pruner, wandasp.go: Wanda-sp, flap.go: FLAP)
// take their statistics as plain float64 slices — per-channel sums of
// squares, means and variances of the o and down projections' inputs,
// gradients' saliences — so that they can be fed from shared, cached
// statistics (kernels/calibstats) or from anything else.
package width

import (
	"fmt"
	"slices"

	"lrmc/kernels/llama"
)

// LayerPlan is what one block keeps: the indices of its kept key/value heads
// (attention groups) and MLP channels, strictly increasing.
type LayerPlan struct {
	KVHeads  []int
	Channels []int
}

// Plan is a LayerPlan per block of a model.
type Plan []LayerPlan

// Full is the plan that keeps every group of every block of c.
func Full(c llama.Config) Plan {
	p := make(Plan, c.Layers)
	for i := range p {
		w := c.Width(i)
		p[i] = LayerPlan{KVHeads: iota(w.KVHeads), Channels: iota(w.HiddenDim)}
	}
	return p
}

func iota(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// Compensation is FLAP's bias compensation: the mean, over calibration
// tokens, of each input channel of a block's o projection (AttnMean,
// [QDim]) and down projection (MLPMean, [HiddenDim]). Removing channels J
// of a projection W then adds W[:, J]·mean[J] to its output bias, the
// output the removed channels contributed on average. A nil entry (or a nil
// Compensation) compensates nothing for that block.
type Compensation struct {
	AttnMean, MLPMean [][]float64
}

// check reports whether p fits c.
func (p Plan) check(c llama.Config) error {
	if len(p) != c.Layers {
		return fmt.Errorf("width: plan has %d blocks, the model %d", len(p), c.Layers)
	}
	for i, lp := range p {
		w := c.Width(i)
		for _, s := range []struct {
			name string
			keep []int
			n    int
		}{{"kv heads", lp.KVHeads, w.KVHeads}, {"channels", lp.Channels, w.HiddenDim}} {
			if len(s.keep) == 0 {
				return fmt.Errorf("width: block %d keeps no %s; a block keeps at least one of each group", i, s.name)
			}
			for j, k := range s.keep {
				if k < 0 || k >= s.n || (j > 0 && k <= s.keep[j-1]) {
					return fmt.Errorf("width: block %d keeps %s %v: indices must be strictly increasing in [0, %d)", i, s.name, s.keep, s.n)
				}
			}
		}
	}
	return nil
}

// Prune returns m with only the groups p keeps, as a new float32 model (a
// 16-bit m is widened first) that shares no memory with m. Its config has
// the blocks' new widths (llama.Config.SetWidths: uniform when every block
// kept as much). With comp, the o and down projections gain output biases
// (llama.Config.OutBias) compensating the removed channels' mean.
func Prune(m *llama.Model, p Plan, comp *Compensation) (*llama.Model, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("width: %w", err)
	}
	c := m.Config
	if err := p.check(c); err != nil {
		return nil, err
	}
	src := m.Float32()
	out := src.Clone() // the norms and embeddings; projections are replaced
	hd, d := c.HeadDim(), c.Dim
	ws := make([]llama.LayerWidth, c.Layers)
	for i, lp := range p {
		lc := c.Layer(i)
		rep := lc.Heads / lc.KVHeads
		var heads []int // kept query heads
		for _, g := range lp.KVHeads {
			for r := range rep {
				heads = append(heads, g*rep+r)
			}
		}
		qRows, kvRows := expand(heads, hd), expand(lp.KVHeads, hd)
		l, o := &src.Layers[i], &out.Layers[i]
		o.Wq, o.Wk, o.Wv = rows(l.Wq, d, qRows), rows(l.Wk, d, kvRows), rows(l.Wv, d, kvRows)
		o.Wo = cols(l.Wo, lc.QDim(), qRows)
		if c.QKVBias {
			o.Bq, o.Bk, o.Bv = rows(l.Bq, 1, qRows), rows(l.Bk, 1, kvRows), rows(l.Bv, 1, kvRows)
		}
		o.W1, o.W3 = rows(l.W1, d, lp.Channels), rows(l.W3, d, lp.Channels)
		o.W2 = cols(l.W2, lc.HiddenDim, lp.Channels)
		if comp != nil {
			if comp.AttnMean != nil && comp.AttnMean[i] != nil {
				if len(comp.AttnMean[i]) != lc.QDim() {
					return nil, fmt.Errorf("width: block %d: attention mean has %d channels, o_proj %d", i, len(comp.AttnMean[i]), lc.QDim())
				}
				o.Bo = compensate(o.Bo, l.Wo, d, lc.QDim(), qRows, comp.AttnMean[i])
			}
			if comp.MLPMean != nil && comp.MLPMean[i] != nil {
				if len(comp.MLPMean[i]) != lc.HiddenDim {
					return nil, fmt.Errorf("width: block %d: MLP mean has %d channels, down_proj %d", i, len(comp.MLPMean[i]), lc.HiddenDim)
				}
				o.B2 = compensate(o.B2, l.W2, d, lc.HiddenDim, lp.Channels, comp.MLPMean[i])
			}
		}
		ws[i] = llama.LayerWidth{Heads: len(heads), KVHeads: len(lp.KVHeads), HiddenDim: len(lp.Channels)}
	}
	out.Config = c.SetWidths(ws)
	if comp != nil || c.OutBias {
		out.Config.OutBias = true
		for i := range out.Layers {
			o := &out.Layers[i]
			if o.Bo == nil {
				o.Bo = make([]float32, d)
			}
			if o.B2 == nil {
				o.B2 = make([]float32, d)
			}
		}
	}
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("width: pruned model: %w", err)
	}
	return out, nil
}

// expand turns kept heads into their kept rows, size rows per head.
func expand(heads []int, size int) []int {
	r := make([]int, 0, len(heads)*size)
	for _, h := range heads {
		for j := range size {
			r = append(r, h*size+j)
		}
	}
	return r
}

// rows gathers the listed rows (each width wide) of w; nil stays nil.
func rows(w []float32, width int, keep []int) []float32 {
	if w == nil {
		return nil
	}
	out := make([]float32, 0, len(keep)*width)
	for _, r := range keep {
		out = append(out, w[r*width:(r+1)*width]...)
	}
	return out
}

// cols gathers the listed columns of w, [len(w)/in, in].
func cols(w []float32, in int, keep []int) []float32 {
	n := len(w) / in
	out := make([]float32, n*len(keep))
	for r := range n {
		row, dst := w[r*in:(r+1)*in], out[r*len(keep):(r+1)*len(keep)]
		for j, k := range keep {
			dst[j] = row[k]
		}
	}
	return out
}

// compensate returns bias (nil: zeros) plus W[:, removed]·mean[removed] for
// W [out, in], removed being the columns not in keep. The sum is float64.
func compensate(bias, w []float32, out, in int, keep []int, mean []float64) []float32 {
	kept := make([]bool, in)
	for _, k := range keep {
		kept[k] = true
	}
	b := make([]float32, out)
	copy(b, bias)
	for r := range out {
		row := w[r*in : (r+1)*in]
		var s float64
		for j, x := range row {
			if !kept[j] {
				s += float64(x) * mean[j]
			}
		}
		b[r] = float32(float64(b[r]) + s)
	}
	return b
}

// keepTop returns the indices of the k highest scores, increasing; ties
// keep the lower index, so the choice is deterministic.
func keepTop(scores []float64, k int) []int {
	idx := iota(len(scores))
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case scores[a] > scores[b]:
			return -1
		case scores[a] < scores[b]:
			return 1
		}
		return 0
	})
	keep := slices.Clone(idx[:k])
	slices.Sort(keep)
	return keep
}
