package dynamic

import (
	"lrmc/internal/stories"
	"math"
	"testing"

	"lrmc/kernels/llama"
	"lrmc/kernels/train"
	"lrmc/kernels/train/optim"
)

// storiesBatches loads stories260K and cuts n batches of b sequences of t
// tokens from the TinyStories validation text.
func storiesBatches(t testing.TB, n, b, tt int) (*llama.Model, []train.Batch) {
	t.Helper()
	m, ids := stories.Load(t, 200000, n*b*tt)
	var bts []train.Batch
	for i := range n {
		tokens := ids[i*b*tt : (i+1)*b*tt]
		bts = append(bts, train.Batch{Tokens: tokens, Targets: train.NextTokenTargets(tokens, nil, b, tt)})
	}
	return m, bts
}

// TestStoriesStage1 trains each method's routers alone (the base frozen)
// on stories260K for a few dozen steps, at skip ratios 0.4 and 0.2, and
// checks that the realised execute fraction moves toward 1 − s (D-LLM,
// whose routers start executing 87% of blocks, only at 0.4: at 0.2 it
// starts within 0.06 of the target): for
// SkipGPT and D-LLM that of the training passes (the mean of the last 5
// steps against the first step), for MoD — whose training passes execute
// exactly k/T by construction — that of the evaluation passes, where the
// predictors trained by the BCE decide.
func TestStoriesStage1(t *testing.T) {
	const b, tt, steps = 4, 64, 30
	m, bts := storiesBatches(t, 9, b, tt)
	held := bts[8] // evaluation batch, never trained on
	for _, c := range []struct {
		method Method
		skip   float64
		lr     float64
		lambda float64
	}{
		{SkipGPT, 0.4, 2e-3, 0}, {SkipGPT, 0.2, 2e-3, 0},
		// D-LLM's own α = 1 lets the LM loss of a 5-layer model, which
		// loses much from a skipped block, outweigh the rate loss.
		{DLLM, 0.4, 2e-3, 20},
		{MoD, 0.4, 2e-3, 0}, {MoD, 0.2, 2e-3, 0},
	} {
		g, err := NewTraining(TrainConfig{Method: c.method, Skip: c.skip, Seed: 1, Lambda: c.lambda}, m.Config.Layers, m.Config.Dim)
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
		eval := func() (train.Loss, float64, float64) {
			l, err := n.Loss(held)
			if err != nil {
				t.Fatal(err)
			}
			return l, g.ExecuteFraction(), g.PredictorAgreement()
		}
		l0, e0, a0 := eval()
		var first, tail float64
		for s := range steps {
			if _, err := tr.Step([]train.Batch{bts[s%8]}); err != nil {
				t.Fatal(err)
			}
			f := g.ExecuteFraction()
			if s == 0 {
				first = f
			}
			if s >= steps-5 {
				tail += f / 5
			}
		}
		l1, e1, a1 := eval()
		target := 1 - c.skip
		t.Logf("%s s=%.1f: training execute %.3f → %.3f (last 5 steps); evaluation execute %.3f → %.3f, CE %.3f → %.3f, %s %.4f → %.4f; target %.2f",
			c.method, c.skip, first, tail, e0, e1, l0.CE, l1.CE, l0.Aux[0].Name, l0.Aux[0].Value, l1.Aux[0].Value, target)
		if c.method == MoD {
			// Top-k executes k/T exactly; what training moves is the
			// predictors, which must learn to agree with top-k.
			t.Logf("mod s=%.1f: predictor agrees with top-k on %.3f → %.3f of routed rows", c.skip, a0, a1)
			if first != tail || math.Abs(first-float64(ModCapacity(c.skip, tt))/tt) > 1e-12 {
				t.Errorf("MoD training passes execute %.4f and %.4f, want k/T = %d/%d", first, tail, ModCapacity(c.skip, tt), tt)
			}
			if !(l1.Aux[0].Value < l0.Aux[0].Value-0.05) || !(a1 > a0+0.05) {
				t.Errorf("MoD predictor BCE %.4f → %.4f, agreement %.3f → %.3f", l0.Aux[0].Value, l1.Aux[0].Value, a0, a1)
			}
			continue
		}
		if !(math.Abs(tail-target) < 0.6*math.Abs(first-target)) {
			t.Errorf("%s s=%.1f: execute fraction %.3f → %.3f, target %.2f", c.method, c.skip, first, tail, target)
		}
	}
}

// TestStoriesStage2 trains SkipGPT's routers (stage 1), freezes them in
// evaluation mode and trains LoRA adapters with them (stage 2, lr 2e-4 as
// SkipGPT does): the routers do not move (their decisions only follow the
// hidden states LoRA changes), there is no auxiliary loss, and the
// held-out loss of the gated model falls.
func TestStoriesStage2(t *testing.T) {
	const b, tt = 4, 64
	m, bts := storiesBatches(t, 9, b, tt)
	g, err := NewTraining(TrainConfig{Method: SkipGPT, Skip: 0.4, Seed: 1}, m.Config.Layers, m.Config.Dim)
	if err != nil {
		t.Fatal(err)
	}
	n, err := train.New(m, b, tt, train.WithGEMM(), train.WithGate(g))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := train.NewTrainer(n, train.TrainerConfig{Schedule: optim.Constant{PeakLR: 2e-3, Total: 20}})
	if err != nil {
		t.Fatal(err)
	}
	for s := range 20 {
		if _, err := tr.Step([]train.Batch{bts[s%8]}); err != nil {
			t.Fatal(err)
		}
	}
	frozen, err := Frozen(g.Routers())
	if err != nil {
		t.Fatal(err)
	}
	before := append([]float32(nil), g.Routers().Layers[2].MLP.W...)
	n2, err := train.New(m, b, tt, train.WithGEMM(), train.WithGate(frozen),
		train.WithLoRA(train.LoRAConfig{Rank: 8, Alpha: 16, Targets: []string{train.QProj, train.VProj, train.OProj, train.GateProj, train.UpProj, train.DownProj}, Seed: 1}))
	if err != nil {
		t.Fatal(err)
	}
	tr2, err := train.NewTrainer(n2, train.TrainerConfig{Schedule: optim.Constant{PeakLR: 2e-4, Total: 15}})
	if err != nil {
		t.Fatal(err)
	}
	l0, err := n2.Loss(bts[8])
	if err != nil {
		t.Fatal(err)
	}
	e0 := frozen.ExecuteFraction()
	for s := range 15 {
		if _, err := tr2.Step([]train.Batch{bts[s%8]}); err != nil {
			t.Fatal(err)
		}
	}
	l1, _ := n2.Loss(bts[8])
	t.Logf("stage 2 (LoRA r=8, lr 2e-4, 15 steps) over frozen SkipGPT routers: held-out CE %.4f → %.4f, execute fraction %.3f → %.3f",
		l0.CE, l1.CE, e0, frozen.ExecuteFraction())
	if !(l1.CE < l0.CE) || len(l1.Aux) != 0 {
		t.Fatalf("stage 2: CE %.4f → %.4f, aux %v", l0.CE, l1.CE, l1.Aux)
	}
	for i, v := range g.Routers().Layers[2].MLP.W {
		if v != before[i] {
			t.Fatal("stage 2 moved the frozen routers")
		}
	}
}
