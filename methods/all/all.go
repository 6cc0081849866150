// Package all registers every method and statistic unit of lrmc; the
// binary (cmd/lrmc) and tests that compile or plan recipes import it.
package all

import (
	// Depth methods.
	_ "lrmc/methods/depth/shortenedppl"
	_ "lrmc/methods/depth/shortenedtaylor"
	_ "lrmc/methods/depth/shortgpt"
	_ "lrmc/methods/depth/sleb"
	// Dynamic methods.
	_ "lrmc/methods/dynamic/dllm"
	_ "lrmc/methods/dynamic/mod"
	_ "lrmc/methods/dynamic/skipgpt"
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

// Methods known but not built are registered here with methods.Planned
// (vet says "not built yet"); building one means deleting its line and
// importing its package above. Every known method is built today.
