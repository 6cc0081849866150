// Package perplexity measures a language model's perplexity on a token
// stream from the logits the model produces for fixed windows of it.
//
// The protocol: the stream (documents each starting with BOS, concatenated)
// is cut from its start into non-overlapping windows of seqLen tokens, stride
// seqLen, a short tail dropped; no BOS is added to a window, so it starts
// wherever the cut falls. The model sees each window alone. In a window of T
// tokens, tokens 1 … T−1 are scored, each given the tokens before it in the
// window; token 0 is context only. Perplexity is exp of the mean negative
// log-likelihood (natural log) over all scored tokens of all windows.
package perplexity

import (
	"fmt"
	"math"
)

// Windows returns the first samples non-overlapping windows of seqLen tokens
// from the start of stream (window w is stream[w·seqLen : (w+1)·seqLen]), or
// every complete window when samples is 0. The windows share stream's memory
// and are capped at their own length, so appending to one cannot overwrite
// the next.
func Windows(stream []int32, samples, seqLen int) ([][]int32, error) {
	if seqLen < 2 {
		return nil, fmt.Errorf("perplexity windows need at least 2 tokens (one to predict from, one to score), got a length of %d", seqLen)
	}
	if samples < 0 {
		return nil, fmt.Errorf("perplexity needs a window count of 0 (all) or more, got %d", samples)
	}
	n := len(stream) / seqLen
	switch {
	case n == 0:
		return nil, fmt.Errorf("perplexity needs windows of %d tokens but the data has only %d tokens", seqLen, len(stream))
	case samples > n:
		return nil, fmt.Errorf("perplexity needs %d windows of %d tokens but the data gives only %d (%d tokens)",
			samples, seqLen, n, len(stream))
	case samples > 0:
		n = samples
	}
	windows := make([][]int32, n)
	for w := range windows {
		windows[w] = stream[w*seqLen : (w+1)*seqLen : (w+1)*seqLen]
	}
	return windows, nil
}

// NLL returns the summed negative log-likelihood (natural log) of tokens[1:]
// in one window of T tokens, and count = T−1, the number of tokens scored.
// logits is [T × vocab] row-major; row j is the model's prediction for
// tokens[j+1], so the last row is not used. Each row's log-softmax is
// computed in float64 with the row maximum subtracted before exponentiation,
// so large logits cannot overflow.
//
// NLL panics when len(logits) ≠ T·vocab or a scored token lies outside
// [0, vocab): the caller checks that tokenizer and model agree on the
// vocabulary before evaluating.
func NLL(logits []float32, tokens []int32, vocab int) (sum float64, count int) {
	if vocab < 1 || len(logits) != len(tokens)*vocab {
		panic(fmt.Sprintf("perplexity.NLL: %d logits for %d tokens of a %d-entry vocabulary", len(logits), len(tokens), vocab))
	}
	for j := 0; j+1 < len(tokens); j++ {
		next := tokens[j+1]
		if next < 0 || int(next) >= vocab {
			panic(fmt.Sprintf("perplexity.NLL: token %d at position %d is outside the %d-entry vocabulary", next, j+1, vocab))
		}
		row := logits[j*vocab : (j+1)*vocab]
		sum += LogSumExp(row) - float64(row[next])
		count++
	}
	return sum, count
}

// LogSumExp returns log Σ exp(x) in float64, stably; mceval scores choices with it too.
func LogSumExp(x []float32) float64 {
	// A plain comparison, not the max builtin, whose NaN and signed-zero
	// rules made this loop ten times slower. A NaN never wins the
	// comparison, but it still reaches the sum below and makes it NaN.
	m32 := x[0]
	for _, v := range x[1:] {
		if v > m32 {
			m32 = v
		}
	}
	m := float64(m32)
	if math.IsInf(m, 0) {
		// All −Inf gives −Inf; any +Inf gives +Inf. Subtracting m would
		// produce NaN instead.
		return m
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - m)
	}
	return m + math.Log(s)
}

// Accumulator sums negative log-likelihoods over windows. The zero value is
// empty and ready to use.
type Accumulator struct {
	sum   float64
	count int
}

// Add adds a window's summed negative log-likelihood and its count of scored
// tokens, as NLL returns them (or as they were cached).
func (a *Accumulator) Add(sum float64, count int) {
	a.sum += sum
	a.count += count
}

// AddWindow scores one window with NLL and adds it.
func (a *Accumulator) AddWindow(logits []float32, tokens []int32, vocab int) {
	a.Add(NLL(logits, tokens, vocab))
}

// Tokens returns the number of tokens scored so far.
func (a *Accumulator) Tokens() int { return a.count }

// MeanNLL returns the mean negative log-likelihood per scored token in nats,
// NaN when nothing has been scored.
func (a *Accumulator) MeanNLL() float64 { return a.sum / float64(a.count) }

// Perplexity returns exp(MeanNLL()), NaN when nothing has been scored.
func (a *Accumulator) Perplexity() float64 { return math.Exp(a.MeanNLL()) }
