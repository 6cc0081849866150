package dynamic

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"lrmc/kernels/llama"
	"lrmc/kernels/synth"
)

// testModel is a small synthetic model of arch whose matrices are rescaled
// to unit-variance outputs (synth's N(0, 0.02²) leaves the blocks' outputs
// negligible next to the residual stream, which would hide a wrong gather).
func testModel(t *testing.T, arch string, layers int) *llama.Model {
	t.Helper()
	m, _, err := synth.New(synth.Spec{Arch: arch, Layers: layers, Dim: 48, Heads: 4, KVHeads: 2, HeadDim: 16, FFN: 80,
		Vocab: 61, SeqLen: 512, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range m.WeightRefs() {
		if len(w.Shape) == 2 && w.Part != llama.PartEmbedding {
			s := float32(1 / (0.02 * math.Sqrt(float64(w.Shape[1]))))
			for i := range *w.Data {
				(*w.Data)[i] *= s
			}
		}
	}
	return m
}

// randomRouters are routers of method m with seeded weights of scale
// 1/√dim and biases chosen so that about half the tokens execute; MoD's
// first and last layers stay dense.
func randomRouters(m Method, layers, dim int, seed uint64) *Routers {
	r := rand.New(rand.NewPCG(seed, 3))
	rs := &Routers{Method: m, Skip: 0.4, Layers: make([]Layer, layers)}
	fill := func(out int, bias ...float32) *Router {
		x := NewRouter(dim, out)
		for i := range x.W {
			x.W[i] = float32(r.NormFloat64() / math.Sqrt(float64(dim)))
		}
		copy(x.B, bias)
		return x
	}
	for i := range layers {
		l := &rs.Layers[i]
		switch m {
		case MoD:
			if i == 0 || i == layers-1 {
				continue
			}
			l.Attn, l.MLP = fill(1, 1), fill(1, 1)
			l.AttnPred, l.MLPPred = fill(1, 0.1), fill(1, -0.1)
		case DLLM:
			l.Block = fill(2, 0, 0.2)
		case SkipGPT:
			l.Attn, l.MLP = fill(2, 0, 0.1), fill(2, 0.1, 0)
		}
	}
	return rs
}

func tokensFor(n, vocab int, seed uint64) []int32 {
	r := rand.New(rand.NewPCG(seed, 1))
	ts := make([]int32, n)
	for i := range ts {
		ts[i] = int32(r.IntN(vocab))
	}
	return ts
}

func all(int, Part, int, int) bool { return true }

// dense routers: the method's structure, no router (every part runs).
func denseRouters(m Method, layers int) *Routers {
	return &Routers{Method: m, Layers: make([]Layer, layers)}
}

func TestForcedExecuteIsDenseBitForBit(t *testing.T) {
	// One sequence (attention.Causal over the kept rows) and two
	// (attention.Spans), past one key tile of the attention.
	for _, c := range []struct {
		arch string
		b    int
	}{{"qwen3", 2}, {"qwen2", 1}} {
		arch, b := c.arch, c.b
		lm := testModel(t, arch, 3)
		const T = 150
		tokens := tokensFor(b*T, lm.Config.Vocab, 1)
		want := lm.Forward(tokens, b, T)
		for _, m := range Methods {
			dm, err := New(lm, randomRouters(m, 3, lm.Config.Dim, 2))
			if err != nil {
				t.Fatal(err)
			}
			dm.Mask = all
			res := dm.Forward(tokens, b, T)
			for i := range want {
				if res.Logits[i] != want[i] {
					t.Fatalf("%s %s: logit %d is %v, dense %v", arch, m, i, res.Logits[i], want[i])
				}
			}
			if got := res.Stats.SkippedCompute(); got != 0 {
				t.Errorf("%s %s: forced execute skipped %v of the compute", arch, m, got)
			}
			macs, dense := res.Stats.Total()
			if macs != dense {
				t.Errorf("%s %s: forced execute counts %d MACs, dense %d", arch, m, macs, dense)
			}
		}
	}
}

func TestForcedExecuteDecoderIsDenseDecoderBitForBit(t *testing.T) {
	lm := testModel(t, "qwen3", 3)
	const T = 40
	tokens := tokensFor(T, lm.Config.Vocab, 4)
	for _, m := range Methods {
		dm, err := New(lm, randomRouters(m, 3, lm.Config.Dim, 2))
		if err != nil {
			t.Fatal(err)
		}
		dm.Mask = all
		ref := llama.NewDecoder(lm, T)
		dec := dm.NewDecoder(T)
		for p, tok := range tokens {
			want := ref.Step(tok, p)
			got := dec.Step(tok, p)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s: position %d logit %d is %v, dense decoder %v", m, p, i, got[i], want[i])
				}
			}
		}
	}
}

// ForwardLast's logits are Forward's at each sequence's last position, and
// its classifier count is for those rows only.
func TestForwardLast(t *testing.T) {
	lm := testModel(t, "qwen3", 3)
	const b, T = 3, 9
	tokens := tokensFor(b*T, lm.Config.Vocab, 2)
	dm, err := New(lm, randomRouters(SkipGPT, 3, lm.Config.Dim, 4))
	if err != nil {
		t.Fatal(err)
	}
	full, last := dm.Forward(tokens, b, T), dm.ForwardLast(tokens, b, T)
	v := lm.Config.Vocab
	for s := range b {
		for j := range v {
			if got, want := last.Logits[s*v+j], full.Logits[((s+1)*T-1)*v+j]; math.Abs(float64(got-want)) > 1e-6 {
				t.Fatalf("sequence %d logit %d: %v, Forward's %v", s, j, got, want)
			}
		}
	}
	if want := int64(b * lm.Config.Dim * v); last.Stats.HeadMACs != want || full.Stats.HeadMACs != T*want {
		t.Errorf("classifier MACs %d and %d, want %d and %d", last.Stats.HeadMACs, full.Stats.HeadMACs, want, T*want)
	}
	if _, err := New(lm, randomRouters(SkipGPT, 2, lm.Config.Dim, 4)); err == nil || err.Error() != "dynamic: 2 layers of routers for a model of 3 layers" {
		t.Errorf("routers of the wrong depth: %v", err)
	}
}

// The routed pass gives the same bits on one thread as on several.
func TestForwardThreadIndependent(t *testing.T) {
	lm := testModel(t, "qwen3", 3)
	const b, T = 2, 70
	tokens := tokensFor(b*T, lm.Config.Vocab, 12)
	for _, m := range Methods {
		dm, err := New(lm, randomRouters(m, 3, lm.Config.Dim, 6))
		if err != nil {
			t.Fatal(err)
		}
		prev := runtime.GOMAXPROCS(4)
		many := dm.Forward(tokens, b, T)
		runtime.GOMAXPROCS(1)
		one := dm.Forward(tokens, b, T)
		runtime.GOMAXPROCS(prev)
		if !slices.Equal(many.Logits, one.Logits) {
			t.Errorf("%s: one thread gives other logits than four", m)
		}
	}
}
