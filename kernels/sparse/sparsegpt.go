package sparse

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"

	"lrmc/kernels/tensor"
)

// SparseGPTOptions are SparseGPT's knobs; the zero value is the
// reference's defaults.
type SparseGPTOptions struct {
	// BlockSize is the number of columns pruned and updated together
	// before the rest of the weight is updated at once (default 128); the
	// unstructured mask is chosen per block. Under N:M it must be a
	// multiple of M.
	BlockSize int
	// PercDamp is the dampening added to H's diagonal, as a fraction of
	// its mean (default 0.01).
	PercDamp float64
}

func (o SparseGPTOptions) withDefaults() SparseGPTOptions {
	if o.BlockSize == 0 {
		o.BlockSize = 128
	}
	if o.PercDamp == 0 {
		o.PercDamp = 0.01
	}
	return o
}

// SparseGPT prunes w, [rows × cols] row-major, in place by SparseGPT's
// fasterprune (IST-DASLab/sparsegpt, sparsegpt.py): with H the layer's
// input Hessian (cols × cols, e.g. calibstats.Site.Hessian, 2/n·XᵀX), it
// zeroes the inputs H never saw (diag 0, their diagonal set to 1), adds
// PercDamp·mean(diag H) to the diagonal, takes U, the upper Cholesky factor
// of H⁻¹ (gonum), and walks the columns in blocks of BlockSize. In each
// block the unstructured mask prunes the ⌊ratio·rows·count⌋ lowest
// w²/U_jj² of the block (N:M: the M−N lowest of every group of every row,
// chosen when the group's first column is reached); each column is then
// quantized to its mask, its error (w−q)/U_jj spread over the block's later
// columns through U's row, and the block's errors over all later columns at
// once. All arithmetic is float64; the result is rounded to float32 once.
// It returns the reference's loss, Σ (w−q)²/U_jj² / 2.
//
// Rows are independent given the mask, so they run in parallel; each row's
// arithmetic is in a fixed order, and the result does not depend on the
// number of threads.
func SparseGPT(w []float32, rows, cols int, h []float64, p Pattern, o SparseGPTOptions) (float64, error) {
	o = o.withDefaults()
	if err := p.check(w, rows, cols); err != nil {
		return 0, wrap("sparsegpt", err)
	}
	if len(h) != cols*cols {
		return 0, fmt.Errorf("sparsegpt: Hessian holds %d values, want %d × %d", len(h), cols, cols)
	}
	if o.BlockSize < 1 || (p.NM() && o.BlockSize%p.M != 0) {
		return 0, fmt.Errorf("sparsegpt: block size %d must be positive and, under %s, a multiple of %d", o.BlockSize, p, p.M)
	}
	if !(o.PercDamp > 0) {
		return 0, fmt.Errorf("sparsegpt: dampening %v must be positive", o.PercDamp)
	}
	u, dead, err := hinvChol(h, cols, o.PercDamp)
	if err != nil {
		return 0, err
	}

	W := make([]float64, len(w))
	for i, v := range w {
		W[i] = float64(v)
		if dead[i%cols] {
			W[i] = 0
		}
	}
	mask := make([]bool, len(w))
	loss := make([]float64, rows)
	bs := o.BlockSize
	for i1 := 0; i1 < cols; i1 += bs {
		i2 := min(i1+bs, cols)
		n := i2 - i1
		if !p.NM() {
			// The block's mask: all rows together, scored on the weights
			// as the earlier blocks' updates left them.
			score := make([]float64, rows*n)
			idx := make([]int, rows*n)
			for r := range rows {
				for j := range n {
					d := u[(i1+j)*cols+i1+j]
					v := W[r*cols+i1+j]
					score[r*n+j] = v * v / (d * d)
					idx[r*n+j] = r*n + j
				}
			}
			bm := make([]bool, rows*n)
			pruneLowest(score, idx, count(rows*n, p.Ratio), bm)
			for r := range rows {
				copy(mask[r*cols+i1:r*cols+i2], bm[r*n:(r+1)*n])
			}
		}
		errs := make([]float64, rows*n) // Err1, [rows × n]
		tensor.Parallel(rows, 4, func(lo, hi int) {
			score := make([]float64, max(p.M, 1))
			for r := lo; r < hi; r++ {
				row, rm, e := W[r*cols:(r+1)*cols], mask[r*cols:(r+1)*cols], errs[r*n:(r+1)*n]
				for i := range n {
					c := i1 + i
					d := u[c*cols+c]
					if p.NM() && i%p.M == 0 {
						for j := range p.M {
							dj := u[(c+j)*cols+c+j]
							score[j] = row[c+j] * row[c+j] / (dj * dj)
						}
						groupMask(score[:p.M], p.N, rm[c:c+p.M])
					}
					wv := row[c]
					q := wv
					if rm[c] {
						q = 0
					}
					loss[r] += (wv - q) * (wv - q) / (d * d) / 2
					er := (wv - q) / d
					urow := u[c*cols:]
					for j := c; j < i2; j++ {
						row[j] -= er * urow[j]
					}
					row[c] = q
					e[i] = er
				}
				// The lazy update of every later column by the block's errors.
				for i := range n {
					er := e[i]
					if er == 0 {
						continue
					}
					urow := u[(i1+i)*cols:]
					for j := i2; j < cols; j++ {
						row[j] -= er * urow[j]
					}
				}
			}
		})
	}
	var total float64
	for r, v := range W {
		w[r] = float32(v)
	}
	for _, l := range loss {
		total += l
	}
	return total, nil
}

