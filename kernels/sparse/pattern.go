// Package sparse prunes the weights of linear layers to unstructured or
// semi-structured (N:M) sparsity, as magnitude pruning, Wanda (Sun et al.
// 2023, locuslab/wanda) and SparseGPT (Frantar & Alistarh 2023,
// IST-DASLab/sparsegpt) do. Weights are [rows = outputs, cols = inputs]
// row-major, as PyTorch's nn.Linear holds them; a pruned weight is set to
// zero and the layer keeps its shape.
//
// The selection reproduces the reference code's granularity: magnitude
// pruning ranks a whole layer, Wanda each output row, SparseGPT each block
// of 128 columns (all rows together), and N:M patterns every group of M
// consecutive inputs of a row. Where the references use a threshold
// (magnitude and SparseGPT prune every score ≤ the k-th smallest, which is
// k+1 weights and more on ties), lrmc prunes exactly k = ⌊ratio·n⌋ weights,
// ties going to the lower index (a stable sort), so the sparsity is what was
// asked for and does not depend on ties.
package sparse

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Pattern is a target sparsity: either Ratio of every layer's weights
// (unstructured), or N kept of every M consecutive input weights of a row
// (semi-structured; 2:4 is the one sparse tensor cores run).
type Pattern struct {
	Ratio float64 // unstructured: fraction of weights zeroed, in [0, 1)
	N, M  int     // N:M: keep N of every M; M == 0 means unstructured
}

// Unstructured is the pattern that zeroes a fraction ratio of the weights.
func Unstructured(ratio float64) (Pattern, error) {
	if !(ratio >= 0 && ratio < 1) {
		return Pattern{}, fmt.Errorf("sparsity ratio %v is outside [0, 1)", ratio)
	}
	return Pattern{Ratio: ratio}, nil
}

// ParseNM reads "N:M", N kept of every M consecutive inputs (NVIDIA's
// convention). The references' "2:4" and "4:8" arguments name the count
// pruned instead; for those two, the only ones they use, both readings
// coincide.
func ParseNM(s string) (Pattern, error) {
	a, b, ok := strings.Cut(s, ":")
	n, errN := strconv.Atoi(a)
	m, errM := strconv.Atoi(b)
	if !ok || errN != nil || errM != nil {
		return Pattern{}, fmt.Errorf("sparsity pattern %q is not N:M (e.g. \"2:4\")", s)
	}
	if n < 1 || m < 2 || n >= m || m > 64 {
		return Pattern{}, fmt.Errorf("sparsity pattern %q needs 1 ≤ N < M ≤ 64", s)
	}
	return Pattern{N: n, M: m, Ratio: 1 - float64(n)/float64(m)}, nil
}

// NM says whether p is semi-structured.
func (p Pattern) NM() bool { return p.M > 0 }

func (p Pattern) String() string {
	if p.NM() {
		return fmt.Sprintf("%d:%d", p.N, p.M)
	}
	return strconv.FormatFloat(p.Ratio, 'g', -1, 64)
}

// check validates p against a [rows × cols] weight and the weight's values.
func (p Pattern) check(w []float32, rows, cols int) error {
	if rows < 1 || cols < 1 || len(w) != rows*cols {
		return fmt.Errorf("weight holds %d values, want %d × %d", len(w), rows, cols)
	}
	if p.NM() {
		if p.N < 1 || p.N >= p.M {
			return fmt.Errorf("sparsity pattern %d:%d needs 1 ≤ N < M", p.N, p.M)
		}
		if cols%p.M != 0 {
			return fmt.Errorf("%d:%d sparsity needs the input width to be a multiple of %d, got %d", p.N, p.M, p.M, cols)
		}
	} else if !(p.Ratio >= 0 && p.Ratio < 1) {
		return fmt.Errorf("sparsity ratio %v is outside [0, 1)", p.Ratio)
	}
	for i, v := range w {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("weight [%d, %d] is %v", i/cols, i%cols, v)
		}
	}
	return nil
}

// count is ⌊ratio·n⌋, computed as the references do (Python's
// int(n * ratio) on a float64).
func count(n int, ratio float64) int { return int(float64(n) * ratio) }

// pruneLowest marks in mask the k indices of idx (positions into score and
// mask) with the lowest scores, ties to the earlier position in idx.
func pruneLowest(score []float64, idx []int, k int, mask []bool) {
	order := slices.Clone(idx)
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(score[a], score[b]) })
	for _, i := range order[:k] {
		mask[i] = true
	}
}

// pruneNM marks, in every group of m consecutive columns of every row of a
// [rows × cols] score, the m−n lowest scores (ties to the lower column).
func pruneNM(score []float64, rows, cols, n, m int, mask []bool) {
	idx := make([]int, m)
	for r := range rows {
		for g := 0; g < cols; g += m {
			for j := range idx {
				idx[j] = r*cols + g + j
			}
			pruneLowest(score, idx, m-n, mask)
		}
	}
}

// Apply zeroes the weights mask marks.
func Apply(w []float32, mask []bool) {
	for i, pruned := range mask {
		if pruned {
			w[i] = 0
		}
	}
}
