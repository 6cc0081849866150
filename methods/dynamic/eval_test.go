package dynamic_test

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"

	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/internal/shareddata"
	kdyn "lrmc/kernels/dynamic"
	"lrmc/kernels/geneval"
	"lrmc/kernels/llama"
	"lrmc/kernels/llama2c"
	"lrmc/kernels/mceval"
	"lrmc/methods/internal/optest"
	"lrmc/planner"
)

// mlpSkipper returns SkipGPT routers for lm whose attention always runs
// and whose MLP is skipped by every token in blocks [from, to), run
// elsewhere: the logits [skip, execute] are the biases alone.
func mlpSkipper(lm *llama.Model, from, to int) *kdyn.Routers {
	rs := &kdyn.Routers{Method: kdyn.SkipGPT, Skip: 0.3, Layers: make([]kdyn.Layer, lm.Config.Layers)}
	for i := range rs.Layers {
		a, m := kdyn.NewRouter(lm.Config.Dim, 2), kdyn.NewRouter(lm.Config.Dim, 2)
		a.B[1], m.B[1] = 1, 1
		if i >= from && i < to {
			m.B[0], m.B[1] = 1, 0
		}
		rs.Layers[i].Attn, rs.Layers[i].MLP = a, m
	}
	return rs
}

func stories(t *testing.T) (*llama.Model, ops.Tokens) {
	t.Helper()
	lm, err := llama2c.Load(shareddata.Path(t, "models", "stories260K", "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	// Eight windows of 64 tokens cut from a seeded walk over the
	// vocabulary (perplexity needs no text to be compared with itself).
	w := ops.Tokens{Rows: 8, Cols: 64}
	x := uint32(7)
	for range w.Rows * w.Cols {
		x = x*1664525 + 1013904223
		w.IDs = append(w.IDs, int32(x>>8)%int32(lm.Config.Vocab))
	}
	return lm, w
}

// Perplexity of a routed model runs the compute-skipping forward pass: with
// every token skipping the MLP of blocks 1…3 it equals, bit for bit, the
// dense perplexity of the model whose down projections there are zero
// (the MLP adds exactly nothing), and the result reports the realised skip
// ratios (0.3 of the ten routed parts; per layer 1 or 0) and the MACs
// saved (the three MLPs' share of the blocks, counted from the shapes).
func TestRoutedPerplexity(t *testing.T) {
	lm, w := stories(t)
	v, err := optest.Run(t, planner.OpPerplexity, planner.PerplexityParams{SeqLen: w.Cols}, &ops.Model{LM: lm, Routers: mlpSkipper(lm, 1, 4)}, w)
	if err != nil {
		t.Fatal(err)
	}
	got := v.(ops.EvalResult)
	zeroed := lm.Clone()
	for i := 1; i < 4; i++ {
		clear(zeroed.Layers[i].W2)
	}
	ref, err := optest.Run(t, planner.OpPerplexity, planner.PerplexityParams{SeqLen: w.Cols}, &ops.Model{LM: zeroed}, w)
	if err != nil {
		t.Fatal(err)
	}
	if want := ref.(ops.EvalResult).Perplexity; got.Perplexity != want {
		t.Errorf("routed perplexity %v, dense with the skipped MLPs zeroed %v", got.Perplexity, want)
	}
	d := got.Dynamic
	if d == nil || d.Method != "skipgpt" || d.Ratio != 0.3 || math.Abs(d.Skip-0.3) > 1e-15 || len(d.Layers) != 5 {
		t.Fatalf("dynamic summary: %+v", d)
	}
	for i, l := range d.Layers {
		want := 0.0
		if i >= 1 && i < 4 {
			want = 1
		}
		if l.Attn != 0 || l.MLP != want {
			t.Errorf("layer %d realised skip %+v, want attention 0 and MLP %v", i, l, want)
		}
	}
	// Per token, a block's attention costs q, k, v, o projections and
	// 2·QDim per key seen (T(T+1)/2 keys over a window), its MLP 3·d·h;
	// routers cost 2·2·d per token and part.
	c := lm.Config
	tokens := int64(w.Rows * w.Cols)
	d64, q, kv, h := int64(c.Dim), int64(c.QDim()), int64(c.KVDim()), int64(c.HiddenDim)
	keys := int64(w.Rows) * int64(w.Cols*(w.Cols+1)/2)
	attn := tokens*(2*d64*q+2*d64*kv) + keys*2*q
	mlp := tokens * 3 * d64 * h
	routersMACs := int64(c.Layers) * 2 * tokens * 2 * d64
	blocks := int64(c.Layers) * (attn + mlp)
	want := 1 - float64(blocks-3*mlp+routersMACs)/float64(blocks)
	if math.Abs(d.SkippedCompute-want) > 1e-12 {
		t.Errorf("skipped compute %v, counted from the shapes %v", d.SkippedCompute, want)
	}
	if !(d.FLOPSaving > 0 && d.FLOPSaving < d.SkippedCompute) || d.DenseMACs <= d.MACs {
		t.Errorf("whole-pass saving %v (MACs %d of %d): want positive, below the blocks' %v (the classifier runs dense)", d.FLOPSaving, d.MACs, d.DenseMACs, d.SkippedCompute)
	}
}

// Speed of a routed model measures its compute-skipping prefill and decode
// against its dense base on its calibration text, and reports what the
// routers skipped while timed: exactly the three MLPs here.
func TestRoutedSpeed(t *testing.T) {
	lm, w := stories(t)
	m := &ops.Model{LM: lm, Routers: mlpSkipper(lm, 1, 4), Text: w.IDs}
	v, err := optest.Run(t, planner.OpSpeed, planner.SpeedParams{Prefill: 64, Decode: 16, Reps: 1, Threads: 1}, m)
	if err != nil {
		t.Fatal(err)
	}
	s := v.(ops.Speed)
	d := s.Dynamic
	if d == nil || !d.Text || math.Abs(d.PrefillSkip-0.3) > 1e-15 || math.Abs(d.DecodeSkip-0.3) > 1e-15 || !(d.PrefillSkippedCompute > 0) {
		t.Fatalf("routed speed: %+v", d)
	}
	if !(s.PrefillTokensPerS > 0 && s.DecodeTokensPerS > 0 && d.DensePrefillTokensPerS > 0 && d.PrefillSpeedup > 0 && d.DecodeSpeedup > 0) ||
		s.PrefillTokens != 64 || s.DecodeTokens != 16 || s.Threads != 1 {
		t.Errorf("speed: %+v", s)
	}
	// Too little text for the asked lengths: random tokens, said so.
	m.Text = w.IDs[:10]
	v, err = optest.Run(t, planner.OpSpeed, planner.SpeedParams{Prefill: 64, Decode: 16, Reps: 1, Threads: 1}, m)
	if err != nil {
		t.Fatal(err)
	}
	if v.(ops.Speed).Dynamic.Text {
		t.Error("speed claims text it did not have")
	}
}

// Recovery refuses a routed model by name instead of training its
// weights without the routers.
func TestRecoveryRefusesRouters(t *testing.T) {
	lm, _ := stories(t)
	m := &ops.Model{LM: lm, Routers: mlpSkipper(lm, 1, 4)}
	_, err := optest.Run(t, planner.OpRecover, planner.RecoverParams{Method: "lora"}, m)
	if err == nil || !strings.Contains(err.Error(), "input 0 is a model with skipgpt routers, which dynamic pruning trains with its own stage-2 LoRA") {
		t.Errorf("recovery of a routed model: %v", err)
	}
}

// Multiple-choice scoring of a routed model runs the routed forward pass,
// one continuation at a time: with every router executing, the
// log-likelihoods are the dense model's scored alone (mceval.ScoreAlone)
// bit for bit; with blocks 1…3's MLPs skipped, those of the model with
// their down projections zeroed.
func TestRoutedMultipleChoice(t *testing.T) {
	lm, w := stories(t)
	items := []ops.MCItem{
		{Doc: 0, Context: "a", Choices: []string{"x", "y"}, ContextTokens: w.IDs[:20], ChoiceTokens: [][]int32{w.IDs[20:23], w.IDs[30:31]}},
		{Doc: 1, Context: "b", Choices: []string{"x", "y", "z"}, ContextTokens: w.IDs[40:45], ChoiceTokens: [][]int32{w.IDs[50:54], w.IDs[60:62], w.IDs[70:71]}},
	}
	zeroed := lm.Clone()
	for i := 1; i < 4; i++ {
		clear(zeroed.Layers[i].W2)
	}
	for _, tc := range []struct {
		name string
		rs   *kdyn.Routers
		ref  *llama.Model
	}{{"every router executes", mlpSkipper(lm, 0, 0), lm}, {"MLPs 1…3 skipped", mlpSkipper(lm, 1, 4), zeroed}} {
		v, err := optest.Run(t, planner.OpMCScore, struct{}{}, &ops.Model{LM: lm, Routers: tc.rs}, items)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range v.([]ops.MCSample) {
			for j, ll := range s.LogLikelihoods {
				if want := mceval.ScoreAlone(tc.ref, items[i].ContextTokens, items[i].ChoiceTokens[j]); ll != want {
					t.Errorf("%s: item %d choice %d: log-likelihood %v, want %v", tc.name, i, j, ll, want)
				}
			}
		}
	}
}

// Generation evaluation of a routed model decodes with the
// compute-skipping decoder: skipping blocks 1…3's MLPs it generates what
// the model with those down projections zeroed generates densely, and not
// what the model itself does.
func TestRoutedGeneration(t *testing.T) {
	lm, _ := stories(t)
	tok := shareddata.Path(t, "models", "stories260K", "tok512.bin")
	items := []geneval.Item{{Doc: 0, Prompt: "Once upon a time", Target: "x"}, {Doc: 1, Prompt: "The cat", Target: "y"}}
	p := planner.GenerateParams{Task: "t", TokenizerFormat: "llama2c", N: 1, MaxNewTokens: 24}
	gen := func(m *ops.Model) []string {
		pj, _ := json.Marshal(p)
		c := &executor.Call{Node: &planner.Node{Op: planner.OpGenerate, Params: pj}, Inputs: []any{m, items, tok},
			Progress: func(int64, int64) {}, Report: func(int64, int64, map[string]float64) {}, Checkpoints: noCheckpoints{}}
		v, err := ops.Registry()[planner.OpGenerate].Run(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, g := range v.([]ops.Generation) {
			out = append(out, g.Samples[0].Text)
		}
		return out
	}
	zeroed := lm.Clone()
	for i := 1; i < 4; i++ {
		clear(zeroed.Layers[i].W2)
	}
	routed, ref, dense := gen(&ops.Model{LM: lm, Routers: mlpSkipper(lm, 1, 4)}), gen(&ops.Model{LM: zeroed}), gen(&ops.Model{LM: lm})
	if !slices.Equal(routed, ref) || slices.Equal(routed, dense) {
		t.Errorf("routed generation %q\nwant %q (zeroed MLPs), not %q (dense)", routed, ref, dense)
	}
}

// noCheckpoints is a store without checkpoints.
type noCheckpoints struct{}

func (noCheckpoints) Save(int64, []byte) error           { return nil }
func (noCheckpoints) Load() (int64, []byte, bool, error) { return 0, nil, false, nil }
