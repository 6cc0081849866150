package llama_test

import (
	"math"
	"runtime"
	"slices"
	"testing"

	"lrmc/kernels/llama"
	"lrmc/kernels/synth"
)

// ForwardForks gives each branch token the logits that running its context
// and branch alone through the whole-sequence forward pass gives, and each
// context's last position the same, whatever else shares the pass; and the
// same bits at every thread count.
func TestForwardForksMatchesForward(t *testing.T) {
	m, _, err := synth.New(synth.Spec{Arch: "qwen3", Layers: 2, Dim: 32, Heads: 4, KVHeads: 2, HeadDim: 16, FFN: 64, Vocab: 40, SeqLen: 64, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	forks := []llama.Fork{
		{Context: []int32{1, 5, 9, 2, 33, 7}, Branches: [][]int32{{4, 8, 15}, {}, {16, 23, 32, 4, 8}}},
		{Context: []int32{3}, Branches: [][]int32{{39}}},
		{Context: []int32{7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7}, Branches: nil},
	}
	h := m.ForwardForks(forks)
	v, d := m.Config.Vocab, m.Config.Dim
	logits := m.Logits(h, 1, len(h)/d)
	row := 0
	check := func(what string, got, want []float32) {
		t.Helper()
		for i := range want {
			if math.Abs(float64(got[i]-want[i])) > 1e-4 {
				t.Fatalf("%s, logit %d: forks %v, alone %v", what, i, got[i], want[i])
			}
		}
	}
	for _, f := range forks {
		n := len(f.Context)
		alone := m.Forward(f.Context, 1, n)
		check("context's last position", logits[row*v:(row+1)*v], alone[(n-1)*v:])
		row++
		for _, b := range f.Branches {
			seq := append(slices.Clone(f.Context), b...)
			alone := m.Forward(seq, 1, len(seq))
			for j := range b {
				check("branch token", logits[row*v:(row+1)*v], alone[(n+j)*v:(n+j+1)*v])
				row++
			}
		}
	}
	if row*d != len(h) {
		t.Fatalf("%d rows returned, %d expected", len(h)/d, row)
	}
	prev := runtime.GOMAXPROCS(1)
	one := m.ForwardForks(forks)
	runtime.GOMAXPROCS(prev)
	if !slices.Equal(one, h) {
		t.Error("one thread gives other bits than GOMAXPROCS threads")
	}
}
