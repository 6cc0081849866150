package mceval

import (
	"fmt"

	"lrmc/kernels/llama"
)

// encodePair splits context+continuation as lm-eval's HFLM._encode_pair
// does for a causal model: trailing spaces of the context move to the
// continuation, then the continuation's tokens are
// encode(context+continuation) past the length of encode(context).
// (Encoding the continuation alone would give a SentencePiece
// tokenizer's word-initial pieces a second leading space.)
func encodePair(enc Encoder, ctx, cont string) (ctxTokens, contTokens []int32, err error) {
	if trimmed := trimRightSpace(ctx); len(trimmed) < len(ctx) {
		cont = ctx[len(trimmed):] + cont
		ctx = trimmed
	}
	ce := enc.Encode(ctx)
	whole := enc.Encode(ctx + cont)
	if len(whole) <= len(ce) {
		return nil, nil, fmt.Errorf("continuation %q adds no token to the context", cont)
	}
	if len(ce) == 0 {
		return nil, nil, fmt.Errorf("empty context")
	}
	return ce, whole[len(ce):], nil
}

// TokenizePartial tokenizes an item whose choices are contexts (a
// partial item, such as WinoGrande's): one request per choice, the
// choice's context and the shared continuation, each pair split as
// lm-eval splits it. The continuation's tokens may differ between
// choices, since each is cut from its own context+continuation encoding.
func TokenizePartial(enc Encoder, it Item) ([]Request, error) {
	if !it.Partial {
		return nil, fmt.Errorf("item of document %d is not partial: its choices share one context", it.Doc)
	}
	out := make([]Request, len(it.Choices))
	for i := range it.Choices {
		ctx, cont, err := encodePair(enc, it.ContextOf(i), it.Continuation(i))
		if err != nil {
			return nil, fmt.Errorf("choice %d (%q): %w", i, it.Choices[i], err)
		}
		out[i] = Request{Context: ctx, Conts: [][]int32{cont}}
	}
	return out, nil
}

// ScorePartial returns Σ log p(continuation | context) of each request of
// a partial item, in float64. Each choice has its own context, so nothing
// is shared: every request is one prefill and its continuation's steps.
// Each request must already fit the model (Fit).
func ScorePartial(d *llama.Decoder, reqs []Request) []float64 {
	out := make([]float64, len(reqs))
	for i, r := range reqs {
		out[i] = Score(d, r)[0]
	}
	return out
}
