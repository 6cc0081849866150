// Package thinktrace measures the reasoning of one generation of a thinking
// model: how many tokens it spent inside its <think>…</think> block and how
// many after it, whether the block closed, and whether the token limit cut
// the generation short; and it aggregates those per task and compares a
// pruned model's reasoning length with the dense model's.
//
// It counts tokens, never text: a generation is given as its token ids (the
// markers being single tokens, as <think> and </think> are in Qwen3 and the
// R1 distills) or as the decoded piece of each token (markers found in the
// concatenated text, so a tokenizer that spells "<think>" in several pieces
// is measured the same way).
package thinktrace

import (
	"fmt"
	"slices"
	"strings"
)

// Finish is why a generation ended; the generation loop knows it, the
// tokens alone do not (a stop sequence may fire on the very last allowed
// token).
type Finish int

const (
	// FinishStop: an end-of-sequence token or a stop sequence ended it.
	FinishStop Finish = iota
	// FinishLength: it ran out of new tokens (max new tokens or the
	// context) without a stop.
	FinishLength
)

// Markers are the think block's delimiters and where generation starts.
type Markers struct {
	// Open and Close are the delimiters' text (for pieces), "<think>" and
	// "</think>" by default.
	Open, Close string
	// OpenID and CloseID are the delimiters' token ids (for ids).
	OpenID, CloseID int32
	// StartsInside is set when the prompt already ends with the open
	// marker (Qwen3's template with thinking on in some versions, the R1
	// distills' templates): the generation begins inside the block.
	StartsInside bool
}

// Trace is the measure of one generation. Tokens = Before + Think + After +
// MarkerTokens.
type Trace struct {
	// Tokens is the number of generated tokens.
	Tokens int
	// Before counts tokens ahead of the open marker (usually none).
	Before int
	// Think counts tokens strictly inside the block, markers excluded;
	// when the block never closed, every token after the open marker.
	Think int
	// After counts tokens after the close marker: the answer. A generation
	// with no think block at all is all answer.
	After int
	// MarkerTokens counts tokens that carry (part of) a marker.
	MarkerTokens int
	// Opened reports a think block (opened in the generation or the
	// prompt); Closed that its close marker was generated.
	Opened, Closed bool
	// Truncated: the generation hit its token limit without stopping.
	Truncated bool
}

// FromIDs measures a generation given as token ids, the markers being the
// single tokens m.OpenID and m.CloseID (see MarkersFor). Only the first
// block counts: a later open marker is answer text like any other token.
// It fails when the two ids are equal (most likely Markers left unset).
func FromIDs(ids []int32, m Markers, fin Finish) (Trace, error) {
	if m.OpenID == m.CloseID {
		return Trace{}, fmt.Errorf("thinktrace: open and close marker ids are both %d", m.OpenID)
	}
	t := Trace{Tokens: len(ids), Truncated: fin == FinishLength}
	state := outside
	if m.StartsInside {
		state, t.Opened = inside, true
	}
	for _, id := range ids {
		state = t.step(state, id == m.OpenID, id == m.CloseID)
	}
	if !t.Opened {
		// No block ever opened: what looked like a preamble is the answer.
		t.After, t.Before = t.Before, 0
	}
	return t, nil
}

// TokenIDer is what MarkersFor needs of a tokenizer
// (*tokenizer.Tokenizer has it).
type TokenIDer interface {
	TokenID(s string) (int32, bool)
}

// MarkersFor returns the markers "<think>" and "</think>" with their ids in
// tok; it fails when either is not a single token there (measure pieces
// with FromPieces then).
func MarkersFor(tok TokenIDer, startsInside bool) (Markers, error) {
	m := Markers{Open: "<think>", Close: "</think>", StartsInside: startsInside}
	var ok bool
	if m.OpenID, ok = tok.TokenID(m.Open); !ok {
		return Markers{}, fmt.Errorf("thinktrace: %q is not a token of this tokenizer", m.Open)
	}
	if m.CloseID, ok = tok.TokenID(m.Close); !ok {
		return Markers{}, fmt.Errorf("thinktrace: %q is not a token of this tokenizer", m.Close)
	}
	return m, nil
}

// FromPieces measures a generation given as the decoded text of each token
// (tokenizer.Decode of each id alone, or the pieces a streaming generator
// emits). A token whose text overlaps a marker is a marker token; a marker
// may span several tokens, and a token may hold a marker and other text.
func FromPieces(pieces []string, m Markers, fin Finish) Trace {
	m = m.withDefaults()
	var text strings.Builder
	starts := make([]int, len(pieces)+1)
	for i, p := range pieces {
		starts[i] = text.Len()
		text.WriteString(p)
	}
	starts[len(pieces)] = text.Len()
	s := text.String()

	// The block's spans in bytes: [openStart, openEnd) and [closeStart,
	// closeEnd); -1 when absent.
	openStart, openEnd := -1, 0
	if !m.StartsInside {
		if i := strings.Index(s, m.Open); i >= 0 {
			openStart, openEnd = i, i+len(m.Open)
		}
	}
	closeStart, closeEnd := -1, -1
	if m.StartsInside || openStart >= 0 {
		if i := strings.Index(s[openEnd:], m.Close); i >= 0 {
			closeStart, closeEnd = openEnd+i, openEnd+i+len(m.Close)
		}
	}

	t := Trace{Tokens: len(pieces), Truncated: fin == FinishLength}
	t.Opened = m.StartsInside || openStart >= 0
	t.Closed = closeStart >= 0
	for i := range pieces {
		lo, hi := starts[i], starts[i+1]
		switch {
		case openStart >= 0 && overlaps(lo, hi, openStart, openEnd),
			closeStart >= 0 && overlaps(lo, hi, closeStart, closeEnd):
			t.MarkerTokens++
		case !t.Opened:
			t.After++
		case openStart >= 0 && hi <= openStart:
			t.Before++
		case closeStart >= 0 && lo >= closeEnd:
			t.After++
		default:
			t.Think++
		}
	}
	return t
}

