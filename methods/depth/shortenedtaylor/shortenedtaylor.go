// Package shortenedtaylor is Shortened LLaMA's Taylor+ criterion (Kim et
// al. 2024): a block's score is the first-order Taylor importance of its
// weights; the least important blocks are removed.
package shortenedtaylor

import (
	"lrmc/methods/depth"
	"lrmc/methods/stats/taylor"
	"lrmc/planner"
)

func init() {
	depth.Register(depth.Method{
		Name: "shortened-taylor",
		Score: func(mp *planner.MethodPlan, a depth.Amount) []*planner.Node {
			return []*planner.Node{taylor.Plan(mp, a.Windows)}
		},
	})
}
