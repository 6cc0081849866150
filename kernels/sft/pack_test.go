package sft

import (
	"math/rand/v2"
	"slices"
	"testing"

	"lrmc/kernels/train"
)

func TestPack(t *testing.T) {
	exs := []Example{
		{Tokens: []int32{1, 2, 3}, Mask: []bool{false, true, true}},
		{Tokens: []int32{4, 5, 6, 7}, Mask: []bool{false, false, true, true}},
		{Tokens: []int32{8, 9}, Mask: []bool{false, true}},
	}
	tokens, mask, rows := Pack(exs, 4)
	// 9 tokens make two rows of 4; token 9 is dropped.
	if rows != 2 ||
		!slices.Equal(tokens, []int32{1, 2, 3, 4, 5, 6, 7, 8}) ||
		!slices.Equal(mask, []bool{false, true, true, false, false, true, true, false}) {
		t.Errorf("Pack = %v, %v, %d", tokens, mask, rows)
	}
	if tokens, mask, rows := Pack(exs, 10); rows != 0 || len(tokens) != 0 || len(mask) != 0 {
		t.Errorf("Pack(seqLen 10) = %v, %v, %d; want no row", tokens, mask, rows)
	}
}

func TestTargets(t *testing.T) {
	tokens := []int32{1, 2, 3, 4, 5, 6, 7, 8}
	mask := []bool{false, true, true, false, false, true, true, false}
	got := Targets(tokens, mask, 2, 4)
	// Position i targets token i+1 when it is trained; a row's last
	// position targets nothing.
	want := []int32{2, 3, -1, -1, 6, 7, -1, -1}
	if !slices.Equal(got, want) {
		t.Errorf("Targets = %v, want %v", got, want)
	}
	if got, want := Targets(tokens, nil, 2, 4), []int32{2, 3, 4, -1, 6, 7, 8, -1}; !slices.Equal(got, want) {
		t.Errorf("Targets(nil mask) = %v, want %v", got, want)
	}
}

// TestTargetsMatchTrain checks the convention against kernels/train, whose
// Batch.Targets these feed.
func TestTargetsMatchTrain(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, shape := range [][2]int{{1, 1}, {1, 7}, {3, 5}, {4, 16}} {
		rows, seqLen := shape[0], shape[1]
		tokens := make([]int32, rows*seqLen)
		mask := make([]bool, rows*seqLen)
		for i := range tokens {
			tokens[i] = rng.Int32N(1000)
			mask[i] = rng.IntN(2) == 0
		}
		if got, want := Targets(tokens, mask, rows, seqLen), train.NextTokenTargets(tokens, mask, rows, seqLen); !slices.Equal(got, want) {
			t.Errorf("%dx%d: Targets = %v, train.NextTokenTargets = %v", rows, seqLen, got, want)
		}
	}
}
