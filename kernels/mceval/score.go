package mceval

import (
	"fmt"

	"lrmc/kernels/llama"
	"lrmc/kernels/perplexity"
)

// Encoder encodes text as the model's tokenizer does by default (a leading
// BOS where the model has one).
type Encoder interface {
	Encode(text string) []int32
}

// Request is an item in tokens: the context and each choice's continuation.
type Request struct {
	Context []int32
	Conts   [][]int32
}

// Tokenize splits as lm-eval's HFLM._encode_pair does for a causal model
// (encodePair), choice by choice; the choices share the context's tokens.
func Tokenize(enc Encoder, it Item) (Request, error) {
	var r Request
	for i := range it.Choices {
		ce, cont, err := encodePair(enc, it.Context, it.Continuation(i))
		if err != nil {
			return Request{}, fmt.Errorf("choice %d (%q): %w", i, it.Choices[i], err)
		}
		if r.Context == nil {
			r.Context = ce
		} else if !equal(r.Context, ce) {
			// Only when choices differ in whether the context ends in a
			// space; no task here does.
			return Request{}, fmt.Errorf("choice %d tokenizes the context differently", i)
		}
		r.Conts = append(r.Conts, cont)
	}
	return r, nil
}

func trimRightSpace(s string) string {
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t' || s[len(s)-1] == '\n') {
		s = s[:len(s)-1]
	}
	return s
}

func equal(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Fit keeps a request within a model's context of maxLen positions as
// lm-eval does, by dropping context tokens from the left; it keeps the
// tokens the longest continuation needs, so every choice still shares one
// context. It fails when a continuation alone does not fit.
func Fit(r Request, maxLen int) (Request, error) {
	longest := 0
	for _, c := range r.Conts {
		longest = max(longest, len(c))
	}
	// The last continuation token is only predicted, never fed.
	keep := maxLen + 1 - longest
	if keep < 1 {
		return Request{}, fmt.Errorf("a continuation of %d tokens does not fit the model's %d positions", longest, maxLen)
	}
	if len(r.Context) > keep {
		r.Context = r.Context[len(r.Context)-keep:]
	}
	return r, nil
}

// Score returns Σ log p(continuation token | everything before it) for each
// continuation, in float64. The context is fed once, in one batched
// prefill; each continuation then branches from the context's key/value
// cache (positions past the
// context are overwritten by the next continuation), so N choices cost one
// prefill and N short decodes. d must be a fresh decoder or one whose
// positions will all be rewritten.
func Score(d *llama.Decoder, r Request) []float64 {
	last := LogSoftmax(d.Prefill(r.Context))
	n := len(r.Context)
	out := make([]float64, len(r.Conts))
	for i, cont := range r.Conts {
		ll := last[cont[0]]
		for j := 0; j+1 < len(cont); j++ {
			ll += LogProb(d.Step(cont[j], n+j), cont[j+1])
		}
		out[i] = ll
	}
	return out
}

// ScoreAlone scores one continuation by running context and continuation
// together through the model's batched forward pass: no cache, no
// sharing. It is the reference Score is tested against.
func ScoreAlone(m *llama.Model, ctx, cont []int32) float64 {
	seq := append(append([]int32{}, ctx...), cont[:len(cont)-1]...)
	logits := m.Forward(seq, 1, len(seq))
	v := m.Config.Vocab
	var ll float64
	for j, tok := range cont {
		row := len(ctx) - 1 + j
		ll += LogProb(logits[row*v:(row+1)*v], tok)
	}
	return ll
}

// LogSoftmax returns log softmax(x) in float64.
func LogSoftmax(x []float32) []float64 {
	lse := perplexity.LogSumExp(x)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v) - lse
	}
	return out
}

// LogProb returns log softmax(x)[tok] in float64.
func LogProb(x []float32, tok int32) float64 { return float64(x[tok]) - perplexity.LogSumExp(x) }