// groupMask marks in mask the m−n lowest of a group's scores, ties to the
// lower column.
func groupMask(score []float64, n int, mask []bool) {
	idx := make([]int, len(score))
	for i := range idx {
		idx[i] = i
	}
	pruneLowest(score, idx, len(score)-n, mask)
}

// hinvChol returns U, the upper Cholesky factor of (H + damp·I)⁻¹,
// [cols × cols] row-major, after setting the diagonal of dead inputs
// (H_jj = 0) to 1, and which inputs were dead. The dampening is
// percDamp·mean(diag H) taken after that fix-up, as the reference does.
func hinvChol(h []float64, cols int, percDamp float64) ([]float64, []bool, error) {
	hs := mat.NewSymDense(cols, nil)
	dead := make([]bool, cols)
	var mean float64
	for i := range cols {
		if h[i*cols+i] == 0 {
			dead[i] = true
		}
		for j := i; j < cols; j++ {
			v := h[i*cols+j]
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, nil, fmt.Errorf("sparsegpt: Hessian [%d, %d] is %v", i, j, v)
			}
			if i == j && dead[i] {
				v = 1
			}
			hs.SetSym(i, j, v)
		}
		mean += hs.At(i, i)
	}
	damp := percDamp * mean / float64(cols)
	for i := range cols {
		hs.SetSym(i, i, hs.At(i, i)+damp)
	}
	var chol mat.Cholesky
	if !chol.Factorize(hs) {
		return nil, nil, fmt.Errorf("sparsegpt: the dampened Hessian (%d × %d) is not positive definite", cols, cols)
	}
	var inv mat.SymDense
	if err := chol.InverseTo(&inv); err != nil {
		return nil, nil, fmt.Errorf("sparsegpt: inverting the Hessian: %w", err)
	}
	if !chol.Factorize(&inv) {
		return nil, nil, fmt.Errorf("sparsegpt: the inverse Hessian (%d × %d) is not positive definite", cols, cols)
	}
	var ut mat.TriDense
	chol.UTo(&ut)
	raw := ut.RawTriangular()
	u := make([]float64, cols*cols)
	for i := range cols {
		for j := i; j < cols; j++ {
			u[i*cols+j] = raw.Data[i*raw.Stride+j]
		}
	}
	return u, dead, nil
}
