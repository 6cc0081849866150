package dynamic

import (
	"math"
	"slices"
	"testing"
)

// The MAC counter on a case small enough to count by hand: d = 48, QDim 64,
// KVDim 32, HiddenDim 80, one sequence of 4 tokens; layer 0 runs
// everything, layer 1's attention runs positions 0, 2, 3 and its MLP
// positions 1, 3.
func TestMACCounts(t *testing.T) {
	lm := testModel(t, "qwen3", 2)
	mask := func(i int, p Part, _, pos int) bool {
		switch {
		case i == 0:
			return true
		case p == Attn:
			return pos != 1
		default:
			return pos == 1 || pos == 3
		}
	}
	const (
		proj     = 48*64 + 2*48*32 + 64*48 // q, k and v, o per token: 9216
		attnKey  = 2 * 64                  // scores and weighted sum per key seen
		denseAtt = 4*proj + attnKey*(1+2+3+4)
		mlp      = 3 * 48 * 80
		head     = 4 * 48 * 61
	)
	tokens := []int32{3, 14, 15, 9}
	for _, c := range []struct {
		m    Method
		attn int64
	}{
		// KVAbsent: the three running tokens see 1, 2 and 3 keys.
		{MoD, 3*proj + attnKey*(1+2+3)},
		// KVFromInput: keys and values of all four, queries and outputs
		// of three, which see 1, 3 and 4 keys.
		{SkipGPT, 4*(2*48*32) + 3*(48*64+64*48) + attnKey*(1+3+4)},
	} {
		dm, err := New(lm, denseRouters(c.m, 2))
		if err != nil {
			t.Fatal(err)
		}
		dm.Mask = mask
		st := dm.Forward(tokens, 1, 4).Stats
		want := [][2]PartStats{
			{{Tokens: 4, Executed: 4, MACs: denseAtt, DenseMACs: denseAtt}, {Tokens: 4, Executed: 4, MACs: 4 * mlp, DenseMACs: 4 * mlp}},
			{{Tokens: 4, Executed: 3, MACs: c.attn, DenseMACs: denseAtt}, {Tokens: 4, Executed: 2, MACs: 2 * mlp, DenseMACs: 4 * mlp}},
		}
		if !slices.Equal(st.Layers, want) || st.HeadMACs != head {
			t.Fatalf("%s: counts %+v head %d, want %+v head %d", c.m, st.Layers, st.HeadMACs, want, head)
		}
		macs, dense := st.Total()
		if wantM := denseAtt + 4*mlp + c.attn + 2*mlp + head; macs != wantM || dense != 2*(denseAtt+4*mlp)+head {
			t.Fatalf("%s: totals %d of %d", c.m, macs, dense)
		}
		if got, want := st.SkippedCompute(), 1-float64(denseAtt+4*mlp+c.attn+2*mlp)/float64(2*(denseAtt+4*mlp)); got != want {
			t.Fatalf("%s: skipped compute %v, want %v", c.m, got, want)
		}
		if r := st.Layers[1][MLP].SkipRatio(); r != 0.5 {
			t.Fatalf("%s: layer 1 MLP skip ratio %v, want 0.5", c.m, r)
		}
	}

	// Routers cost Dim·Out per router and token: SkipGPT's two outputs per
	// part; MoD's predictor and scale router, nothing in its dense first
	// and last layers.
	for _, c := range []struct {
		m    Method
		want [3][2]int64
	}{
		{SkipGPT, [3][2]int64{{4 * 96, 4 * 96}, {4 * 96, 4 * 96}, {4 * 96, 4 * 96}}},
		{MoD, [3][2]int64{{0, 0}, {4 * 96, 4 * 96}, {0, 0}}},
		{DLLM, [3][2]int64{{4 * 96, 0}, {4 * 96, 0}, {4 * 96, 0}}},
	} {
		lm3 := testModel(t, "qwen3", 3)
		dm, err := New(lm3, randomRouters(c.m, 3, 48, 1))
		if err != nil {
			t.Fatal(err)
		}
		st := dm.Forward(tokens, 1, 4).Stats
		for i := range 3 {
			for p := range 2 {
				if got := st.Layers[i][p].RouterMACs; got != c.want[i][p] {
					t.Errorf("%s: layer %d part %d router MACs %d, want %d", c.m, i, p, got, c.want[i][p])
				}
			}
		}
	}
}

