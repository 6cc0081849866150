package llama

import (
	"strings"
	"testing"
)

// SetWidths normalizes: equal widths make a uniform config (with the head
// size made explicit once the heads change), differing ones keep Widths
// with their maxima, and Validate holds a config to those rules.
func TestSetWidthsAndValidate(t *testing.T) {
	c := Config{Dim: 32, HiddenDim: 40, Layers: 3, Heads: 4, KVHeads: 2, Vocab: 50, SeqLen: 16, NormEps: 1e-5, RopeTheta: 1e4}
	u := c.SetWidths([]LayerWidth{{2, 1, 30}, {2, 1, 30}, {2, 1, 30}})
	if !u.Uniform() || u.Heads != 2 || u.KVHeads != 1 || u.HiddenDim != 30 || u.HeadDim() != 8 || u.HeadSize != 8 {
		t.Fatalf("uniform widths: %+v (head dim %d)", u, u.HeadDim())
	}
	if err := u.Validate(); err != nil {
		t.Fatal(err)
	}
	ffnOnly := c.SetWidths([]LayerWidth{{4, 2, 30}, {4, 2, 30}, {4, 2, 30}})
	if ffnOnly.HeadSize != 0 || ffnOnly.HiddenDim != 30 {
		t.Fatalf("MLP-only pruning made the head size explicit: %+v", ffnOnly)
	}
	n := c.SetWidths([]LayerWidth{{2, 1, 30}, {4, 2, 12}, {2, 2, 40}})
	if n.Uniform() || n.Heads != 4 || n.KVHeads != 2 || n.HiddenDim != 40 || n.HeadSize != 8 {
		t.Fatalf("per-layer widths: %+v", n)
	}
	if err := n.Validate(); err != nil {
		t.Fatal(err)
	}
	if w := n.Layer(1); w.Heads != 4 || w.QDim() != 32 || w.KVDim() != 16 || w.HiddenDim != 12 || w.Widths != nil {
		t.Fatalf("Layer(1) = %+v", w)
	}
	// Params: embedding + final norm + per-block sums (no classifier share).
	want := int64(50*32+32+50*32) + 0
	for i := range 3 {
		w := n.Widths[i]
		q, kv, h := int64(w.Heads*8), int64(w.KVHeads*8), int64(w.HiddenDim)
		want += 2*32 + 2*q*32 + 2*kv*32 + 3*h*32
	}
	if got := n.Params(); got != want {
		t.Fatalf("Params = %d, want %d", got, want)
	}
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Widths = c.Widths[:2] }, "widths has 2 entries for 3 layers"},
		{func(c *Config) { c.HeadSize = 0 }, "per-layer widths need an explicit head_size"},
		{func(c *Config) { c.Heads = 8 }, "are not the largest per-layer widths 4, 2, 40"},
		{func(c *Config) { c.Widths = []LayerWidth{{2, 1, 30}, {3, 2, 12}, {4, 2, 40}} }, "layer 1: heads 3 is not a multiple of kv_heads 2"},
		{func(c *Config) { c.Widths = []LayerWidth{{2, 1, 30}, {4, 2, 0}, {4, 2, 40}} }, "layer 1 has 4 heads, 2 kv heads, hidden dim 0"},
	} {
		bad := n
		bad.Widths = append([]LayerWidth(nil), n.Widths...)
		tc.mod(&bad)
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate = %v, want %q", err, tc.want)
		}
	}
}

// Keep on a model whose blocks differ keeps each kept block's widths, and
// becomes uniform when the kept blocks agree.
func TestKeepWidths(t *testing.T) {
	c := variants["widths-llama2c"]
	m := randModel(c, 3)
	k, err := m.Keep([]int{0, 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Validate(); err != nil {
		t.Fatal(err)
	}
	if k.Config.Width(1) != c.Widths[2] || k.Config.HiddenDim != 40 || k.Config.Heads != 3 {
		t.Fatalf("kept config %+v", k.Config)
	}
	one, err := m.Keep([]int{1})
	if err != nil {
		t.Fatal(err)
	}
	if !one.Config.Uniform() || one.Config.Heads != 4 || one.Config.HiddenDim != 17 || one.Validate() != nil {
		t.Fatalf("one kept block: %+v, %v", one.Config, one.Validate())
	}
}

// A model whose blocks differ stores 16-bit like any other: WithDType
// validates, and computes bit for bit what the float32 model holding the
// widened weights computes, through the prefill and the decoder.
func TestWidthsHalf(t *testing.T) {
	m := randModel(variants["widths-qwen3"], 5)
	h, err := m.WithDType(BFloat16)
	if err != nil {
		t.Fatal(err)
	}
	f := h.Float32()
	toks := randTokens(7, m.Config.Vocab, 6)
	a, b := h.Forward(toks, 1, 7), f.Forward(toks, 1, 7)
	da, db := NewDecoder(h, 7), NewDecoder(f, 7)
	for p, tok := range toks {
		sa, sb := da.Step(tok, p), db.Step(tok, p)
		for i := range sa {
			if sa[i] != sb[i] {
				t.Fatalf("decoder position %d logit %d: bfloat16 %g, widened %g", p, i, sa[i], sb[i])
			}
		}
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("logit %d: bfloat16 %g, widened %g", i, a[i], b[i])
		}
	}
}
