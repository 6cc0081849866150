package width

import (
	"fmt"
	"math"

	"lrmc/kernels/llama"
)

// WandaSPScores is Wanda-sp's importance (FLAP's repository, prune_wanda_sp)
// of one block's groups: each input channel j of the o and down projections
// W scores mean_i |W[i, j]| · √(Σx_j²/n), the Wanda metric averaged over the
// output rows, with Σx_j² the channel's sum of squares over the calibration
// tokens and n the number of calibration sequences (Wanda's scaler_row); a
// head scores the sum of its channels, an attention group the sum of its
// query heads. l must be float32 (llama.Model.Float32).
func WandaSPScores(c llama.Config, layer int, l *llama.Layer, oSumSq, downSumSq []float64, n float64) (attn, mlp []float64, err error) {
	lc := c.Layer(layer)
	if len(oSumSq) != lc.QDim() || len(downSumSq) != lc.HiddenDim {
		return nil, nil, fmt.Errorf("width: wanda-sp block %d: input statistics of %d and %d channels, o_proj and down_proj read %d and %d",
			layer, len(oSumSq), len(downSumSq), lc.QDim(), lc.HiddenDim)
	}
	if !(n > 0) {
		return nil, nil, fmt.Errorf("width: wanda-sp block %d: %g calibration sequences", layer, n)
	}
	metric := func(w []float32, in int, sumSq []float64) []float64 {
		s := columnSums(w, in, func(x float32) float64 { return math.Abs(float64(x)) })
		rows := float64(len(w) / in)
		for j := range s {
			s[j] = s[j] / rows * math.Sqrt(sumSq[j]/n)
		}
		return s
	}
	heads := sumRuns(metric(l.Wo, lc.QDim(), oSumSq), lc.HeadDim())
	return headsToGroups(heads, lc.Heads/lc.KVHeads), metric(l.W2, lc.HiddenDim, downSumSq), nil
}

// WandaSPPlan prunes every block alike, as Wanda-sp does: each block
// removes ⌊ratio·groups⌋ of its attention groups (those scoring lowest),
// then as many MLP channels as bring the parameters it removes to ratio of
// its projection weights (FLAP's cal_remove_neuron), at least one group of
// each kind kept.
func WandaSPPlan(c llama.Config, attn, mlp [][]float64, ratio float64) (Plan, error) {
	if !(ratio >= 0 && ratio < 1) {
		return nil, fmt.Errorf("width: wanda-sp ratio %g outside [0, 1)", ratio)
	}
	if len(attn) != c.Layers || len(mlp) != c.Layers {
		return nil, fmt.Errorf("width: wanda-sp has scores of %d and %d blocks, the model %d", len(attn), len(mlp), c.Layers)
	}
	p := make(Plan, c.Layers)
	for i := range p {
		lc := c.Layer(i)
		if len(attn[i]) != lc.KVHeads || len(mlp[i]) != lc.HiddenDim {
			return nil, fmt.Errorf("width: wanda-sp block %d: %d attention and %d MLP scores, the block has %d and %d groups",
				i, len(attn[i]), len(mlp[i]), lc.KVHeads, lc.HiddenDim)
		}
		ga, gm := groupParams(lc)
		total := float64(ga*lc.KVHeads + gm*lc.HiddenDim)
		removeHeads := min(int(ratio*float64(lc.KVHeads)), lc.KVHeads-1)
		removeCh := int((ratio*total - float64(removeHeads*ga)) / float64(gm))
		removeCh = min(max(removeCh, 0), lc.HiddenDim-1)
		p[i] = LayerPlan{
			KVHeads:  keepTop(attn[i], lc.KVHeads-removeHeads),
			Channels: keepTop(mlp[i], lc.HiddenDim-removeCh),
		}
	}
	return p, nil
}
