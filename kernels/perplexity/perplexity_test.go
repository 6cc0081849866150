package perplexity

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestWindows(t *testing.T) {
	stream := []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	all, err := Windows(stream, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int32{{0, 1, 2}, {3, 4, 5}, {6, 7, 8}}
	if !slices.EqualFunc(all, want, slices.Equal) {
		t.Errorf("all windows = %v, want %v", all, want)
	}
	two, err := Windows(stream, 2, 3)
	if err != nil || !slices.EqualFunc(two, want[:2], slices.Equal) {
		t.Errorf("two windows = %v, %v; want %v", two, err, want[:2])
	}
	// Windows alias the stream but appending to one leaves the next alone.
	_ = append(all[0], 99)
	if stream[3] != 3 {
		t.Errorf("append to window 0 overwrote the stream: %v", stream)
	}

	errs := []struct {
		len, samples, seqLen int
		want                 string
	}{
		{10, 4, 3, "perplexity needs 4 windows of 3 tokens but the data gives only 3 (10 tokens)"},
		{2, 0, 3, "perplexity needs windows of 3 tokens but the data has only 2 tokens"},
		{10, 0, 1, "perplexity windows need at least 2 tokens (one to predict from, one to score), got a length of 1"},
		{10, -1, 2, "perplexity needs a window count of 0 (all) or more, got -1"},
	}
	for _, tt := range errs {
		_, err := Windows(stream[:tt.len], tt.samples, tt.seqLen)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Windows(%d tokens, %d, %d): error = %v, want %q", tt.len, tt.samples, tt.seqLen, err, tt.want)
		}
	}
}

func TestUniformLogitsGiveVocabSize(t *testing.T) {
	// Equal logits put probability 1/V on every token: perplexity V.
	const vocab, seqLen = 32000, 9
	logits := make([]float32, seqLen*vocab)
	for i := range logits {
		logits[i] = 1.75
	}
	r := rand.New(rand.NewPCG(7, 8))
	var acc Accumulator
	for range 3 {
		tokens := make([]int32, seqLen)
		for i := range tokens {
			tokens[i] = r.Int32N(vocab)
		}
		acc.AddWindow(logits, tokens, vocab)
	}
	if acc.Tokens() != 3*(seqLen-1) {
		t.Errorf("scored %d tokens, want %d", acc.Tokens(), 3*(seqLen-1))
	}
	if got := acc.Perplexity(); math.Abs(got-vocab) > 1e-12*vocab {
		t.Errorf("perplexity = %.17g, want %d", got, vocab)
	}
	if got := acc.MeanNLL(); math.Abs(got-math.Log(vocab)) > 1e-15 {
		t.Errorf("mean NLL = %.17g, want ln %d = %.17g", got, vocab, math.Log(vocab))
	}
}

func TestHandComputed(t *testing.T) {
	// Three tokens, vocabulary 3. Row 0 predicts token 2 from logits
	// (0, 1, 2): NLL = ln(1 + e + e²) − 2. Row 1 predicts token 1 from
	// (3, 0, 0): NLL = ln(e³ + 2). Row 2 predicts past the window and must be
	// ignored. Values to 20 digits from 30-digit decimal arithmetic.
	logits := []float32{
		0, 1, 2,
		3, 0, 0,
		100, -100, 7,
	}
	sum, count := NLL(logits, []int32{0, 2, 1}, 3)
	const wantSum = 3.5025289208653411958 // 0.40760596444438030448 + 3.0949229564209608913
	if count != 2 || math.Abs(sum-wantSum) > 1e-15 {
		t.Errorf("NLL = %.17g over %d tokens, want %.17g over 2", sum, count, wantSum)
	}
	var acc Accumulator
	acc.Add(sum, count)
	if got, want := acc.Perplexity(), 5.7618837457374539804; math.Abs(got-want) > 1e-14 {
		t.Errorf("perplexity = %.17g, want %.17g", got, want)
	}
}

