package dynamic

import (
	"math"
	"testing"
)

// Prefilling a prompt and decoding the rest gives, at every position, the
// logits of one long prefill of the whole sequence (to float32 rounding),
// with the same decisions and the same MAC counts, for routers and for a
// fixed mask of every method.
func TestPrefillThenDecodeEqualsLongPrefill(t *testing.T) {
	lm := testModel(t, "qwen3", 4)
	const T, P = 48, 20
	tokens := tokensFor(T, lm.Config.Vocab, 21)
	vocab := lm.Config.Vocab
	for _, m := range Methods {
		for _, masked := range []bool{false, true} {
			dm, err := New(lm, randomRouters(m, 4, lm.Config.Dim, 8))
			if err != nil {
				t.Fatal(err)
			}
			if masked {
				dm.Mask = fixedMask(3)
			}
			long := dm.Forward(tokens, 1, T)
			dec := dm.NewDecoder(T)
			check := func(p int, got []float32) {
				var worst float64
				for j := range vocab {
					worst = math.Max(worst, math.Abs(float64(got[j]-long.Logits[p*vocab+j])))
				}
				if worst > 1e-5 {
					t.Fatalf("%s masked=%v: position %d logits differ from the long prefill's by %.3g", m, masked, p, worst)
				}
				for i, e := range dec.Exec {
					if e[Attn] != long.Exec[i][Attn][p] || e[MLP] != long.Exec[i][MLP][p] {
						t.Fatalf("%s masked=%v: position %d layer %d decisions %v, long prefill's %v %v", m, masked, p, i, e, long.Exec[i][Attn][p], long.Exec[i][MLP][p])
					}
				}
			}
			check(P-1, dec.Prefill(tokens[:P]))
			for p := P; p < T; p++ {
				check(p, dec.Step(tokens[p], p))
			}
			got, want := dec.Stats(), &long.Stats
			for i := range want.Layers {
				for pt := range 2 {
					if g, w := got.Layers[i][pt], want.Layers[i][pt]; g.Tokens != w.Tokens || g.Executed != w.Executed || g.MACs != w.MACs || g.DenseMACs != w.DenseMACs || g.RouterMACs != w.RouterMACs {
						t.Fatalf("%s masked=%v: layer %d part %d decoder counts %+v, long prefill %+v", m, masked, i, pt, g, w)
					}
				}
			}
			// The caches hold what the KV rule leaves: under KVAbsent one
			// entry per token that ran the layer's attention.
			for i := range lm.Layers {
				want := T
				if m.KVRule() == KVAbsent {
					want = int(long.Stats.Layers[i][Attn].Executed)
				}
				if got := dec.Entries(i); got != want {
					t.Errorf("%s masked=%v: layer %d cache holds %d entries, want %d", m, masked, i, got, want)
				}
			}
			t.Logf("%s masked=%v: skipped %.3f of the blocks' compute", m, masked, got.SkippedCompute())
		}
	}
}
