package calib

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// iota32 returns the stream 0, 1, …, n-1, in which a window starting at token
// s holds s, s+1, … and so names the chunk it came from.
func iota32(n int) []int32 {
	s := make([]int32, n)
	for i := range s {
		s[i] = int32(i)
	}
	return s
}

// chunksOf checks that windows holds samples real, distinct chunks of
// iota32 and returns their indices in order.
func chunksOf(t *testing.T, windows []int32, samples, seqLen int) []int {
	t.Helper()
	if len(windows) != samples*seqLen {
		t.Fatalf("got %d tokens, want %d×%d", len(windows), samples, seqLen)
	}
	var chunks []int
	for w := range samples {
		win := windows[w*seqLen : (w+1)*seqLen]
		if int(win[0])%seqLen != 0 {
			t.Fatalf("window %d starts at token %d, not on a chunk boundary", w, win[0])
		}
		c := int(win[0]) / seqLen
		if !slices.Equal(win, iota32((c + 1) * seqLen)[c*seqLen:]) {
			t.Fatalf("window %d = %v is not chunk %d", w, win, c)
		}
		if slices.Contains(chunks, c) {
			t.Fatalf("chunk %d chosen twice: %v", c, append(chunks, c))
		}
		chunks = append(chunks, c)
	}
	return chunks
}

func TestPCGPremise(t *testing.T) {
	// Windows relies on math/rand/v2's PCG sequence staying fixed; these are
	// the first outputs Go's own tests pin for NewPCG(1, 2).
	p := rand.NewPCG(1, 2)
	for i, want := range []uint64{0xc4f5a58656eef510, 0x9dcec3ad077dec6c, 0xc8d04605312f8088} {
		if got := p.Uint64(); got != want {
			t.Fatalf("PCG output %d = %#x, want %#x", i, got, want)
		}
	}
}

func TestWindowsPinned(t *testing.T) {
	// The chunk orders come from an independent Python implementation of
	// PCG-DXSM, Lemire's bounded draw and the partial Fisher–Yates shuffle as
	// the Windows comment specifies them (checked against Go's PCG vectors).
	tests := []struct {
		chunks, samples int
		seed            uint64
		want            []int
	}{
		{40, 8, 42, []int{22, 10, 23, 31, 4, 32, 24, 3}},
		{40, 8, 0, []int{3, 26, 38, 33, 5, 23, 20, 37}},
		{10, 10, 7, []int{1, 2, 3, 9, 7, 8, 0, 4, 5, 6}},
		{3, 1, 1, []int{0}},
	}
	for _, tt := range tests {
		const seqLen = 5
		// Three tokens of tail beyond the last whole chunk are dropped.
		w, err := Windows(iota32(tt.chunks*seqLen+3), tt.samples, seqLen, tt.seed)
		if err != nil {
			t.Fatal(err)
		}
		if got := chunksOf(t, w, tt.samples, seqLen); !slices.Equal(got, tt.want) {
			t.Errorf("%d of %d chunks, seed %d: chose %v, want %v", tt.samples, tt.chunks, tt.seed, got, tt.want)
		}
	}
}

func TestWindowsDeterministicAndSeeded(t *testing.T) {
	stream := iota32(64*100 + 17)
	a, err := Windows(stream, 16, 64, 1234)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Windows(stream, 16, 64, 1234)
	if !slices.Equal(a, b) {
		t.Error("the same seed gave different windows")
	}
	chunksOf(t, a, 16, 64)
	c, _ := Windows(stream, 16, 64, 1235)
	if slices.Equal(a, c) {
		t.Error("seeds 1234 and 1235 gave the same windows")
	}
	// Taking every chunk is a permutation of the whole (truncated) stream.
	all, _ := Windows(stream, 100, 64, 9)
	got := chunksOf(t, all, 100, 64)
	slices.Sort(got)
	if !slices.Equal(got, indices(100)) {
		t.Errorf("all chunks: got %v", got)
	}
}

func indices(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func TestWindowsUniform(t *testing.T) {
	// Over many seeds, each of 10 chunks should be the first pick and
	// appear among 3 picks equally often. Expected counts 2000 and 6000;
	// the bounds are about 5 standard deviations wide.
	const chunks, samples, seeds = 10, 3, 20000
	stream := iota32(chunks)
	var first, chosen [chunks]int
	for seed := range uint64(seeds) {
		w, err := Windows(stream, samples, 1, seed)
		if err != nil {
			t.Fatal(err)
		}
		first[w[0]]++
		for _, c := range w {
			chosen[c]++
		}
	}
	for c := range chunks {
		if first[c] < 1790 || first[c] > 2210 || chosen[c] < 5675 || chosen[c] > 6325 {
			t.Errorf("chunk %d: first %d times (want ≈2000), chosen %d times (want ≈6000)", c, first[c], chosen[c])
		}
	}
}

func TestWindowsErrors(t *testing.T) {
	tests := []struct {
		len, samples, seqLen int
		want                 string
	}{
		{10300, 64, 256, "calibration needs 64 windows of 256 tokens but the data gives only 40 (10300 tokens)"},
		{100, 1, 101, "calibration needs 1 window of 101 tokens but the data gives only 0 (100 tokens)"},
		{100, 0, 10, "calibration needs at least 1 window, got 0"},
		{100, 2, 0, "calibration windows need at least 1 token, got a length of 0"},
	}
	for _, tt := range tests {
		_, err := Windows(iota32(tt.len), tt.samples, tt.seqLen, 1)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Windows(%d tokens, %d, %d): error = %v, want %q", tt.len, tt.samples, tt.seqLen, err, tt.want)
		}
	}
}

func TestPermutation(t *testing.T) {
	p := Permutation(50, 7, 1)
	seen := make([]bool, 50)
	for _, v := range p {
		if seen[v] {
			t.Fatalf("%d appears twice in %v", v, p)
		}
		seen[v] = true
	}
	if fmt.Sprint(p) != fmt.Sprint(Permutation(50, 7, 1)) {
		t.Error("the same seed and stream gave different permutations")
	}
	if fmt.Sprint(p) == fmt.Sprint(Permutation(50, 7, 2)) || fmt.Sprint(p) == fmt.Sprint(Permutation(50, 8, 1)) {
		t.Error("another stream or seed gave the same permutation")
	}
	// The windows Windows picks are the permutation's first entries.
	if got, want := fmt.Sprint(choose(50, 5, 7)), fmt.Sprint(Permutation(50, 7, pcgStream)[:5]); got != want {
		t.Errorf("choose %s, permutation prefix %s", got, want)
	}
}
