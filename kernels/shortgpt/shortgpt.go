// Package shortgpt implements ShortGPT's layer pruning criterion (Men et al.
// 2024, arXiv 2403.03853): a block whose output hidden states point the same
// way as its inputs changes little, and the blocks with the lowest block
// influence are removed in one shot.
//
// BI_i = 1 − mean over tokens t of cos(x_{i,t}, x_{i+1,t}), where x_i is the
// hidden state entering block i and x_{i+1} the one leaving it.
package shortgpt

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"lrmc/kernels/tensor"
)

// zeroCos is the cosine taken when either vector is zero. ShortGPT's code
// (icip-cas/ShortGPT, shortgpt/metrics.py) divides a·b by ‖a‖‖b‖ without an
// epsilon and maps the resulting 0/0 NaN to 0.5 with nan_to_num(nan=0.5);
// this value mirrors it, so such a token contributes 1 − 0.5 to BI.
const zeroCos = 0.5

// Stats is the sufficient statistic of one block's influence: the sum of the
// per-token cosines and the number of tokens. Stats over separate batches
// merge by adding both fields, so a block's score can be built up one
// calibration batch at a time and cached independently of how many blocks are
// later removed.
type Stats struct {
	CosSum float64
	Tokens int
}

// Add accumulates the tokens of one batch. in and out are the hidden states
// entering and leaving the block, [tokens × dim] row-major, token t of in
// pairing with token t of out. Each cosine is computed in float64:
// a·b / (‖a‖‖b‖), or 0.5 when a or b is the zero vector (see zeroCos).
//
// Unlike ShortGPT's code, which would turn a NaN from a corrupt activation
// into 0.5 as well, Add rejects non-finite inputs, naming the token.
func (s *Stats) Add(in, out []float32, dim int) error {
	if dim < 1 {
		return fmt.Errorf("block influence: hidden size %d is not positive", dim)
	}
	if len(in) != len(out) {
		return fmt.Errorf("block influence: %d input values but %d output values", len(in), len(out))
	}
	if len(in)%dim != 0 {
		return fmt.Errorf("block influence: %d values are not whole tokens of hidden size %d", len(in), dim)
	}
	tokens := len(in) / dim
	// Each token's cosine is its own (threads take ranges of tokens); the
	// cosines are then summed in token order, so the sum has the same bits
	// on any number of threads.
	cos := make([]float64, tokens)
	tensor.Parallel(tokens, max(1, (1<<16)/dim), func(lo, hi int) {
		for t := lo; t < hi; t++ {
			cos[t] = cosine(in[t*dim:(t+1)*dim], out[t*dim:(t+1)*dim])
		}
	})
	var sum float64
	for t, c := range cos {
		if math.IsNaN(c) {
			return fmt.Errorf("block influence: token %d of the batch has a non-finite hidden state", t)
		}
		sum += c
	}
	s.CosSum += sum
	s.Tokens += tokens
	return nil
}

// Influence returns BI = 1 − CosSum/Tokens, NaN when there are no tokens.
func (s *Stats) Influence() float64 {
	return 1 - s.CosSum/float64(s.Tokens)
}

// BlockInfluence returns BI for one batch of hidden states (see Stats.Add).
func BlockInfluence(in, out []float32, dim int) (float64, error) {
	var s Stats
	if err := s.Add(in, out, dim); err != nil {
		return 0, err
	}
	if s.Tokens == 0 {
		return 0, fmt.Errorf("block influence: no tokens")
	}
	return s.Influence(), nil
}

// cosine returns a·b / (‖a‖‖b‖) in float64, or zeroCos when a or b is zero.
// Non-finite inputs give NaN.
func cosine(a, b []float32) float64 {
	var dot, na, nb float64
	b = b[:len(a)]
	for i, x := range a {
		xa, xb := float64(x), float64(b[i])
		dot += xa * xb
		na += xa * xa
		nb += xb * xb
	}
	switch {
	case math.IsNaN(na+nb) || math.IsInf(na+nb, 0):
		return math.NaN()
	case na == 0 || nb == 0:
		return zeroCos
	}
	return dot / (math.Sqrt(na) * math.Sqrt(nb))
}

// Lowest returns the indices of the remove lowest scores, in ascending index
// order. Among equal scores the lower index is removed first; ShortGPT's code
// ranks with numpy's argsort, whose tie order is unspecified. It is an error
// to remove no block or all of them, or to rank a NaN score.
func Lowest(scores []float64, remove int) ([]int, error) {
	if remove < 1 || remove >= len(scores) {
		return nil, fmt.Errorf("cannot remove %d of %d blocks: remove at least 1 and keep at least 1", remove, len(scores))
	}
	for i, s := range scores {
		if math.IsNaN(s) {
			return nil, fmt.Errorf("block %d has a NaN score", i)
		}
	}
	order := make([]int, len(scores))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int { return cmp.Compare(scores[i], scores[j]) })
	removed := order[:remove]
	slices.Sort(removed)
	return removed, nil
}

// Keep returns the indices in [0, n) that are not in removed, ascending: the
// blocks that stay. Duplicates in removed are harmless; an index outside
// [0, n) panics, since removal lists are validated before they get here.
func Keep(n int, removed []int) []int {
	gone := make([]bool, n)
	for _, r := range removed {
		if r < 0 || r >= n {
			panic(fmt.Sprintf("shortgpt.Keep: removed block %d is outside [0, %d)", r, n))
		}
		gone[r] = true
	}
	kept := make([]int, 0, n)
	for i, g := range gone {
		if !g {
			kept = append(kept, i)
		}
	}
	return kept
}
