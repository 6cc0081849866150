package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"testing"

	"github.com/hashicorp/go-hclog"

	"lrmc/executor"
	"lrmc/kernels/synth"
	"lrmc/kernels/train"
	"lrmc/planner"
)

// TestMemoryFits pins the rule that decides optional memory costs: under
// a memory limit, what is in use plus the need must fit beneath it;
// without one, the need must fit in half the available memory; unknown
// memory says no. The live reading reports the runtime's own limit.
func TestMemoryFits(t *testing.T) {
	const none = math.MaxInt64
	for _, c := range []struct {
		m    memoryState
		need int64
		want bool
		why  string
	}{
		{memoryState{Limit: 1000, InUse: 600, Available: 1 << 40}, 400, true, "600 in use + 400 needed fit the memory limit of 1000"},
		{memoryState{Limit: 1000, InUse: 600, Available: 1 << 40}, 401, false, "600 in use + 401 needed exceed the memory limit of 1000"},
		{memoryState{Limit: none, InUse: 600, Available: 1000}, 500, true, "500 needed fit in half of the 1000 bytes available"},
		{memoryState{Limit: none, InUse: 600, Available: 1000}, 501, false, "501 needed exceed half of the 1000 bytes available (set --memory-limit to decide otherwise)"},
		{memoryState{Limit: none}, 1, false, "no memory limit is set and the machine's available memory is unknown"},
	} {
		got, why := c.m.fits(c.need)
		if got != c.want || why != c.why {
			t.Errorf("%+v needing %d: %v %q, want %v %q", c.m, c.need, got, why, c.want, c.why)
		}
	}
	prev := debug.SetMemoryLimit(3 << 30)
	defer debug.SetMemoryLimit(prev)
	if m := currentMemory(); m.Limit != 3<<30 || m.InUse <= 0 {
		t.Errorf("live memory state %+v: want the limit just set (%d) and a positive use", m, 3<<30)
	}
}

// noCheckpoints is a Checkpoints that keeps nothing.
type noCheckpoints struct{}

func (noCheckpoints) Save(int64, []byte) error           { return nil }
func (noCheckpoints) Load() (int64, []byte, bool, error) { return 0, nil, false, nil }

// TestRecoveryActivationCacheBitIdentical runs the recovery op on a small
// model twice, once with memory to spare (every block's activations are
// kept for the backward) and once under a memory limit they do not fit
// (blocks are recomputed): the adapters and the losses are the same bytes,
// and the peak memory the op reports differs by exactly what
// train.WithActivationCache adds, which shows the option was taken in the
// first run only.
func TestRecoveryActivationCacheBitIdentical(t *testing.T) {
	lm, _, err := synth.New(synth.Spec{Arch: "qwen3", Layers: 2, Dim: 64, Heads: 4, KVHeads: 2, HeadDim: 16, FFN: 96, Vocab: 300, SeqLen: 64, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	ids := make([]int32, 600)
	for i := range ids {
		ids[i] = int32(r.IntN(300))
	}
	mask := make([]bool, len(ids))
	for i := range mask {
		mask[i] = i%7 != 0
	}
	p := planner.RecoverParams{Method: "lora", Steps: 3, Batch: 2, SeqLen: 32, Accumulation: 1, LR: 3e-3, Warmup: 0.1, Schedule: "cosine",
		MaxGradNorm: 1, Rank: 4, Alpha: 8, Dropout: 0.1, Targets: []string{"q", "v", "down"}, Loss: "lm", Seed: 1}
	params, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	run := func(mem memoryState) (Recovered, float64) {
		defer func(f func() memoryState) { currentMemory = f }(currentMemory)
		currentMemory = func() memoryState { return mem }
		var peak float64
		c := &executor.Call{
			Node:        &planner.Node{Op: planner.OpRecover, Params: params},
			Inputs:      []any{&Model{LM: lm}, SFTStream{IDs: ids, Mask: mask}},
			Log:         hclog.NewNullLogger(),
			Progress:    func(int64, int64) {},
			Report:      func(_, _ int64, m map[string]float64) { peak = m["peak_mib"] },
			Checkpoints: noCheckpoints{},
		}
		v, err := recoverTrain{}.Run(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		return v.(Recovered), peak
	}
	kept, keptPeak := run(memoryState{Limit: math.MaxInt64, Available: 1 << 40})
	plain, plainPeak := run(memoryState{Limit: 1 << 20, InUse: 1 << 20, Available: 1 << 40})
	if !bytes.Equal(kept.Blob, plain.Blob) || !slices.Equal(kept.Losses, plain.Losses) {
		t.Fatalf("recovery differs with the activation cache: losses %v vs %v", kept.Losses, plain.Losses)
	}
	base := []train.Option{train.WithGEMM(), train.WithLoRA(train.LoRAConfig{Rank: 4, Targets: []string{"q_proj", "v_proj", "down_proj"}})}
	extra := train.PeakBytes(lm.Config, 2, 32, append(base, train.WithActivationCache())...) - train.PeakBytes(lm.Config, 2, 32, base...)
	if d := (keptPeak - plainPeak) * (1 << 20); extra <= 0 || math.Abs(d-float64(extra)) > 1 {
		t.Errorf("reported peaks differ by %.0f bytes, want the %d bytes of kept activations", d, extra)
	}
}
