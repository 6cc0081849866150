package geneval

import (
	"math/rand/v2"
	"strings"

	"lrmc/kernels/thinktrace"
)

// SampleSeed is the sampler seed of sample s of document doc in an
// evaluation seeded with seed: a PCG draw keyed by all three, so a sample
// is the same whichever other items or samples are evaluated, and two
// samples of one item differ.
func SampleSeed(seed int64, doc, s int) uint64 {
	return rand.New(rand.NewPCG(uint64(seed), uint64(doc)<<32|uint64(uint32(s)))).Uint64()
}

// Trace measures one generation's reasoning from the text of each
// generated token (decoded alone), as thinktrace.FromPieces does. The
// generation starts inside a think block when the prompt, as fed, ends
// with the open marker (templates that open the block for the model).
// truncated says the token limit ended it.
func Trace(prompt string, pieces []string, truncated bool) thinktrace.Trace {
	m := thinktrace.Markers{Open: "<think>", Close: "</think>"}
	m.StartsInside = strings.HasSuffix(strings.TrimRight(prompt, " \t\r\n"), m.Open)
	fin := thinktrace.FinishStop
	if truncated {
		fin = thinktrace.FinishLength
	}
	return thinktrace.FromPieces(pieces, m, fin)
}