// No method's inference reads a later token: changing the tokens from
// position 25 on changes no decision before it, and the logits before it
// only by rounding (how many rows a matrix product or an attention tile
// stacks changes with the later decisions, and with it the order of some
// sums; a read of a later token would move them by orders more).
func TestInferenceIsCausal(t *testing.T) {
	lm := testModel(t, "qwen3", 4)
	const T, cut = 40, 25
	a := tokensFor(T, lm.Config.Vocab, 31)
	b := slices.Clone(a)
	for p := cut; p < T; p++ {
		b[p] = (a[p] + 7) % int32(lm.Config.Vocab)
	}
	vocab := lm.Config.Vocab
	for _, m := range Methods {
		dm, err := New(lm, randomRouters(m, 4, lm.Config.Dim, 5))
		if err != nil {
			t.Fatal(err)
		}
		ra, rb := dm.Forward(a, 1, T), dm.Forward(b, 1, T)
		changed := false
		for i := range ra.Exec {
			for p := range 2 {
				if !slices.Equal(ra.Exec[i][p][:cut], rb.Exec[i][p][:cut]) {
					t.Fatalf("%s: layer %d part %d: decisions before %d change with later tokens", m, i, p, cut)
				}
				changed = changed || !slices.Equal(ra.Exec[i][p][cut:], rb.Exec[i][p][cut:])
			}
		}
		if !changed {
			t.Errorf("%s: the perturbed tokens changed no decision of their own (the test would not notice)", m)
		}
		var worst float64
		for j := range cut * vocab {
			worst = math.Max(worst, math.Abs(float64(ra.Logits[j]-rb.Logits[j])))
		}
		if worst > 1e-5 {
			t.Fatalf("%s: logits before %d change by %.3g with later tokens", m, cut, worst)
		}
	}
}

// A token that skips every part of every layer under KVAbsent leaves no
// trace: the other tokens' logits do not depend on it (bit for bit), and
// no layer's cache holds it. Under KVFromInput its keys and values, from
// its embedding, are still seen by the later tokens and cached everywhere.
func TestKVRules(t *testing.T) {
	lm := testModel(t, "qwen2", 3)
	const T, ghost = 12, 5
	a := tokensFor(T, lm.Config.Vocab, 41)
	b := slices.Clone(a)
	b[ghost] = (a[ghost] + 1) % int32(lm.Config.Vocab)
	mask := func(_ int, _ Part, _, pos int) bool { return pos != ghost }
	vocab := lm.Config.Vocab
	for _, m := range []Method{DLLM, SkipGPT} {
		dm, err := New(lm, denseRouters(m, 3))
		if err != nil {
			t.Fatal(err)
		}
		dm.Mask = mask
		ra, rb := dm.Forward(a, 1, T), dm.Forward(b, 1, T)
		same := slices.Equal(ra.Logits[(ghost+1)*vocab:], rb.Logits[(ghost+1)*vocab:])
		if m.KVRule() == KVAbsent && !same {
			t.Errorf("%s: later logits depend on a token that ran nothing", m)
		}
		if m.KVRule() == KVFromInput && same {
			t.Errorf("%s: later logits ignore the keys and values of a token that skipped attention", m)
		}
		dec := dm.NewDecoder(T)
		for p, tok := range a {
			dec.Step(tok, p)
		}
		for i := range lm.Layers {
			want := T
			if m.KVRule() == KVAbsent {
				want = T - 1
			}
			if got := dec.Entries(i); got != want {
				t.Errorf("%s: layer %d holds %d cache entries, want %d", m, i, got, want)
			}
		}
		// Feeding a position again forgets it and what came after.
		dec.Step(a[3], 3)
		if got := dec.Entries(0); got != 4 {
			t.Errorf("%s: after refeeding position 3 the cache holds %d entries, want 4", m, got)
		}
	}
}
