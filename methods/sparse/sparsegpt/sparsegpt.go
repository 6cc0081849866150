// Package sparsegpt is SparseGPT (Frantar & Alistarh 2023): an OBS
// pruner that, column block by column block, zeroes the weights of lowest
// w²/[H⁻¹]_jj² and updates the remaining weights of each row to
// compensate, with H = 2/n·XᵀX from the calibration windows, dampened by
// a fraction of its mean diagonal (kernels/sparse.SparseGPT). H comes from
// the dense model's statistics (methods/stats/inputstats), shared with
// every sparsity and pattern.
package sparsegpt

import (
	"lrmc/compiler/ir"
	ksparse "lrmc/kernels/sparse"
	"lrmc/methods/sparse"
	"lrmc/methods/spec"
)

func init() {
	sparse.Register(sparse.Method{
		Name: "sparsegpt", Stats: true, Hessian: true,
		Fields: []spec.Field{
			{Name: "blockSize", CUE: "int & >=1", Default: 128,
				Doc: "columns pruned together before the rest of the layer is updated (the reference's 128)"},
			{Name: "dampening", CUE: "number & >0 & <1", Default: 0.01,
				Doc: "added to H's diagonal, as a fraction of its mean (the reference's percdamp 0.01)"},
		},
		Check: func(o ir.Options, p ksparse.Pattern, report func(field, format string, args ...any)) {
			if bs := o.Int("blockSize"); p.NM() && bs%p.M != 0 {
				report("blockSize", "blockSize %d must be a multiple of %d under pattern %s", bs, p.M, p)
			}
		},
		Params: func(o ir.Options, p *sparse.PruneParams) {
			p.BlockSize, p.Dampening = o.Int("blockSize"), o.Float("dampening")
		},
	})
}
