package shortgpt_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"lrmc/executor/ops"
	"lrmc/kernels/synth"
	"lrmc/methods/depth/shortgpt"
	"lrmc/methods/internal/optest"
)

// bi64 is block influence in float64: 1 − the mean over rows of the
// cosine similarity of in and out, out first RMS-normed with weight g when
// g is given (eps as the model's).
func bi64(in, out []float32, dim int, g []float32, eps float64) float64 {
	var sum float64
	rows := len(in) / dim
	for r := range rows {
		x, y := in[r*dim:(r+1)*dim], out[r*dim:(r+1)*dim]
		yy := make([]float64, dim)
		var ms float64
		for j := range dim {
			yy[j] = float64(y[j])
			ms += yy[j] * yy[j]
		}
		if g != nil {
			inv := 1 / math.Sqrt(ms/float64(dim)+eps)
			for j := range dim {
				yy[j] *= inv * float64(g[j])
			}
		}
		var dot, nx, ny float64
		for j := range dim {
			dot += float64(x[j]) * yy[j]
			nx += float64(x[j]) * float64(x[j])
			ny += yy[j] * yy[j]
		}
		sum += dot / math.Sqrt(nx*ny)
	}
	return 1 - sum/float64(rows)
}

// With finalNorm the last block is scored against its output after the
// model's final RMSNorm (the reference code's HF hidden_states[-1]);
// without it, against its own output.
func TestFinalNorm(t *testing.T) {
	m, _, err := synth.New(synth.Spec{Arch: "llama", Layers: 3, Dim: 16, Heads: 2, KVHeads: 2, FFN: 24, Vocab: 30, SeqLen: 8, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for i := range m.FinalNorm {
		m.FinalNorm[i] = 0.25 + 2*r.Float32()
	}
	ids := make([]int32, 2*8)
	for i := range ids {
		ids[i] = int32(r.IntN(30))
	}
	h := m.Embed(ids, nil)
	for i := range 2 {
		h = m.Block(i, h, 2, 8)
	}
	out := m.Block(2, h, 2, 8)
	in, o := ops.Hidden{Data: h, Rows: 16, Dim: 16}, ops.Hidden{Data: out, Rows: 16, Dim: 16}

	plain, err := optest.Run(t, shortgpt.OpBI, shortgpt.BIParams{Layer: 2, Dim: 16}, in, o)
	if err != nil {
		t.Fatal(err)
	}
	normed, err := optest.Run(t, shortgpt.OpBI, shortgpt.BIParams{Layer: 2, Dim: 16, FinalNorm: true}, in, o, &ops.Model{LM: m})
	if err != nil {
		t.Fatal(err)
	}
	eps := float64(m.Config.NormEps)
	for _, c := range []struct {
		what string
		got  float64
		want float64
	}{
		{"own output", plain.(shortgpt.BlockScore).Influence, bi64(h, out, 16, nil, eps)},
		{"final-normed output", normed.(shortgpt.BlockScore).Influence, bi64(h, out, 16, m.FinalNorm, eps)},
	} {
		if math.Abs(c.got-c.want) > 1e-5 {
			t.Errorf("last block against its %s: %.8g, float64 reference %.8g", c.what, c.got, c.want)
		}
	}
	if plain.(shortgpt.BlockScore).Influence == normed.(shortgpt.BlockScore).Influence {
		t.Error("the final norm changed nothing: the test does not tell the two apart")
	}
}
