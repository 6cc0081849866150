package depth_test

import (
	"context"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"lrmc/executor/ops"
	"lrmc/kernels/llama"
	"lrmc/kernels/perplexity"
	"lrmc/kernels/synth"
	"lrmc/methods/depth"
)

// Barriers keep blocks out of the choice, whatever their scores.
func TestLowestBarriers(t *testing.T) {
	scores := []float64{0.1, 5, 0.2, 3, 0.05}
	for _, c := range []struct {
		remove, early, latter int
		want                  []int
	}{
		{2, 0, 0, []int{0, 4}},
		{2, 1, 1, []int{2, 3}},
		{1, 1, 1, []int{2}},
		{3, 1, 1, []int{1, 2, 3}}, // every candidate may go: the barriers stay
		{1, 3, 0, []int{4}},
		{2, 0, 2, []int{0, 2}},
	} {
		got, err := depth.Lowest(scores, c.remove, c.early, c.latter)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("Lowest(remove %d, barriers %d/%d) = %v, %v; want %v", c.remove, c.early, c.latter, got, err, c.want)
		}
	}
	// Ties go to the lower index, as the references' strict < over
	// ascending blocks.
	if got, _ := depth.Lowest([]float64{1, 2, 2, 2, 1}, 1, 1, 1); !reflect.DeepEqual(got, []int{1}) {
		t.Errorf("tie: %v", got)
	}
	if _, err := depth.Lowest(scores, 4, 1, 1); err == nil || err.Error() != "cannot remove 4 of 5 blocks when the first 1 and the last 1 stay" {
		t.Errorf("too many: %v", err)
	}
	if _, err := depth.Lowest([]float64{1, math.NaN(), 2}, 1, 1, 0); err == nil {
		t.Error("a NaN score was ranked")
	}
}

// smallModel is a random 5-block model and calibration windows for it.
func smallModel(t *testing.T) (*llama.Model, ops.Tokens) {
	t.Helper()
	m, _, err := synth.New(synth.Spec{Arch: "qwen3", Layers: 5, Dim: 32, Heads: 4, KVHeads: 2, FFN: 48, Vocab: 50, SeqLen: 16, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	// Norm weights away from 1, so applying them matters.
	r := rand.New(rand.NewPCG(1, 2))
	for i := range m.FinalNorm {
		m.FinalNorm[i] = 0.5 + r.Float32()
	}
	w := ops.Tokens{Rows: 3, Cols: 12}
	for range w.Rows * w.Cols {
		w.IDs = append(w.IDs, int32(r.IntN(50)))
	}
	return m, w
}

// Captures returns the hidden states entering every block of m.
func captures(m *llama.Model, w ops.Tokens) []ops.Hidden {
	h := m.Embed(w.IDs, nil)
	var out []ops.Hidden
	for i := range m.Config.Layers {
		out = append(out, ops.Hidden{Data: h, Rows: len(w.IDs), Dim: m.Config.Dim})
		h = m.Block(i, h, w.Rows, w.Cols)
	}
	return out
}

// forwardNLL is the reference: the model without the removed blocks, run
// whole from the embeddings, its NLL summed in float64.
func forwardNLL(t *testing.T, m *llama.Model, w ops.Tokens, removed ...int) float64 {
	t.Helper()
	lm, err := m.Keep(depth.AllBut(m.Config.Layers, removed...))
	if err != nil {
		t.Fatal(err)
	}
	logits := lm.Forward(w.IDs, w.Rows, w.Cols)
	var sum float64
	var n int
	v := m.Config.Vocab
	for i := range w.Rows {
		s, c := perplexity.NLL(logits[i*w.Cols*v:(i+1)*w.Cols*v], w.IDs[i*w.Cols:(i+1)*w.Cols], v)
		sum += s
		n += c
	}
	return sum / float64(n)
}

// Starting from the capture entering the first removed block gives the
// loss of the whole model without the removed blocks.
func TestNLLFromCapture(t *testing.T) {
	m, w := smallModel(t)
	hs := captures(m, w)
	for _, removed := range [][]int{{0}, {2}, {4}, {1, 3}, {2, 4}} {
		start := removed[0]
		skip := func(j int) bool {
			for _, r := range removed {
				if r == j {
					return true
				}
			}
			return false
		}
		got, err := depth.NLLFrom(context.Background(), m, hs[start], start, skip, w)
		if err != nil {
			t.Fatal(err)
		}
		want := forwardNLL(t, m, w, removed...)
		if math.Abs(got-want) > 1e-6*want {
			t.Errorf("without %v: from capture %.9g, whole forward %.9g", removed, got, want)
		}
	}
	if _, err := depth.NLLFrom(context.Background(), m, ops.Hidden{Rows: 1, Dim: 32}, 0, nil, w); err == nil {
		t.Error("a capture of the wrong shape was accepted")
	}
}
