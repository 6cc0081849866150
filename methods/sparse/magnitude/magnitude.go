// Package magnitude is magnitude pruning: the weights of smallest |W| of
// each layer are zeroed (locuslab/wanda's prune_magnitude: one ranking per
// layer, or per group of M under N:M). It needs no calibration.
package magnitude

import "lrmc/methods/sparse"

func init() {
	sparse.Register(sparse.Method{Name: "magnitude"})
}
