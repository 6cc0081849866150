package dynamic

import (
	"math"
	"os"
	"testing"

	"lrmc/internal/shareddata"
	"lrmc/kernels/llama"
	"lrmc/kernels/llama2c"
	"lrmc/kernels/train"
	"lrmc/kernels/train/optim"
)

// storiesBatches loads stories260K and cuts n batches of b sequences of t
// tokens from the TinyStories validation text.
func storiesBatches(t testing.TB, n, b, tt int) (*llama.Model, []train.Batch) {
	t.Helper()
	m, err := llama2c.Load(shareddata.Path(t, "models", "stories260K", "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := llama2c.LoadTokenizer(shareddata.Path(t, "models", "stories260K", "tok512.bin"), m.Config.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(shareddata.Path(t, "text", "tinystories", "tinystories_val.txt"))
	if err != nil {
		t.Fatal(err)
	}
	ids := tok.Encode(string(text[:200000]), true, false)
	if len(ids) < n*b*tt {
		t.Fatalf("only %d tokens", len(ids))
	}
	var bts []train.Batch
	for i := range n {
		tokens := ids[i*b*tt : (i+1)*b*tt]
		bts = append(bts, train.Batch{Tokens: tokens, Targets: train.NextTokenTargets(tokens, nil, b, tt)})
	}
	return m, bts
}

// TestStoriesStage1 trains each method's routers alone (the base frozen)
// on stories260K for a few dozen steps: the realised execute fraction of
// the training passes moves toward 1 − s.
func TestStoriesStage1(t *testing.T) {
	const b, tt, steps = 4, 64, 40
	m, bts := storiesBatches(t, 8, b, tt)
	for _, c := range []struct {
		method Method
		skip   float64
		lr     float64
	}{{SkipGPT, 0.4, 2e-3}} {
		g, err := NewTraining(TrainConfig{Method: c.method, Skip: c.skip, Seed: 1}, m.Config.Layers, m.Config.Dim)
		if err != nil {
			t.Fatal(err)
		}
		n, err := train.New(m, b, tt, train.WithGEMM(), train.WithGate(g))
		if err != nil {
			t.Fatal(err)
		}
		tr, err := train.NewTrainer(n, train.TrainerConfig{Schedule: optim.Constant{PeakLR: c.lr, Total: steps}})
		if err != nil {
			t.Fatal(err)
		}
		var first, last float64
		for s := range steps {
			st, err := tr.Step([]train.Batch{bts[s%len(bts)]})
			if err != nil {
				t.Fatal(err)
			}
			f := g.ExecuteFraction()
			if s == 0 {
				first = f
			}
			last = f
			if s%5 == 0 || s == steps-1 {
				t.Logf("%s step %d: loss %.4f execute %.3f", c.method, s, st.Loss, f)
			}
		}
		target := 1 - c.skip
		if !(math.Abs(last-target) < math.Abs(first-target)-0.05) {
			t.Errorf("%s: execute fraction %.3f → %.3f, target %.2f", c.method, first, last, target)
		}
	}
}
