package sample

import (
	"math"
	"testing"
)

func TestArgmax(t *testing.T) {
	nan := float32(math.NaN())
	for _, c := range []struct {
		logits []float32
		want   int32
	}{
		{[]float32{0.5}, 0},
		{[]float32{1, 3, 2}, 1},
		{[]float32{3, 1, 3}, 0}, // lowest index on ties
		{[]float32{-2, -1, -1}, 1},
		{[]float32{1, nan, 2}, 2},
		{[]float32{float32(math.Inf(-1)), -1e30}, 1},
	} {
		if got := Argmax(c.logits); got != c.want {
			t.Errorf("Argmax(%v) = %d, want %d", c.logits, got, c.want)
		}
	}
}

func TestGreedySampler(t *testing.T) {
	s := New(0, 0.9, 42)
	logits := []float32{0, 5, 5, 1}
	if got := s.Sample(logits); got != 1 {
		t.Fatalf("temperature 0 sampled %d, want argmax 1", got)
	}
	if logits[1] != 5 {
		t.Fatal("Sample modified the logits")
	}
}

// TestSamplerDeterministic: the same seed gives the same stream, another
// seed a different one.
func TestSamplerDeterministic(t *testing.T) {
	logits := make([]float32, 64)
	for i := range logits {
		logits[i] = float32(math.Sin(float64(i)))
	}
	draw := func(seed uint64, topP float32) []int32 {
		s := New(1, topP, seed)
		out := make([]int32, 50)
		for i := range out {
			out[i] = s.Sample(logits)
		}
		return out
	}
	for _, topP := range []float32{0, 0.9} {
		a, b, c := draw(7, topP), draw(7, topP), draw(8, topP)
		same := true
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("topP=%v: same seed, draw %d: %d vs %d", topP, i, a[i], b[i])
			}
			same = same && a[i] == c[i]
		}
		if same {
			t.Fatalf("topP=%v: seeds 7 and 8 gave identical streams", topP)
		}
	}
}

// TestSamplerDistribution: with temperature T the draw frequencies follow
// softmax(logits/T) (checked to 4 standard errors over 40000 draws), and
// top-p keeps exactly the nucleus.
func TestSamplerDistribution(t *testing.T) {
	logits := []float32{2, 1, 0, -1, 0.5}
	const temp, n = 0.7, 40000
	var z float64
	p := make([]float64, len(logits))
	for i, l := range logits {
		p[i] = math.Exp(float64(l) / temp)
		z += p[i]
	}
	s := New(temp, 1, 1)
	counts := make([]int, len(logits))
	for range n {
		counts[s.Sample(logits)]++
	}
	for i := range p {
		p[i] /= z
		se := math.Sqrt(p[i] * (1 - p[i]) / n)
		if f := float64(counts[i]) / n; math.Abs(f-p[i]) > 4*se {
			t.Errorf("token %d drawn with frequency %.4f, probability %.4f (se %.4f)", i, f, p[i], se)
		}
	}
	// Probabilities ≈ .700 .168 .040 .010 .082 (sorted: 0, 1, 4, 2, 3).
	// With top-p 0.8 the nucleus is {0, 1}: .700 alone does not exceed 0.8.
	s = New(temp, 0.8, 2)
	counts = make([]int, len(logits))
	for range n {
		counts[s.Sample(logits)]++
	}
	if counts[2]+counts[3]+counts[4] != 0 || counts[0] == 0 || counts[1] == 0 {
		t.Fatalf("top-p 0.8 counts %v, want only tokens 0 and 1", counts)
	}
	want0 := p[0] / (p[0] + p[1])
	if f := float64(counts[0]) / n; math.Abs(f-want0) > 4*math.Sqrt(want0*(1-want0)/n) {
		t.Fatalf("top-p: token 0 frequency %.4f, want %.4f", f, want0)
	}
}
