package slicegpt

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"testing"


	"lrmc/internal/shareddata"
	"lrmc/kernels/llama"
	"lrmc/kernels/llama2c"
	"lrmc/kernels/synth"
)

// stories loads stories260K and its tokenizer's encoding of the TinyStories
// validation text: the first `calib` tokens for calibration, the next
// `eval` tokens held out.
func stories(t testing.TB, calib, eval int) (*llama.Model, []int32, []int32) {
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
	ids := tok.Encode(string(text[:min(len(text), 6*(calib+eval))]), true, false)
	if len(ids) < calib+eval {
		t.Fatalf("only %d tokens", len(ids))
	}
	return m, ids[:calib], ids[calib : calib+eval]
}

// qwen3 is a small synthetic Qwen3-shaped model (per-head q/k norms, heads
// wider than dim/heads, grouped kv heads, tied embedding) whose norm scales
// are drawn away from 1, so that folding them is exercised, and whose
// weights are larger than synth's N(0, 0.02²) so that the blocks do more
// than pass the residual through.
func qwen3(t testing.TB) *llama.Model {
	t.Helper()
	m, _, err := synth.New(synth.Spec{Arch: "qwen3", Layers: 3, Dim: 64, Heads: 4, KVHeads: 2, HeadDim: 32,
		FFN: 96, Vocab: 128, SeqLen: 256, Tie: true, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	scale := func(v []float32, lo, hi float64) {
		for i := range v {
			v[i] = float32(lo + (hi-lo)*r.Float64())
		}
	}
	grow := func(v []float32, f float32) {
		for i := range v {
			v[i] *= f
		}
	}
	grow(m.Embedding, 25)
	for i := range m.Layers {
		l := &m.Layers[i]
		scale(l.AttnNorm, 0.3, 2)
		scale(l.FFNNorm, 0.3, 2)
		scale(l.QNorm, 0.5, 1.5)
		scale(l.KNorm, 0.5, 1.5)
		for _, w := range [][]float32{l.Wq, l.Wk, l.Wv, l.Wo, l.W1, l.W2, l.W3} {
			grow(w, 4)
		}
	}
	scale(m.FinalNorm, 0.3, 2)
	return m
}

func maxAbsDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// TestUnslicedEqualsDense: with s = 0 (every coordinate kept) folding,
// rotating by the PCA bases and the shortcut matrices change nothing but
// rounding, so the sliced model's logits equal the dense model's.
func TestUnslicedEqualsDense(t *testing.T) {
	cases := []struct {
		name string
		m    func(testing.TB) *llama.Model
	}{
		{"stories260K", func(t testing.TB) *llama.Model { m, _, _ := stories(t, 0, 0); return m }},
		{"qwen3-synthetic", qwen3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.m(t)
			const seq = 32
			r := rand.New(rand.NewPCG(1, 2))
			calib := make([]int32, 8*seq)
			for i := range calib {
				calib[i] = int32(r.IntN(m.Config.Vocab))
			}
			sm, st, err := Slice(context.Background(), m, calib, seq, nil, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if sm.Width != m.Config.Dim || st.Embedding < 1-1e-12 {
				t.Fatalf("width %d, kept %g", sm.Width, st.Embedding)
			}
			eval := calib[:2*seq]
			want := m.Forward(eval, 2, seq)
			got := sm.Forward(eval, 2, seq)
			var scale float64
			for _, v := range want {
				scale = max(scale, math.Abs(float64(v)))
			}
			diff := maxAbsDiff(got, want)
			t.Logf("max |Δlogit| %.3g (logits up to %.3g)", diff, scale)
			if diff > 1e-4 {
				t.Fatalf("s=0 logits differ from the dense model's by %g > 1e-4", diff)
			}
		})
	}
}
