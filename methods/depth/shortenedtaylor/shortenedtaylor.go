// Package shortenedtaylor is Shortened LLaMA's Taylor+ criterion (Kim et
// al. 2024): a block's score is the first-order Taylor importance of its
// weights, Σ|w·G| with G the loss gradient summed over the calibration
// batches (methods/stats/taylor); the least important blocks are removed,
// never one of the first earlyBarrier or the last latterBarrier blocks
// (the "+": the reference's block_prune.py keeps the first 4 and the last
// 2 unless told otherwise, and so do these fields' defaults).
package shortenedtaylor

import (
	"lrmc/methods/depth"
	"lrmc/methods/stats/taylor"
	"lrmc/planner"
)

func init() {
	depth.Register(depth.Method{
		Name:   "shortened-taylor",
		Fields: depth.BarrierFields(4, 2),
		Score: func(mp *planner.MethodPlan, a depth.Amount) []*planner.Node {
			return []*planner.Node{taylor.Plan(mp, a.Windows)}
		},
	})
}
