package slicegpt

import (
	"errors"
	"fmt"
	"slices"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"

	"lrmc/kernels/tensor"
)

// Cov accumulates H = Σ_t x_t·x_tᵀ over calibration rows x_t in float64,
// the reference's pca_calc: the second moment, not centred (the rotation
// must keep the residual's own geometry, mean included), and not divided
// by the count (a scale does not change the eigenvectors).
type Cov struct {
	Dim  int
	Rows int64     // rows accumulated
	Sum  []float64 // [Dim, Dim] row-major, symmetric
}

// NewCov returns an empty accumulator for rows of width dim.
func NewCov(dim int) *Cov {
	return &Cov{Dim: dim, Sum: make([]float64, dim*dim)}
}

// covBlock is the number of rows transposed to float64 and reduced at a
// time: every element of H gains one dot product of covBlock terms per
// block, so the order of the float64 additions is fixed by the rows alone.
const covBlock = 256

// Add accumulates the rows of x, [rows, Dim] float32, widened exactly to
// float64. Work is split over the rows of H, each computed by one
// goroutine in a fixed order, so the result does not depend on the
// number of threads.
func (c *Cov) Add(x []float32) {
	d := c.Dim
	if len(x)%d != 0 {
		panic(fmt.Sprintf("slicegpt: Cov.Add: %d floats is not a whole number of rows of %d", len(x), d))
	}
	rows := len(x) / d
	xt := make([]float64, d*covBlock)
	for r0 := 0; r0 < rows; r0 += covBlock {
		nb := min(covBlock, rows-r0)
		for r := range nb {
			row := x[(r0+r)*d : (r0+r+1)*d]
			for j, v := range row {
				xt[j*covBlock+r] = float64(v)
			}
		}
		col := func(j int) []float64 { return xt[j*covBlock : j*covBlock+nb] }
		// Row i of the lower triangle costs i+1 dot products; pairing
		// row i with row d-1-i would balance better, but d is at most a
		// few thousand and this runs once per block.
		tensor.Parallel(d, max(1, 4096/(nb+1)), func(lo, hi int) {
			for i := lo; i < hi; i++ {
				ci := col(i)
				for j := 0; j <= i; j++ {
					c.Sum[i*d+j] += floats.Dot(ci, col(j))
				}
			}
		})
	}
	for i := range d {
		for j := range i {
			c.Sum[j*d+i] = c.Sum[i*d+j]
		}
	}
	c.Rows += int64(rows)
}

// Damping is the reference's dampening of H before its eigen-decomposition:
// 0.01 × mean(diag H) added to the diagonal. A multiple of the identity
// leaves the eigenvectors unchanged in exact arithmetic; it only keeps a
// rank-deficient H (fewer rows than Dim, or dead channels) well conditioned.
const Damping = 0.01

// PCA returns the eigenvectors of the dampened H as the columns of a
// [Dim, Dim] matrix Q, sorted by descending eigenvalue (ties in the order
// gonum returns them, which is deterministic), and the eigenvalues of H
// itself (the damping taken back off), in the same order. Q is orthonormal:
// rotating the residual stream by it (x·Q) puts the calibration variance in
// decreasing order along the coordinates.
func (c *Cov) PCA() (values []float64, q *mat.Dense, err error) {
	d := c.Dim
	if c.Rows == 0 {
		return nil, nil, errors.New("slicegpt: PCA of no calibration rows")
	}
	h := mat.NewSymDense(d, slices.Clone(c.Sum))
	var tr float64
	for i := range d {
		tr += h.At(i, i)
	}
	damp := Damping * tr / float64(d)
	for i := range d {
		h.SetSym(i, i, h.At(i, i)+damp)
	}
	var e mat.EigenSym
	if !e.Factorize(h, true) {
		return nil, nil, fmt.Errorf("slicegpt: eigen-decomposition of the %d×%d calibration covariance failed", d, d)
	}
	raw := e.Values(nil)
	var vecs mat.Dense
	e.VectorsTo(&vecs)
	order := make([]int, d)
	for i := range order {
		order[i] = i
	}
	// gonum returns ascending eigenvalues; a stable sort by descending
	// value keeps the result a pure function of H.
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case raw[a] > raw[b]:
			return -1
		case raw[a] < raw[b]:
			return 1
		}
		return 0
	})
	q = mat.NewDense(d, d, nil)
	values = make([]float64, d)
	for k, src := range order {
		values[k] = raw[src] - damp
		for i := range d {
			q.Set(i, k, vecs.At(i, src))
		}
	}
	return values, q, nil
}
