package width

import (
	"fmt"

	"lrmc/kernels/llama"
)

// TaylorLayer is one block's first-order Taylor saliences, in the units
// kernels/train's Taylor accumulates (element-wise Σ|w·g|, or vector-wise
// Σ over weight vectors of |Σ w·g|): Heads per query head (its Wq rows with
// Bq, its Wo columns), KVHeads per key/value head (Wk and Wv rows with
// their biases), Channels per MLP channel (gate and up rows, down column).
type TaylorLayer struct {
	Heads, KVHeads, Channels []float64
}

// Range is a half-open range of blocks [Start, End).
type Range struct{ Start, End int }

// DefaultRange is LLM-Pruner's default for a model of n blocks: it leaves
// the first 4 and the last 2 alone (block_*_layer_start=4,
// block_*_layer_end=30 for Llama-7B's 32).
func DefaultRange(n int) Range { return Range{4, n - 2} }

// LLMPrunerGroups sums a block's saliences per dependency group, as
// LLM-Pruner's group reduction "sum" does: an attention group is its kv
// head and the rep query heads that read it; an MLP group is a channel.
func LLMPrunerGroups(s TaylorLayer, rep int) (attn, mlp []float64) {
	attn = headsToGroups(s.Heads, rep)
	for g, x := range s.KVHeads {
		attn[g] += x
	}
	return attn, s.Channels
}

// LLMPrunerPlan is LLM-Pruner's block-wise pruning: every block in r keeps
// ⌊n·(1−ratio)⌋ (at least 1) of its n attention groups and of its MLP
// channels, those with the highest summed Taylor salience; blocks outside r
// keep everything. Removing the same fraction of both kinds removes that
// fraction of the pruned blocks' projection weights.
func LLMPrunerPlan(c llama.Config, s []TaylorLayer, ratio float64, r Range) (Plan, error) {
	if !(ratio >= 0 && ratio < 1) {
		return nil, fmt.Errorf("width: llm-pruner ratio %g outside [0, 1)", ratio)
	}
	if r.Start < 0 || r.End > c.Layers || r.Start >= r.End {
		return nil, fmt.Errorf("width: llm-pruner layer range [%d, %d) is empty or outside the model's %d blocks", r.Start, r.End, c.Layers)
	}
	if len(s) != c.Layers {
		return nil, fmt.Errorf("width: llm-pruner has saliences of %d blocks, the model %d", len(s), c.Layers)
	}
	p := Full(c)
	for i := r.Start; i < r.End; i++ {
		w := c.Width(i)
		if len(s[i].Heads) != w.Heads || len(s[i].KVHeads) != w.KVHeads || len(s[i].Channels) != w.HiddenDim {
			return nil, fmt.Errorf("width: llm-pruner saliences of block %d cover %d heads, %d kv heads, %d channels; the block has %d, %d, %d",
				i, len(s[i].Heads), len(s[i].KVHeads), len(s[i].Channels), w.Heads, w.KVHeads, w.HiddenDim)
		}
		attn, mlp := LLMPrunerGroups(s[i], w.Heads/w.KVHeads)
		p[i] = LayerPlan{
			KVHeads:  keepTop(attn, keepOf(len(attn), ratio)),
			Channels: keepTop(mlp, keepOf(len(mlp), ratio)),
		}
	}
	return p, nil
}

// keepOf is torch-pruning's kept count, ⌊n·(1−ratio)⌋, at least 1.
func keepOf(n int, ratio float64) int {
	return max(1, int(float64(n)*(1-ratio)))
}
