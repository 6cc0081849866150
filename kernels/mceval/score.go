package mceval

import (
	"fmt"
	"slices"

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

// Part is a context and the continuations of a request (by index) that
// are scored after it.
type Part struct {
	Context []int32
	Conts   []int
}

// Fit cuts every context+continuation pair of r to the model's maxLen
// positions as lm-eval does: (context+continuation)[-(maxLen+1):][:-1] is
// fed, so context tokens are dropped from the left, per continuation (a
// short continuation keeps more of the context than a long one). The
// continuations that keep the same context form one Part, in order of
// their first continuation; a request that fits is one Part. It fails when
// a continuation leaves no context token.
func Fit(r Request, maxLen int) ([]Part, error) {
	if len(r.Context) == 0 {
		return nil, fmt.Errorf("empty context")
	}
	var parts []Part
	for i, c := range r.Conts {
		if len(c) == 0 {
			return nil, fmt.Errorf("continuation %d is empty", i)
		}
		// The last continuation token is only predicted, never fed.
		keep := maxLen + 1 - len(c)
		if keep < 1 {
			return nil, fmt.Errorf("a continuation of %d tokens does not fit the model's %d positions", len(c), maxLen)
		}
		ctx := r.Context[max(0, len(r.Context)-keep):]
		j := slices.IndexFunc(parts, func(p Part) bool { return len(p.Context) == len(ctx) })
		if j < 0 {
			parts = append(parts, Part{Context: ctx})
			j = len(parts) - 1
		}
		parts[j].Conts = append(parts[j].Conts, i)
	}
	return parts, nil
}

// Dropped is how many context tokens Fit drops for the continuation that
// keeps the least context.
func Dropped(parts []Part, r Request) int {
	least := len(r.Context)
	for _, p := range parts {
		least = min(least, len(p.Context))
	}
	return len(r.Context) - least
}

// Fed is the number of tokens scoring r feeds the model once fitted: each
// part's context, and every continuation but its last token.
func Fed(parts []Part, r Request) int {
	n := 0
	for _, p := range parts {
		n += len(p.Context)
		for _, i := range p.Conts {
			n += len(r.Conts[i]) - 1
		}
	}
	return n
}

// DefaultBudget is the tokens a batched pass of ScoreBatch is given by
// Batches: enough rows to keep a small model's GEMMs busy, few enough that
// a large model's activations stay small.
const DefaultBudget = 512

// Batches splits requests into runs of consecutive requests that feed
// about budget tokens in all (a request over budget is a run alone), as
// [lo, hi) ranges. The runs depend only on the requests, never on threads or
// workers, which keeps ScoreBatch's results the same from run to run.
func Batches(rs []Request, maxLen, budget int) ([][2]int, error) {
	var out [][2]int
	lo, fed := 0, 0
	for i, r := range rs {
		parts, err := Fit(r, maxLen)
		if err != nil {
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		n := Fed(parts, r)
		if i > lo && fed+n > budget {
			out = append(out, [2]int{lo, i})
			lo, fed = i, 0
		}
		fed += n
	}
	if lo < len(rs) {
		out = append(out, [2]int{lo, len(rs)})
	}
	return out, nil
}

// logitRows is how many rows of logits ScoreBatch computes at a time: a
// fixed number, so that the classifier's GEMM sees the same batches on
// every run, and few enough that a 150k vocabulary's rows stay tens of MB.
const logitRows = 64

// ScoreBatch returns Σ log p(continuation token | everything before it)
// for every continuation of every request, in float64, after Fit. All
// requests go through the model in one batched pass (llama's
// ForwardForks): each part's context is fed once and every continuation
// branches from it, so an item's N choices cost one prefill of the context
// and one batched pass over the continuations' tokens, not N.
//
// The results are bit-identical from run to run and for every thread
// count; they depend on which requests share the pass (the GEMM rounds a
// row alone differently from a row in a batch), so callers batch with
// Batches.
func ScoreBatch(m *llama.Model, maxLen int, rs []Request) ([][]float64, error) {
	var forks []llama.Fork
	type where struct{ req, part int }
	var owner []where
	parts := make([][]Part, len(rs))
	for i, r := range rs {
		ps, err := Fit(r, maxLen)
		if err != nil {
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		parts[i] = ps
		for pi, p := range ps {
			f := llama.Fork{Context: p.Context}
			for _, ci := range p.Conts {
				f.Branches = append(f.Branches, r.Conts[ci][:len(r.Conts[ci])-1])
			}
			forks = append(forks, f)
			owner = append(owner, where{i, pi})
		}
	}
	h := m.ForwardForks(forks)
	d, v := m.Config.Dim, m.Config.Vocab
	// targets[row] is the token a row's logits are scored on: a branch row
	// feeding cont[j] is scored on cont[j+1]; a context's last row on every
	// branch's first token, so -1 there.
	var targets []int32
	for fi := range forks {
		w := owner[fi]
		targets = append(targets, -1)
		for _, ci := range parts[w.req][w.part].Conts {
			targets = append(targets, rs[w.req].Conts[ci][1:]...)
		}
	}
	// lse[row] is the row's log Σ exp, hit[row] its target's logit where
	// the target is one token.
	lse := make([]float64, len(targets))
	hit := make([]float64, len(targets))
	// last[row] holds the logits of a context's last row, where every
	// branch reads its first token.
	last := map[int][]float32{}
	for r0 := 0; r0 < len(targets); r0 += logitRows {
		n := min(logitRows, len(targets)-r0)
		logits := m.Logits(h[r0*d:(r0+n)*d], 1, n)
		for j := range n {
			row := logits[j*v : (j+1)*v]
			lse[r0+j] = perplexity.LogSumExp(row)
			if t := targets[r0+j]; t >= 0 {
				hit[r0+j] = float64(row[t])
			} else {
				last[r0+j] = slices.Clone(row)
			}
		}
	}
	out := make([][]float64, len(rs))
	for i, r := range rs {
		out[i] = make([]float64, len(r.Conts))
	}
	row := 0
	for fi, f := range forks {
		w := owner[fi]
		r, p := rs[w.req], parts[w.req][w.part]
		ctxRow := row
		row++
		for bi := range f.Branches {
			cont := r.Conts[p.Conts[bi]]
			// The order of the sum is the step-by-step decode's.
			ll := float64(last[ctxRow][cont[0]]) - lse[ctxRow]
			for j := 1; j < len(cont); j++ {
				// Row j-1 of the branch feeds cont[j-1] and predicts cont[j].
				ll += hit[row+j-1] - lse[row+j-1]
			}
			row += len(cont) - 1
			out[w.req][p.Conts[bi]] = ll
		}
	}
	return out, nil
}

// Score scores r's continuations the way a token-by-token decoder
// does, with no truncation: the context is fed once in one batched
// prefill, then each continuation token by token from the context's cache
// (positions past the context are overwritten by the next continuation).
// It is the harness as it was before ScoreBatch, kept as a reference for
// tests and for `lrmc bench eval`. d must be a fresh decoder or one whose
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