// overlaps reports whether a token's bytes [lo, hi) touch a marker's
// [a, b). An empty piece sitting inside a marker counts as part of it.
func overlaps(lo, hi, a, b int) bool {
	if lo == hi {
		return lo > a && lo < b
	}
	return lo < b && a < hi
}

type blockState int

const (
	outside blockState = iota // no block yet
	inside
	done // the block closed
)

// step advances the id state machine by one token.
func (t *Trace) step(s blockState, isOpen, isClose bool) blockState {
	switch {
	case s == outside && isOpen:
		t.Opened = true
		t.MarkerTokens++
		return inside
	case s == inside && isClose:
		t.Closed = true
		t.MarkerTokens++
		return done
	case s == inside:
		t.Think++
	case s == done:
		t.After++
	default:
		// outside: before a block that may still open; FromIDs makes it
		// answer when none does.
		t.Before++
	}
	return s
}

func (m Markers) withDefaults() Markers {
	if m.Open == "" {
		m.Open = "<think>"
	}
	if m.Close == "" {
		m.Close = "</think>"
	}
	return m
}

// Summary aggregates the traces of one task's generations.
type Summary struct {
	N int
	// MeanThink and MedianThink are the reasoning length in tokens over all
	// N generations (a generation without a block counts 0; a truncated one
	// counts what it generated, a lower bound of what it would have).
	MeanThink, MedianThink float64
	// MeanTokens is the mean generated length, answer included.
	MeanTokens float64
	// ClosedFrac is the fraction whose think block closed, TruncatedFrac
	// the fraction cut by the token limit.
	ClosedFrac, TruncatedFrac float64
}

// Summarize aggregates traces; the zero Summary for none.
func Summarize(traces []Trace) Summary {
	n := len(traces)
	if n == 0 {
		return Summary{}
	}
	think := make([]int, n)
	var sumThink, sumTok, closed, trunc int
	for i, t := range traces {
		think[i] = t.Think
		sumThink += t.Think
		sumTok += t.Tokens
		if t.Closed {
			closed++
		}
		if t.Truncated {
			trunc++
		}
	}
	slices.Sort(think)
	median := float64(think[n/2])
	if n%2 == 0 {
		median = (float64(think[n/2-1]) + float64(think[n/2])) / 2
	}
	return Summary{
		N:             n,
		MeanThink:     float64(sumThink) / float64(n),
		MedianThink:   median,
		MeanTokens:    float64(sumTok) / float64(n),
		ClosedFrac:    float64(closed) / float64(n),
		TruncatedFrac: float64(trunc) / float64(n),
	}
}

// Change is a pruned model's reasoning beside the dense model's.
type Change struct {
	// MeanThink and MedianThink are relative changes, (pruned−dense)/dense:
	// +0.25 is a quarter longer. NaN-free: see Defined.
	MeanThink, MedianThink float64
	// Defined is false when the dense length is 0 (no reasoning to compare
	// with); the relative fields are then 0.
	Defined bool
	// ClosedDelta and TruncatedDelta are differences of fractions
	// (pruned−dense), in absolute terms: −0.1 is ten points fewer.
	ClosedDelta, TruncatedDelta float64
}

// Compare reports how pruning changed reasoning.
func Compare(dense, pruned Summary) Change {
	c := Change{
		ClosedDelta:    pruned.ClosedFrac - dense.ClosedFrac,
		TruncatedDelta: pruned.TruncatedFrac - dense.TruncatedFrac,
	}
	if dense.MeanThink > 0 && dense.MedianThink > 0 {
		c.Defined = true
		c.MeanThink = RelChange(dense.MeanThink, pruned.MeanThink)
		c.MedianThink = RelChange(dense.MedianThink, pruned.MedianThink)
	}
	return c
}

// RelChange is (pruned−dense)/dense; 0 when dense is 0.
func RelChange(dense, pruned float64) float64 {
	if dense == 0 {
		return 0
	}
	return (pruned - dense) / dense
}

// String formats a change for a report cell: "+25.0% (median +20.0%)".
func (c Change) String() string {
	if !c.Defined {
		return "n/a"
	}
	return fmt.Sprintf("%+.1f%% (median %+.1f%%)", 100*c.MeanThink, 100*c.MedianThink)
}