func TestNLLRecomputed(t *testing.T) {
	// Logits are multiples of 1/8 in [−5, 5], exact in float32 also after
	// adding 1024, so the shifted copy has exactly the same log-softmax.
	const vocab, seqLen = 50, 20
	r := rand.New(rand.NewPCG(9, 10))
	logits := make([]float32, seqLen*vocab)
	shifted := make([]float32, len(logits))
	for i := range logits {
		logits[i] = float32(r.IntN(81)-40) / 8
		shifted[i] = logits[i] + 1024
	}
	tokens := make([]int32, seqLen)
	for i := range tokens {
		tokens[i] = r.Int32N(vocab)
	}

	// The textbook formula, fine here because the logits are small.
	var want float64
	for j := range seqLen - 1 {
		var z float64
		for v := range vocab {
			z += math.Exp(float64(logits[j*vocab+v]))
		}
		want += math.Log(z) - float64(logits[j*vocab+int(tokens[j+1])])
	}

	got, count := NLL(logits, tokens, vocab)
	if count != seqLen-1 || math.Abs(got-want) > 1e-12 {
		t.Errorf("NLL = %.17g over %d, recomputed %.17g over %d", got, count, want, seqLen-1)
	}
	// The textbook formula overflows at 1024 (e¹⁰²⁴ = +Inf); NLL must not.
	if gotShifted, _ := NLL(shifted, tokens, vocab); math.Abs(gotShifted-want) > 1e-12 {
		t.Errorf("NLL of logits + 1024 = %.17g, want %.17g", gotShifted, want)
	}
}

func TestNLLEdges(t *testing.T) {
	if sum, count := NLL([]float32{1, 2}, []int32{1}, 2); sum != 0 || count != 0 {
		t.Errorf("one-token window: NLL = %v over %d, want 0 over 0", sum, count)
	}
	var empty Accumulator
	if !math.IsNaN(empty.Perplexity()) || !math.IsNaN(empty.MeanNLL()) || empty.Tokens() != 0 {
		t.Errorf("empty accumulator: perplexity %v, mean %v, %d tokens", empty.Perplexity(), empty.MeanNLL(), empty.Tokens())
	}
	// A −Inf logit (a masked entry) for an unscored token is harmless.
	inf := float32(math.Inf(-1))
	if sum, _ := NLL([]float32{0, inf, 0, 0}, []int32{0, 0}, 2); sum != 0 {
		t.Errorf("NLL with a −Inf logit elsewhere = %v, want 0", sum)
	}

	// A NaN logit anywhere in a scored row, first or not, poisons the sum
	// rather than being skipped.
	nan := float32(math.NaN())
	for _, row := range [][]float32{{nan, 1, 2}, {1, nan, 2}} {
		if sum, _ := NLL(append(row, 0, 0, 0), []int32{0, 2}, 3); !math.IsNaN(sum) {
			t.Errorf("NLL with logits %v = %v, want NaN", row, sum)
		}
	}

	panics := []struct {
		name   string
		logits []float32
		tokens []int32
		vocab  int
	}{
		{"short logits", make([]float32, 5), []int32{0, 1}, 3},
		{"token out of range", make([]float32, 6), []int32{0, 3}, 3},
		{"negative token", make([]float32, 6), []int32{0, -1}, 3},
		{"zero vocab", nil, []int32{}, 0},
	}
	for _, tt := range panics {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: NLL did not panic", tt.name)
				}
			}()
			NLL(tt.logits, tt.tokens, tt.vocab)
		}()
	}
}

func BenchmarkNLL(b *testing.B) {
	const vocab, seqLen = 32000, 256
	r := rand.New(rand.NewPCG(11, 12))
	logits := make([]float32, seqLen*vocab)
	for i := range logits {
		logits[i] = float32(r.NormFloat64() * 3)
	}
	tokens := make([]int32, seqLen)
	for i := range tokens {
		tokens[i] = r.Int32N(vocab)
	}
	b.SetBytes(int64(4 * len(logits)))
	for b.Loop() {
		NLL(logits, tokens, vocab)
	}
}
