package ops_test

import (
	_ "lrmc/methods/all"
	"lrmc/methods/depth"
	"lrmc/methods/depth/shortenedppl"
	"lrmc/methods/depth/shortgpt"
	"lrmc/methods/depth/sleb"
	"lrmc/methods/stats/capture"
)

// The depth methods' ops (registered by lrmc/methods/all).
const (
	opCaptureEmbed = capture.OpEmbed
	opCaptureBlock = capture.OpBlock
	opShortGPTBI   = shortgpt.OpBI
	opPruneDepth   = depth.OpPrune
	opModelDepth   = depth.OpApply
	opBlockPPL     = shortenedppl.OpBlockPPL
	opSLEBStep     = sleb.OpStep
)
