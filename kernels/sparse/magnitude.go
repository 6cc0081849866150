package sparse

import "math"

// Magnitude returns the mask (true = prune) of magnitude pruning a
// [rows × cols] weight: the ⌊ratio·rows·cols⌋ weights of smallest |W| in
// the whole layer, as wanda's prune_magnitude ranks them, or under an N:M
// pattern the M−N smallest |W| of every group.
func Magnitude(w []float32, rows, cols int, p Pattern) ([]bool, error) {
	if err := p.check(w, rows, cols); err != nil {
		return nil, wrap("magnitude", err)
	}
	score := make([]float64, len(w))
	for i, v := range w {
		score[i] = math.Abs(float64(v))
	}
	mask := make([]bool, len(w))
	if p.NM() {
		pruneNM(score, rows, cols, p.N, p.M, mask)
		return mask, nil
	}
	idx := make([]int, len(w))
	for i := range idx {
		idx[i] = i
	}
	pruneLowest(score, idx, count(len(w), p.Ratio), mask)
	return mask, nil
}
