package sleb_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"lrmc/executor/ops"
	"lrmc/kernels/llama"
	"lrmc/kernels/perplexity"
	"lrmc/kernels/synth"
	"lrmc/methods/depth"
	"lrmc/methods/depth/sleb"
	"lrmc/methods/internal/optest"
)

func model(t *testing.T) (*llama.Model, ops.Tokens) {
	t.Helper()
	m, _, err := synth.New(synth.Spec{Arch: "llama", Layers: 6, Dim: 32, Heads: 4, KVHeads: 4, FFN: 48, Vocab: 40, SeqLen: 16, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	w := ops.Tokens{Rows: 2, Cols: 10}
	for range w.Rows * w.Cols {
		w.IDs = append(w.IDs, int32(r.IntN(40)))
	}
	return m, w
}

// reference is the calibration perplexity of m without the removed blocks,
// run whole from the embeddings.
func reference(t *testing.T, m *llama.Model, w ops.Tokens, removed ...int) float64 {
	t.Helper()
	lm, err := m.Keep(depth.AllBut(m.Config.Layers, removed...))
	if err != nil {
		t.Fatal(err)
	}
	logits := lm.Forward(w.IDs, w.Rows, w.Cols)
	v := m.Config.Vocab
	var sum float64
	var n int
	for i := range w.Rows {
		s, c := perplexity.NLL(logits[i*w.Cols*v:(i+1)*w.Cols*v], w.IDs[i*w.Cols:(i+1)*w.Cols], v)
		sum += s
		n += c
	}
	return math.Exp(sum / float64(n))
}

// SLEB never considers the blocks behind its barriers (the reference's
// early_barrier=1, latter_barrier=1: block 0 and the last block), scores
// every other candidate by the perplexity of the model without it and
// the blocks removed before, and removes the lowest.
func TestStepBarriersAndScores(t *testing.T) {
	m, w := model(t)
	n := m.Config.Layers
	// The captures entering the candidate blocks 1..4.
	h := m.Embed(w.IDs, nil)
	var caps []any
	for i := range n - 1 {
		if i >= 1 {
			caps = append(caps, ops.Hidden{Data: h, Rows: len(w.IDs), Dim: m.Config.Dim})
		}
		h = m.Block(i, h, w.Rows, w.Cols)
	}
	in := append([]any{&ops.Model{LM: m}, w}, caps...)
	var prev any
	var removed []int
	for k := 1; k <= 3; k++ {
		args := in
		if prev != nil {
			args = append(slices.Clone(in), prev)
		}
		v, err := optest.Run(t, sleb.OpStep, sleb.StepParams{Step: k, Blocks: n, Samples: w.Rows, SeqLen: w.Cols, EarlyBarrier: 1, LatterBarrier: 1}, args...)
		if err != nil {
			t.Fatal(err)
		}
		st := v.(sleb.Step)
		best := -1
		for i := range n {
			c := st.Candidates[i]
			if i == 0 || i == n-1 || slices.Contains(removed, i) {
				if c != 0 {
					t.Errorf("step %d scored block %d (%g), which is behind a barrier or gone", k, i, c)
				}
				continue
			}
			want := reference(t, m, w, append(slices.Clone(removed), i)...)
			if math.Abs(c-want) > 1e-5*want {
				t.Errorf("step %d, block %d: %.9g, whole model without it %.9g", k, i, c, want)
			}
			if best < 0 || want < reference(t, m, w, append(slices.Clone(removed), best)...) {
				best = i
			}
		}
		removed = append(removed, best)
		if !slices.Equal(st.Removed, removed) {
			t.Fatalf("step %d removed %v, want %v", k, st.Removed, removed)
		}
		prev = st
	}
	// Four candidates: all four may go, not a fifth.
	v, err := optest.Run(t, sleb.OpStep, sleb.StepParams{Step: 4, Blocks: n, Samples: w.Rows, SeqLen: w.Cols, EarlyBarrier: 1, LatterBarrier: 1}, append(slices.Clone(in), prev)...)
	if err != nil {
		t.Fatal(err)
	}
	if r := v.(sleb.Step).Removed; len(r) != 4 || slices.Contains(r, 0) || slices.Contains(r, n-1) {
		t.Errorf("four steps removed %v", r)
	}
	if _, err := optest.Run(t, sleb.OpStep, sleb.StepParams{Step: 5, Blocks: n, Samples: w.Rows, SeqLen: w.Cols, EarlyBarrier: 1, LatterBarrier: 1}, append(slices.Clone(in), v)...); err == nil {
		t.Error("a fifth step found a candidate")
	}
}
