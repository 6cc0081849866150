package sparse

import (
	"fmt"
	"math"
)

// Wanda returns the mask (true = prune) of Wanda on a [rows × cols] weight
// whose input channel j has norm[j] = ‖X_j‖₂ over the calibration tokens
// (calibstats.Site.Norm): the score |W_ij|·‖X_j‖₂ is compared within each
// output row, and the ⌊ratio·cols⌋ lowest of every row are pruned (the
// reference's default per-output comparison group), or under an N:M pattern
// the M−N lowest of every group. The reference's scaler_row is ‖X_j‖²
// divided by the number of windows, which scales every score of a layer
// alike and so selects the same weights.
func Wanda(w []float32, rows, cols int, norm []float64, p Pattern) ([]bool, error) {
	if err := p.check(w, rows, cols); err != nil {
		return nil, wrap("wanda", err)
	}
	if len(norm) != cols {
		return nil, fmt.Errorf("wanda: %d input norms for a weight of %d inputs", len(norm), cols)
	}
	for j, v := range norm {
		if !(v >= 0) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("wanda: input norm %d is %v", j, v)
		}
	}
	score := make([]float64, len(w))
	for i, v := range w {
		score[i] = math.Abs(float64(v)) * norm[i%cols]
	}
	mask := make([]bool, len(w))
	if p.NM() {
		pruneNM(score, rows, cols, p.N, p.M, mask)
		return mask, nil
	}
	k := count(cols, p.Ratio)
	idx := make([]int, cols)
	for r := range rows {
		for j := range idx {
			idx[j] = r*cols + j
		}
		pruneLowest(score, idx, k, mask)
	}
	return mask, nil
}

func wrap(method string, err error) error { return fmt.Errorf("%s: %w", method, err) }
