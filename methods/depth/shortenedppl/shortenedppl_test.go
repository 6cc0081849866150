package shortenedppl_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"lrmc/executor/ops"
	"lrmc/kernels/perplexity"
	"lrmc/kernels/synth"
	"lrmc/methods/depth"
	"lrmc/methods/depth/shortenedppl"
	"lrmc/methods/internal/optest"
)

// A block's score, computed from the capture entering it, is the
// calibration perplexity of the whole model without that block.
func TestScoreFromCapture(t *testing.T) {
	m, _, err := synth.New(synth.Spec{Arch: "qwen2", Layers: 4, Dim: 24, Heads: 4, KVHeads: 2, FFN: 32, Vocab: 30, SeqLen: 16, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(8, 9))
	w := ops.Tokens{Rows: 3, Cols: 9}
	for range w.Rows * w.Cols {
		w.IDs = append(w.IDs, int32(r.IntN(30)))
	}
	h := m.Embed(w.IDs, nil)
	for i := range m.Config.Layers {
		v, err := optest.Run(t, shortenedppl.OpBlockPPL, shortenedppl.Params{Layer: i, Samples: w.Rows, SeqLen: w.Cols},
			&ops.Model{LM: m}, w, ops.Hidden{Data: h, Rows: len(w.IDs), Dim: m.Config.Dim})
		if err != nil {
			t.Fatal(err)
		}
		lm, err := m.Keep(depth.AllBut(m.Config.Layers, i))
		if err != nil {
			t.Fatal(err)
		}
		logits := lm.Forward(w.IDs, w.Rows, w.Cols)
		var sum float64
		var n int
		for s := range w.Rows {
			x, c := perplexity.NLL(logits[s*w.Cols*30:(s+1)*w.Cols*30], w.IDs[s*w.Cols:(s+1)*w.Cols], 30)
			sum += x
			n += c
		}
		want := math.Exp(sum / float64(n))
		if got := v.(shortenedppl.BlockPPL); got.Layer != i || math.Abs(got.Perplexity-want) > 1e-5*want {
			t.Errorf("block %d: %+v, whole model without it %.9g", i, got, want)
		}
		h = m.Block(i, h, w.Rows, w.Cols)
	}
}
