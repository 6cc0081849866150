package shortgpt

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// randomStates returns tokens×dim values drawn from N(0, 1) plus an offset,
// so that the cosines are spread rather than all near zero.
func randomStates(r *rand.Rand, tokens, dim int, offset float64) []float32 {
	x := make([]float32, tokens*dim)
	for i := range x {
		x[i] = float32(r.NormFloat64() + offset)
	}
	return x
}

func mustBI(t *testing.T, in, out []float32, dim int) float64 {
	t.Helper()
	bi, err := BlockInfluence(in, out, dim)
	if err != nil {
		t.Fatal(err)
	}
	return bi
}

func TestBlockInfluenceClosedForm(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const tokens, dim = 7, 16
	in := randomStates(r, tokens, dim, 0)
	neg := make([]float32, len(in))
	scaled := make([]float32, len(in))
	for i, x := range in {
		neg[i] = -x
		scaled[i] = 3 * x
	}
	// Rotating each consecutive pair (a, b) to (−b, a) makes every token's
	// output orthogonal to its input with an exactly zero dot product.
	orth := make([]float32, len(in))
	for i := 0; i < len(in); i += 2 {
		orth[i], orth[i+1] = -in[i+1], in[i]
	}
	tests := []struct {
		name string
		out  []float32
		want float64
	}{
		{"identity", in, 0},
		{"scaled", scaled, 0},
		{"negated", neg, 2},
		{"orthogonal", orth, 1},
	}
	for _, tt := range tests {
		if got := mustBI(t, in, tt.out, dim); math.Abs(got-tt.want) > 1e-15 {
			t.Errorf("%s: BI = %.17g, want %g", tt.name, got, tt.want)
		}
	}

	// Two tokens in 2-D: (1, 0)→(1, 1) at 45°, and (0, 2)→(0, 2).
	got := mustBI(t, []float32{1, 0, 0, 2}, []float32{1, 1, 0, 2}, 2)
	if want := 1 - (math.Sqrt2/2+1)/2; math.Abs(got-want) > 1e-15 {
		t.Errorf("45° and 0°: BI = %.17g, want %.17g", got, want)
	}
}

func TestBlockInfluenceZeroVector(t *testing.T) {
	// Token 0 has a zero input, token 1 a zero output, token 2 is unchanged:
	// cosines 0.5, 0.5 (ShortGPT's nan_to_num(nan=0.5)) and 1.
	in := []float32{0, 0, 1, 2, 3, 4}
	out := []float32{5, 6, 0, 0, 3, 4}
	if got, want := mustBI(t, in, out, 2), 1-(0.5+0.5+1)/3; math.Abs(got-want) > 1e-15 {
		t.Errorf("BI = %.17g, want %.17g", got, want)
	}
}

func TestBlockInfluenceRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const tokens, dim = 64, 96
	in := randomStates(r, tokens, dim, 0.5)
	out := randomStates(r, tokens, dim, 0.5)
	// Recompute with a different formula: normalise each vector, then dot.
	unit := func(v []float32) []float64 {
		var n float64
		for _, x := range v {
			n += float64(x) * float64(x)
		}
		n = math.Sqrt(n)
		u := make([]float64, len(v))
		for i, x := range v {
			u[i] = float64(x) / n
		}
		return u
	}
	var sum float64
	for tok := range tokens {
		a, b := unit(in[tok*dim:(tok+1)*dim]), unit(out[tok*dim:(tok+1)*dim])
		for i := range a {
			sum += a[i] * b[i]
		}
	}
	want := 1 - sum/tokens
	got := mustBI(t, in, out, dim)
	if math.Abs(got-want) > 1e-13 {
		t.Errorf("BI = %.17g, recomputed %.17g", got, want)
	}
	if want < 0.5 || want > 0.9 {
		t.Errorf("recomputed BI %v is not in the spread the offset should give", want)
	}

	// Stats over two batches equal the whole.
	var s Stats
	split := 23 * dim
	if err := s.Add(in[:split], out[:split], dim); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(in[split:], out[split:], dim); err != nil {
		t.Fatal(err)
	}
	if s.Tokens != tokens || math.Abs(s.Influence()-want) > 1e-13 {
		t.Errorf("two batches: %d tokens, BI %.17g; want %d, %.17g", s.Tokens, s.Influence(), tokens, want)
	}
}

