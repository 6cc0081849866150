// Package wanda is Wanda (Sun et al. 2023, "A Simple and Effective Pruning
// Approach for Large Language Models"): weights are scored by
// |W_ij|·‖X_j‖₂, the input norms measured on the calibration windows, and
// the lowest of each output row (or of each group of M under N:M) are
// zeroed, with no weight update. The norms come from the dense model's
// statistics (methods/stats/inputstats), shared with every sparsity.
package wanda

import "lrmc/methods/sparse"

func init() {
	sparse.Register(sparse.Method{Name: "wanda", Stats: true})
}
