// Package mod is Mixture-of-Depths (Raposo et al. 2024) as the study runs
// it: prune: {paradigm: "dynamic", method: "mod", ratio: s} trains separate
// attention and MLP routers Linear(d→1) per block (the first and last
// blocks stay dense): the top-k tokens of each sequence run a part,
// k = max(1, ⌊(1−s)·T⌋), scaled by the router's output, and a causal
// predictor per router learns the top-k decisions (BCE) so evaluation
// decides each token without looking ahead. Evaluation and serving skip
// the unselected tokens' computation for real; a token that skips a
// block's attention has no key/value there (kernels/dynamic).
package mod

import (
	kdyn "lrmc/kernels/dynamic"
	"lrmc/methods/dynamic"
)

func init() { dynamic.Register(kdyn.MoD) }
