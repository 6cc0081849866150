package train

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"

	"lrmc/kernels/llama"
	"lrmc/kernels/train/optim"
)

var smallCfg = llama.Config{Dim: 32, HiddenDim: 48, Layers: 2, Heads: 4, KVHeads: 2, Vocab: 40, SeqLen: 16,
	NormEps: 1e-5, RopeTheta: 10000, RopeStyle: llama.RopeHalf}

// microBatch is deterministic data for micro-batch i.
func microBatch(i, b, t, vocab int) Batch {
	tok := randTokens(b*t, vocab, uint64(100+i))
	return Batch{Tokens: tok, Targets: NextTokenTargets(tok, nil, b, t)}
}

func newTrainer(t *testing.T, opts ...Option) *Trainer {
	t.Helper()
	n, err := New(randModel(smallCfg, 21), 2, 8, opts...)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTrainer(n, TrainerConfig{Schedule: optim.Cosine{PeakLR: 3e-3, Total: 6, WarmupRatio: 0.2},
		WeightDecay: 0.01, MaxGradNorm: 0.5, Accumulation: 2})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func runSteps(t *testing.T, tr *Trainer, from, to int) {
	t.Helper()
	for s := from; s < to; s++ {
		if _, err := tr.Step([]Batch{microBatch(2*s, 2, 8, smallCfg.Vocab), microBatch(2*s+1, 2, 8, smallCfg.Vocab)}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestResumeBitIdentical trains 6 steps straight, and 2 steps, saves,
// restores into a trainer built afresh from the same base, and trains 4
// more: the trainable values must agree bit for bit (LoRA with dropout and
// full fine-tuning together, so masks, moments and schedule all matter).
func TestResumeBitIdentical(t *testing.T) {
	opts := []Option{FullFineTune(), WithGEMM(), WithLoRA(LoRAConfig{Rank: 2, Alpha: 4, Dropout: 0.2,
		Targets: []string{QProj, VProj, GateProj}, Seed: 4})}
	straight := newTrainer(t, opts...)
	runSteps(t, straight, 0, 6)

	first := newTrainer(t, opts...)
	runSteps(t, first, 0, 2)
	state, err := first.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	resumed := newTrainer(t, opts...)
	if err := resumed.UnmarshalBinary(state); err != nil {
		t.Fatal(err)
	}
	runSteps(t, resumed, 2, 6)
	a, b := straight.Net.Params(), resumed.Net.Params()
	for i := range a {
		for j := range a[i].Data {
			if math.Float32bits(a[i].Data[j]) != math.Float32bits(b[i].Data[j]) {
				t.Fatalf("%s[%d]: straight %g, resumed %g", a[i].Name, j, a[i].Data[j], b[i].Data[j])
			}
		}
	}
	// And the run did move: the first adapter's B left zero.
	if a := straight.Net.Adapters()[0]; a.B.Data[argmaxAbs(a.B.Data)] == 0 {
		t.Fatal("training did not change lora_B")
	}
	if err := resumed.UnmarshalBinary([]byte("LRMCTRN1")); err == nil || err.Error() != `train: trainer state does not start with "LRMCTRN1"` {
		t.Fatalf("short state: %v", err)
	}
}

// TestOverfitTinyTask trains LoRA and, separately, the full model on one
// fixed batch whose targets are a fixed permutation of the inputs: the loss
// must fall well below its start.
func TestOverfitTinyTask(t *testing.T) {
	for _, c := range []struct {
		name string
		opt  Option
		lr   float64
		want float64 // final loss must be below want × initial
	}{
		{"lora", WithLoRA(LoRAConfig{Rank: 8, Alpha: 16, Targets: []string{QProj, KProj, VProj, OProj, GateProj, UpProj, DownProj}, Seed: 1}), 1e-2, 0.3},
		{"full", FullFineTune(), 1e-2, 0.1},
	} {
		t.Run(c.name, func(t *testing.T) {
			n, err := New(randModel(smallCfg, 5), 2, 8, c.opt)
			if err != nil {
				t.Fatal(err)
			}
			tr, err := NewTrainer(n, TrainerConfig{Schedule: optim.Cosine{PeakLR: c.lr, Total: 60, WarmupRatio: 0.1}, MaxGradNorm: 1})
			if err != nil {
				t.Fatal(err)
			}
			tok := randTokens(16, smallCfg.Vocab, 77)
			tg := make([]int32, 16)
			for i, v := range tok {
				tg[i] = (v*7 + 3) % int32(smallCfg.Vocab)
			}
			bt := Batch{Tokens: tok, Targets: tg}
			first, _ := n.Loss(bt)
			for range 60 {
				if _, err := tr.Step([]Batch{bt}); err != nil {
					t.Fatal(err)
				}
			}
			last, _ := n.Loss(bt)
			t.Logf("loss %.4f → %.4f", first.Total, last.Total)
			if !(last.Total < c.want*first.Total) {
				t.Fatalf("loss %.4f → %.4f, want below %.2f×", first.Total, last.Total, c.want)
			}
		})
	}
}

// TestPeakBytes checks PeakBytes against what New and AdamW allocate, both
// by their own count and by the Go heap's, and that a training step then
// allocates next to nothing.
func TestPeakBytes(t *testing.T) {
	cfg := llama.Config{Dim: 128, HiddenDim: 352, Layers: 3, Heads: 8, KVHeads: 2, Vocab: 1000, SeqLen: 64,
		NormEps: 1e-5, RopeTheta: 10000, QKNorm: true}
	for _, opts := range [][]Option{
		{WithLoRA(LoRAConfig{Rank: 8, Alpha: 16, Dropout: 0.1, Targets: []string{QProj, VProj, DownProj}})},
		{FullFineTune(), WithLogitRows(16)},
		{FullFineTune(), WithLogitRows(16), WithGEMM(), WithLoRA(LoRAConfig{Rank: 4, Alpha: 4, Targets: []string{UpProj}})},
		{WithGEMM(), WithAttentionCache(), WithLoRA(LoRAConfig{Rank: 4, Alpha: 4, Dropout: 0.1, Targets: []string{QProj, UpProj}})},
		{WithGEMM(), WithGate(newSigmoidGate(cfg.Layers, cfg.Dim, 1))},
		{WithGEMM(), WithActivationCache(), WithLoRA(LoRAConfig{Rank: 4, Alpha: 4, Dropout: 0.1, Targets: []string{QProj, DownProj}})},
	} {
		m := randModel(cfg, 1)
		b, tt := 2, 64
		want := PeakBytes(cfg, b, tt, opts...)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		n, err := New(m, b, tt, opts...)
		if err != nil {
			t.Fatal(err)
		}
		opt := optim.NewAdamW(n.Params(), 0)
		runtime.ReadMemStats(&after)
		heap := int64(after.TotalAlloc - before.TotalAlloc)
		if got := n.Bytes() + opt.StateBytes(); got != want {
			t.Fatalf("PeakBytes %d, Net and AdamW hold %d", want, got)
		}
		// Bookkeeping (parameter structs, maps, rope tables) is the only slack.
		if heap < want || heap > want+want/50+64<<10 {
			t.Fatalf("PeakBytes %d, heap grew by %d", want, heap)
		}
		bt := microBatch(0, b, tt, cfg.Vocab)
		// gemm pools its packing buffers (one set per concurrent product) in
		// a sync.Pool, which a collection empties; with the collector off
		// the warm-up fills the pool and the measured step reuses it, so
		// what is left is the Net's own allocation (goroutines and closures)
		// and, since gemm 55df4c0, about 0.5 MB of small accumulators that its
		// matrix-vector path allocates per call (they escape through a kernel
		// function value). The bound stays well below the 3.4 MB the Net
		// holds, by which a buffer allocated per step would be sized.
		defer debug.SetGCPercent(debug.SetGCPercent(-1))
		n.ForwardBackward(bt, 1) // warm up
		runtime.ReadMemStats(&before)
		n.ForwardBackward(bt, 1)
		opt.Step(1e-3)
		runtime.ReadMemStats(&after)
		if step := int64(after.TotalAlloc - before.TotalAlloc); step > 1<<20 {
			t.Fatalf("a training step allocated %d bytes", step)
		}
		t.Logf("PeakBytes %d (%.1f MiB), heap %d", want, float64(want)/(1<<20), heap)
	}
}

// TestAccumulationEqualsBatch checks that two micro-batches of one sequence,
// each weighted 1/2, give the gradient of the two sequences as one batch
// (equal token counts, so the means agree), up to summation order.
func TestAccumulationEqualsBatch(t *testing.T) {
	opts := []Option{FullFineTune(), WithLoRA(LoRAConfig{Rank: 2, Alpha: 2, Targets: []string{UpProj}, Seed: 1})}
	one, err := New(randModel(smallCfg, 3), 1, 8, opts...)
	if err != nil {
		t.Fatal(err)
	}
	two, err := New(randModel(smallCfg, 3), 2, 8, opts...)
	if err != nil {
		t.Fatal(err)
	}
	both := microBatch(0, 2, 8, smallCfg.Vocab)
	half := func(i int) Batch {
		return Batch{Tokens: both.Tokens[i*8 : (i+1)*8], Targets: both.Targets[i*8 : (i+1)*8]}
	}
	for i := range 2 {
		if _, err := one.ForwardBackward(half(i), 0.5); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := two.ForwardBackward(both, 1); err != nil {
		t.Fatal(err)
	}
	gmax := optim.GlobalNorm(two.Params())
	for i, p := range two.Params() {
		q := one.Params()[i]
		for j := range p.Grad {
			if d := math.Abs(float64(p.Grad[j] - q.Grad[j])); d > 1e-6*gmax {
				t.Fatalf("%s[%d]: batch %g, accumulated %g", p.Name, j, p.Grad[j], q.Grad[j])
			}
		}
	}
	tr, err := NewTrainer(one, TrainerConfig{Schedule: optim.Cosine{PeakLR: 1, Total: 1}, Accumulation: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Step([]Batch{half(0)}); err == nil || err.Error() != "train: step got 1 micro-batches, accumulation is 2" {
		t.Fatalf("wrong micro-batch count: %v", err)
	}
}
