package ops

import (
	"context"
	"fmt"
	"slices"

	"lrmc/executor"
	"lrmc/kernels/shortgpt"
	"lrmc/planner"
)

// BlockScore is one block's ShortGPT statistics.
type BlockScore struct {
	Layer     int     `json:"layer"`
	Influence float64 `json:"influence"`
	Tokens    int     `json:"tokens"`
}

// shortgptBI scores one block. Inputs: hidden states entering and leaving it.
// The score is a small cached statistic, so every removal count and ratio
// reuses it.
type shortgptBI struct{ jsonCodec[BlockScore] }

func (shortgptBI) Version() int { return 1 }

func (shortgptBI) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.ShortGPTBIParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	in, err := input[Hidden](c, 0)
	if err != nil {
		return nil, err
	}
	out, err := input[Hidden](c, 1)
	if err != nil {
		return nil, err
	}
	if in.Rows != out.Rows || in.Dim != out.Dim {
		return nil, fmt.Errorf("block %d: taps differ in shape: %d×%d vs %d×%d", p.Layer, in.Rows, in.Dim, out.Rows, out.Dim)
	}
	bi, err := shortgpt.BlockInfluence(in.Data, out.Data, in.Dim)
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", p.Layer, err)
	}
	return BlockScore{Layer: p.Layer, Influence: bi, Tokens: in.Rows}, nil
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

// pruneDepth picks the blocks to remove: the lowest-scoring ones for
// ShortGPT (block influence), Shortened-LLM PPL (calibration perplexity
// without the block) and Taylor (Σ|w·∂L/∂w| of the block); SLEB's greedy
// removals; or an explicit list.
type pruneDepth struct{ jsonCodec[Decision] }

func (pruneDepth) Version() int { return 1 }

func (pruneDepth) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.PruneDepthParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	d := Decision{Method: p.Method, Blocks: p.Blocks}
	switch p.Method {
	case "explicit":
		d.Removed = slices.Clone(p.Layers)
	case "sleb":
		last, err := input[SLEBStep](c, 0)
		if err != nil {
			return nil, err
		}
		if len(last.Removed) != p.Remove {
			return nil, fmt.Errorf("sleb search removed %d blocks, want %d", len(last.Removed), p.Remove)
		}
		d.Removed = slices.Sorted(slices.Values(last.Removed))
		d.Order = slices.Clone(last.Removed)
	case "shortgpt", "shortened-ppl", "shortened-taylor":
		scores, err := depthScores(c, p.Method, p.Blocks)
		if err != nil {
			return nil, err
		}
		d.Scores = scores
		removed, err := shortgpt.Lowest(d.Scores, p.Remove)
		if err != nil {
			return nil, err
		}
		d.Removed = removed
	default:
		return nil, fmt.Errorf("unknown depth method %q", p.Method)
	}
	d.Kept = shortgpt.Keep(p.Blocks, d.Removed)
	return d, nil
}