func TestBlockInfluenceErrors(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	tests := []struct {
		name    string
		in, out []float32
		dim     int
		want    string
	}{
		{"zero dim", []float32{1}, []float32{1}, 0, "block influence: hidden size 0 is not positive"},
		{"lengths", []float32{1, 2}, []float32{1}, 1, "block influence: 2 input values but 1 output values"},
		{"partial token", []float32{1, 2, 3}, []float32{1, 2, 3}, 2,
			"block influence: 3 values are not whole tokens of hidden size 2"},
		{"empty", nil, nil, 4, "block influence: no tokens"},
		{"NaN", []float32{1, 1, 1, nan}, []float32{1, 1, 1, 1}, 2,
			"block influence: token 1 of the batch has a non-finite hidden state"},
		// A zero partner must not hide the infinity behind the 0.5 rule.
		{"Inf beside zero", []float32{inf, 1}, []float32{0, 0}, 2,
			"block influence: token 0 of the batch has a non-finite hidden state"},
	}
	for _, tt := range tests {
		_, err := BlockInfluence(tt.in, tt.out, tt.dim)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: error = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestLowest(t *testing.T) {
	tests := []struct {
		scores []float64
		remove int
		want   []int
	}{
		{[]float64{0.3, 0.1, 0.2, 0.05, 0.5}, 2, []int{1, 3}},
		{[]float64{0.3, 0.1, 0.2, 0.05, 0.5}, 4, []int{0, 1, 2, 3}},
		{[]float64{0.2, 0.1, 0.1, 0.1}, 2, []int{1, 2}},    // ties: lower index first
		{[]float64{0.1, 0.1, 0.1, 0.1}, 3, []int{0, 1, 2}}, // all tied
		{[]float64{-1, math.Inf(1), math.Inf(-1)}, 1, []int{2}},
	}
	for _, tt := range tests {
		got, err := Lowest(tt.scores, tt.remove)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("Lowest(%v, %d) = %v, %v; want %v", tt.scores, tt.remove, got, err, tt.want)
		}
	}

	errs := []struct {
		scores []float64
		remove int
		want   string
	}{
		{[]float64{1, 2, 3}, 0, "cannot remove 0 of 3 blocks: remove at least 1 and keep at least 1"},
		{[]float64{1, 2, 3}, 3, "cannot remove 3 of 3 blocks: remove at least 1 and keep at least 1"},
		{nil, 1, "cannot remove 1 of 0 blocks: remove at least 1 and keep at least 1"},
		{[]float64{1, math.NaN(), 3}, 1, "block 1 has a NaN score"},
	}
	for _, tt := range errs {
		_, err := Lowest(tt.scores, tt.remove)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Lowest(%v, %d): error = %v, want %q", tt.scores, tt.remove, err, tt.want)
		}
	}
}

func TestKeep(t *testing.T) {
	if got, want := Keep(6, []int{4, 1, 4}), []int{0, 2, 3, 5}; !slices.Equal(got, want) {
		t.Errorf("Keep(6, [4 1 4]) = %v, want %v", got, want)
	}
	if got := Keep(3, nil); !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("Keep(3, nil) = %v", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("Keep(3, [3]) did not panic")
		}
	}()
	Keep(3, []int{3})
}

func BenchmarkBlockInfluence(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	const tokens, dim = 512, 2048
	in := randomStates(r, tokens, dim, 0)
	out := randomStates(r, tokens, dim, 0)
	b.SetBytes(int64(8 * tokens * dim))
	for b.Loop() {
		if _, err := BlockInfluence(in, out, dim); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBlockInfluenceThreadsBitIdentical checks that spreading the tokens'
// cosines over threads leaves the score's bits those of one plain loop
// (each cosine in float64, summed in token order), for 1, 2 and 3 threads
// on enough tokens to be split, and that a non-finite state in a later
// thread's range is still reported at its own token.
func TestBlockInfluenceThreadsBitIdentical(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const tokens, dim = 3001, 64
	in := randomStates(r, tokens, dim, 0.3)
	out := randomStates(r, tokens, dim, 0.3)
	var sum float64
	for tok := range tokens {
		var dot, na, nb float64
		for i := range dim {
			a, b := float64(in[tok*dim+i]), float64(out[tok*dim+i])
			dot += a * b
			na += a * a
			nb += b * b
		}
		sum += dot / (math.Sqrt(na) * math.Sqrt(nb))
	}
	want := 1 - sum/tokens
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, 2, 3} {
		runtime.GOMAXPROCS(procs)
		if got := mustBI(t, in, out, dim); math.Float64bits(got) != math.Float64bits(want) {
			t.Errorf("%d threads: BI %.17g, the plain loop %.17g", procs, got, want)
		}
		bad := slices.Clone(out)
		bad[2999*dim+5] = float32(math.Inf(1))
		if _, err := BlockInfluence(in, bad, dim); err == nil || err.Error() != "block influence: token 2999 of the batch has a non-finite hidden state" {
			t.Errorf("%d threads: %v", procs, err)
		}
	}
}
