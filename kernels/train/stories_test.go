package train

import (
	"lrmc/internal/stories"
	"math"
	"testing"

	"lrmc/kernels/llama"
	"lrmc/kernels/train/optim"
)

// storiesBatch loads stories260K and cuts b sequences of t tokens from the
// start of the TinyStories validation text.
func storiesBatch(t testing.TB, b, tt int) (*llama.Model, Batch) {
	t.Helper()
	m, ids := stories.Load(t, 20000, b*tt)
	tokens := ids[:b*tt]
	return m, Batch{Tokens: tokens, Targets: NextTokenTargets(tokens, nil, b, tt)}
}

// TestStoriesLoRA fine-tunes stories260K with LoRA on real text: the loss
// starts where a 260K-parameter TinyStories model sits (≈1.3–2 nats; Karpathy
// reports 1.297 validation loss at its full context) and falls as the
// adapters fit the batch.
func TestStoriesLoRA(t *testing.T) {
	m, bt := storiesBatch(t, 4, 64)
	n, err := New(m, 4, 64, WithGEMM(), WithLoRA(LoRAConfig{Rank: 8, Alpha: 16, Dropout: 0.05,
		Targets: []string{QProj, KProj, VProj, OProj, GateProj, UpProj, DownProj}, Seed: 1}))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTrainer(n, TrainerConfig{Schedule: optim.Cosine{PeakLR: 1e-2, Total: 12, WarmupRatio: 0.1}, MaxGradNorm: 1})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := n.Loss(bt)
	if first.CE < 0.8 || first.CE > 2.5 {
		t.Fatalf("stories260K loss on TinyStories %.4f nats, outside [0.8, 2.5]", first.CE)
	}
	for range 12 {
		if _, err := tr.Step([]Batch{bt}); err != nil {
			t.Fatal(err)
		}
	}
	last, _ := n.Loss(bt)
	t.Logf("stories260K LoRA r=8 on 256 tokens: loss %.4f → %.4f in 12 steps", first.CE, last.CE)
	if !(last.CE < first.CE-0.1) {
		t.Fatalf("loss %.4f → %.4f", first.CE, last.CE)
	}
}

// TestStoriesSelfDistillation distills stories260K from its own logits. With
// the full teacher the KL is zero up to rounding. With a top-k teacher the
// renormalized p̃ differs from the student's q exactly by the mass outside
// the top k: KL(p̃ ‖ q) = −log Σ_topk q, which measures the approximation.
func TestStoriesSelfDistillation(t *testing.T) {
	const b, tt, temp = 2, 64, 2
	m, bt := storiesBatch(t, b, tt)
	logits := m.Forward(bt.Tokens, b, tt)
	obj := WithObjective(Objective{KL: 1, Temperature: temp})
	n, err := New(m, b, tt, obj)
	if err != nil {
		t.Fatal(err)
	}
	bt.Teacher = &TeacherLogits{Logits: logits}
	full, err := n.Loss(bt)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(full.KL) > 1e-6 {
		t.Fatalf("self-distillation KL %g, want 0", full.KL)
	}
	vocab := m.Config.Vocab
	for _, k := range []int{8, 64} {
		bt.Teacher = TopK(logits, b*tt, vocab, k)
		got, err := n.Loss(bt)
		if err != nil {
			t.Fatal(err)
		}
		var want float64
		for r, tg := range bt.Targets {
			if tg < 0 {
				continue
			}
			z := logits[r*vocab : (r+1)*vocab]
			mx, lse := scaledLSE(z, temp)
			var mass float64
			for _, id := range bt.Teacher.Index[r*k : (r+1)*k] {
				mass += math.Exp(float64(z[id]/temp-mx) - lse)
			}
			want -= math.Log(mass)
		}
		want = want / float64(got.Tokens) * temp * temp
		if math.Abs(got.KL-want) > 1e-5*want+1e-7 {
			t.Fatalf("top-%d self KL %.8g, −T²·mean log(top-k mass) %.8g", k, got.KL, want)
		}
		t.Logf("top-%d of %d at T=%d: self-KL (the dropped tail's cost) %.4g", k, vocab, temp, got.KL)
	}
}
