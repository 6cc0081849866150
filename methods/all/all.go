// Package all registers every method and statistic unit of lrmc; the
// binary (cmd/lrmc) and tests that compile or plan recipes import it.
package all

import (
	"lrmc/methods"
	// Depth methods.
	_ "lrmc/methods/depth/shortenedppl"
	_ "lrmc/methods/depth/shortenedtaylor"
	_ "lrmc/methods/depth/shortgpt"
	_ "lrmc/methods/depth/sleb"
	// Unstructured and semi-structured methods.
	_ "lrmc/methods/sparse/magnitude"
	_ "lrmc/methods/sparse/sparsegpt"
	_ "lrmc/methods/sparse/wanda"
	// Width methods.
	_ "lrmc/methods/width/flap"
	_ "lrmc/methods/width/llmpruner"
	_ "lrmc/methods/width/slicegpt"
	_ "lrmc/methods/width/wandasp"
)

// Methods known but not built: vet says "not built yet". Building one
// means deleting its line here and importing its package above.
func init() {
	methods.Planned("dynamic", "mod")
	methods.Planned("dynamic", "dllm")
	methods.Planned("dynamic", "skipgpt")
}
