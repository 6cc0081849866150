package attention

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// A span without a prefix is Causal's sequence bit for bit; a span after a
// prefix gives the rows Causal gives the same rows of the concatenated
// sequence, to rounding; other rows are left alone; the thread count
// changes no bit.
func TestSpansMatchCausal(t *testing.T) {
	const heads, kvHeads, hd = 4, 2, 16
	qd, kvd := heads*hd, kvHeads*hd
	rnd := rand.New(rand.NewPCG(1, 2))
	fill := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rnd.NormFloat64())
		}
		return x
	}
	// Rows: a context of 150 (two key tiles), a branch of 70 after it, a
	// branch of 3, and one untouched row.
	const ctx, b1, b2 = 150, 70, 3
	rows := ctx + b1 + b2 + 1
	q, k, v := fill(rows*qd), fill(rows*kvd), fill(rows*kvd)
	out := make([]float32, rows*qd)
	out[(rows-1)*qd] = 42
	spans := []Span{{Row: 0, Len: ctx}, {Row: ctx, Len: b1, PrefixLen: ctx}, {Row: ctx + b1, Len: b2, PrefixLen: ctx}}
	Spans(out, q, k, v, spans, heads, kvHeads, hd)

	want := make([]float32, ctx*qd)
	Causal(want, q, k, v, 1, ctx, heads, kvHeads, hd)
	if !slices.Equal(out[:ctx*qd], want) {
		t.Error("a span without a prefix differs from Causal")
	}
	for _, s := range spans[1:] {
		seq := s.PrefixLen + s.Len
		cq := slices.Concat(q[:ctx*qd], q[s.Row*qd:(s.Row+s.Len)*qd])
		ck := slices.Concat(k[:ctx*kvd], k[s.Row*kvd:(s.Row+s.Len)*kvd])
		cv := slices.Concat(v[:ctx*kvd], v[s.Row*kvd:(s.Row+s.Len)*kvd])
		full := make([]float32, seq*qd)
		Causal(full, cq, ck, cv, 1, seq, heads, kvHeads, hd)
		for i, x := range full[ctx*qd:] {
			if d := math.Abs(float64(out[s.Row*qd+i] - x)); d > 1e-5 {
				t.Fatalf("span at row %d, element %d: %v, Causal on the whole sequence %v", s.Row, i, out[s.Row*qd+i], x)
			}
		}
	}
	if out[(rows-1)*qd] != 42 {
		t.Error("a row outside every span was written")
	}
	prev := runtime.GOMAXPROCS(1)
	one := make([]float32, rows*qd)
	one[(rows-1)*qd] = 42
	Spans(one, q, k, v, spans, heads, kvHeads, hd)
	runtime.GOMAXPROCS(prev)
	if !slices.Equal(one, out) {
		t.Error("one thread gives other bits")
	}
}
