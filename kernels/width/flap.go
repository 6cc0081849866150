package width

import (
	"fmt"
	"math"
	"slices"

	"lrmc/kernels/llama"
)

// FLAPInputs are one block's calibration statistics FLAP needs: the mean
// and the variance over calibration tokens of every input channel of the o
// projection ([QDim]) and of the down projection ([HiddenDim]).
type FLAPInputs struct {
	OMean, OVar, DownMean, DownVar []float64
}

// FLAPScores is FLAP's fluctuation metric (WIFV) of one block's channels:
// input channel j of W scores Var(x_j)·Σ_i W[i, j]², the output change its
// fluctuation around its mean causes. The o projection's channel scores are
// squared, as FLAP's prune_flap does. l must be float32.
func FLAPScores(c llama.Config, layer int, l *llama.Layer, in FLAPInputs) (attn, mlp []float64, err error) {
	lc := c.Layer(layer)
	if len(in.OVar) != lc.QDim() || len(in.DownVar) != lc.HiddenDim {
		return nil, nil, fmt.Errorf("width: flap block %d: variances of %d and %d channels, o_proj and down_proj read %d and %d",
			layer, len(in.OVar), len(in.DownVar), lc.QDim(), lc.HiddenDim)
	}
	metric := func(w []float32, width int, v []float64) []float64 {
		s := columnSums(w, width, func(x float32) float64 { return float64(x) * float64(x) })
		for j := range s {
			s[j] *= v[j]
		}
		return s
	}
	attn = metric(l.Wo, lc.QDim(), in.OVar)
	for j, x := range attn {
		attn[j] = x * x
	}
	return attn, metric(l.W2, lc.HiddenDim, in.DownVar), nil
}

// FLAPPlan is FLAP's adaptive structure across layers and modules (its
// default, AL-AM): every block's attention channel scores are standardized
// over that block ((x−mean)/std, std with n−1, as FLAP's prune_flap), and
// so are its MLP channel scores; an attention group scores the mean of its
// standardized channels. All
// groups of all blocks are then ranked together, each weighing its
// parameters (an attention group of a kv head with rep query heads weighs
// (2·rep+2)·HeadDim/3 MLP channels: FLAP's 512/3 for 128-wide heads
// without GQA), and the groups above the score where the kept weight is
// closest to (1−ratio) of the total are kept. A block that would keep no
// group of a kind keeps its best one.
func FLAPPlan(c llama.Config, attn, mlp [][]float64, ratio float64) (Plan, error) {
	if !(ratio >= 0 && ratio < 1) {
		return nil, fmt.Errorf("width: flap ratio %g outside [0, 1)", ratio)
	}
	if len(attn) != c.Layers || len(mlp) != c.Layers {
		return nil, fmt.Errorf("width: flap has scores of %d and %d blocks, the model %d", len(attn), len(mlp), c.Layers)
	}
	attnZ, mlpZ := standardize(attn), standardize(mlp)
	type unit struct {
		layer, idx int
		mlp        bool
		score      float64
		weight     float64
	}
	var units []unit
	for i := range c.Layers {
		lc := c.Layer(i)
		if len(attn[i]) != lc.QDim() || len(mlp[i]) != lc.HiddenDim {
			return nil, fmt.Errorf("width: flap block %d: %d attention and %d MLP channel scores, the block has %d and %d",
				i, len(attn[i]), len(mlp[i]), lc.QDim(), lc.HiddenDim)
		}
		ga, gm := groupParams(lc)
		size := lc.QDim() / lc.KVHeads // channels of one attention group
		for g, s := range sumRuns(attnZ[i], size) {
			units = append(units, unit{i, g, false, s / float64(size), float64(ga) / float64(gm)})
		}
		for j, s := range mlpZ[i] {
			units = append(units, unit{i, j, true, s, 1})
		}
	}
	// Descending score; ties in a fixed order, so the plan is deterministic.
	slices.SortStableFunc(units, func(a, b unit) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return 0
	})
	var total float64
	for _, u := range units {
		total += u.weight
	}
	target := total * (1 - ratio)
	best, bestDiff, cum := 0, math.Inf(1), 0.0
	for k, u := range units {
		cum += u.weight
		if d := math.Abs(cum - target); d < bestDiff {
			best, bestDiff = k, d
		}
	}
	threshold := units[best].score
	p := make(Plan, c.Layers)
	for _, u := range units {
		if u.score <= threshold {
			continue
		}
		if u.mlp {
			p[u.layer].Channels = append(p[u.layer].Channels, u.idx)
		} else {
			p[u.layer].KVHeads = append(p[u.layer].KVHeads, u.idx)
		}
	}
	for i := range p {
		lc := c.Layer(i)
		if len(p[i].KVHeads) == 0 {
			p[i].KVHeads = keepTop(sumRuns(attnZ[i], lc.QDim()/lc.KVHeads), 1)
		}
		if len(p[i].Channels) == 0 {
			p[i].Channels = keepTop(mlpZ[i], 1)
		}
		slices.Sort(p[i].KVHeads)
		slices.Sort(p[i].Channels)
	}
	return p, nil
}

// standardize returns every block's scores as (x−mean)/std over that
// block's own values (FLAP's standarlization, axis=1 of the [blocks,
// channels] stack), std with Bessel's correction as torch.std; a constant
// block, or one of a single value, becomes zeros.
func standardize(v [][]float64) [][]float64 {
	out := make([][]float64, len(v))
	for i, b := range v {
		out[i] = make([]float64, len(b))
		n := float64(len(b))
		var sum float64
		for _, x := range b {
			sum += x
		}
		mean := sum / n
		var ss float64
		for _, x := range b {
			ss += (x - mean) * (x - mean)
		}
		std := math.Sqrt(ss / (n - 1))
		if !(std > 0) || len(b) < 2 {
			continue
		}
		for j, x := range b {
			out[i][j] = (x - mean) / std
		}
	}
	return out
}

// FLAPCompensation is the bias compensation of FLAP for inputs: the means
// of the o and down projections' input channels.
func FLAPCompensation(in []FLAPInputs) *Compensation {
	c := &Compensation{AttnMean: make([][]float64, len(in)), MLPMean: make([][]float64, len(in))}
	for i, x := range in {
		c.AttnMean[i], c.MLPMean[i] = x.OMean, x.DownMean
	}
	return c
}
