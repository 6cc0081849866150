package llama

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"lrmc/kernels/gemm"
)

// nearestCheck asserts that h is a correctly rounded 16-bit value of f (to
// nearest, ties to even), measuring distances in float64 against both
// neighbours of h.
func nearestCheck(t *testing.T, name string, f float32, h uint16, widen func(uint16) float32) {
	t.Helper()
	got := float64(widen(h))
	if math.IsInf(got, 0) {
		// Overflow: IEEE rounds to infinity from the largest finite value
		// plus half its ulp on (65520 for f16).
		if name == "f16" && math.Abs(float64(f)) < 65520 {
			t.Fatalf("%s(%g) = infinity, want finite", name, f)
		}
		return
	}
	e := math.Abs(got - float64(f))
	for _, n := range []uint16{h - 1, h + 1} {
		w := float64(widen(n))
		if n&0x7fff >= 0x7c00 && name == "f16" || math.IsNaN(w) || math.IsInf(w, 0) || math.Signbit(w) != math.Signbit(got) && w != 0 {
			continue
		}
		d := math.Abs(w - float64(f))
		if d < e || d == e && h&1 == 1 {
			t.Fatalf("%s(%g) = %#04x (%g), but %#04x (%g) is nearer or an even tie", name, f, h, got, n, w)
		}
	}
}

func TestRoundHalf(t *testing.T) {
	bf := func(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }
	f16 := func(h uint16) float32 { d := make([]float32, 1); gemm.WidenF16(d, []uint16{h}); return d[0] }
	// Every 16-bit value survives the round trip.
	for i := range 1 << 16 {
		h := uint16(i)
		if v := bf(h); v == v && RoundBF16(v) != h {
			t.Fatalf("RoundBF16(%g) = %#04x, want %#04x", v, RoundBF16(v), h)
		}
		if v := f16(h); v == v && RoundF16(v) != h {
			t.Fatalf("RoundF16(%g) = %#04x, want %#04x", v, RoundF16(v), h)
		}
	}
	// Random floats over the whole f16 range, subnormals included, and
	// over a wide range for bf16.
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		f := float32(math.Ldexp(r.Float64()*2-1, r.IntN(44)-26))
		nearestCheck(t, "f16", f, RoundF16(f), f16)
		g := math.Float32frombits(r.Uint32())
		if g == g && !math.IsInf(float64(g), 0) && math.Abs(float64(g)) < 3e38 {
			nearestCheck(t, "bf16", g, RoundBF16(g), bf)
		}
	}
	for _, c := range []struct {
		f    float32
		want uint16
	}{
		{1 + 0x1p-11, 0x3c00}, {1 + 3*0x1p-11, 0x3c02}, // ties to even
		{65504, 0x7bff}, {65519.99, 0x7bff}, {65520, 0x7c00}, {-1e6, 0xfc00},
		{0x1p-25, 0}, {0x1p-25 * 1.0001, 1}, {0x1p-24 * 1.5, 2}, {-0x1p-14, 0x8400}, {0x1p-14 - 0x1p-25, 0x0400},
		{float32(math.Inf(1)), 0x7c00}, {1e-40, 0},
	} {
		if got := RoundF16(c.f); got != c.want {
			t.Errorf("RoundF16(%g) = %#04x, want %#04x", c.f, got, c.want)
		}
	}
	for _, c := range []struct {
		f    float32
		want uint16
	}{
		{1 + 0x1p-8, 0x3f80}, {1 + 3*0x1p-8, 0x3f82}, {math.MaxFloat32, 0x7f80}, {-2.5, 0xc020},
	} {
		if got := RoundBF16(c.f); got != c.want {
			t.Errorf("RoundBF16(%g) = %#04x, want %#04x", c.f, got, c.want)
		}
	}
	nan := math.Float32frombits(0x7f800001) // a signalling NaN whose payload truncation would make infinity
	if h := RoundBF16(nan); bf(h) == bf(h) {
		t.Errorf("RoundBF16(NaN) = %#04x, not a NaN", h)
	}
	if h := RoundF16(nan); h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
		t.Errorf("RoundF16(NaN) = %#04x, not a NaN", h)
	}
}

// halfConfigs are the model variants the 16-bit path must match exactly.
func halfConfigs() map[string]Config {
	tied := testConfig
	tied.SharedClassifier = true
	qwen3 := testConfig
	qwen3.QKNorm, qwen3.HeadSize, qwen3.RopeStyle = true, 16, RopeHalf
	qwen2 := testConfig
	qwen2.QKVBias = true
	return map[string]Config{"untied": testConfig, "tied": tied, "qwen3": qwen3, "qwen2": qwen2}
}

func bitsEqual(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s[%d]: 16-bit model %g, widened float32 model %g", what, i, got[i], want[i])
		}
	}
}

// TestHalfMatchesWidened: a 16-bit model computes bit for bit what the
// float32 model holding its widened weights computes, in Forward, in a chain
// of Blocks and in the Decoder.
func TestHalfMatchesWidened(t *testing.T) {
	for name, c := range halfConfigs() {
		for _, dt := range []DType{BFloat16, Float16} {
			t.Run(name+"/"+string(dt), func(t *testing.T) {
				h, err := randModel(c, 21).WithDType(dt)
				if err != nil {
					t.Fatal(err)
				}
				if err := h.Validate(); err != nil {
					t.Fatal(err)
				}
				if h.DType() != dt || h.Layers[0].Wq != nil || h.Embedding != nil {
					t.Fatalf("DType() = %s; float32 weights left: %v", h.DType(), h.Layers[0].Wq != nil || h.Embedding != nil)
				}
				w := h.Float32()
				if err := w.Validate(); err != nil {
					t.Fatal(err)
				}
				const b, T = 2, 11
				tokens := randTokens(b*T, c.Vocab, 22)
				bitsEqual(t, "Forward", h.Forward(tokens, b, T), w.Forward(tokens, b, T))
				bitsEqual(t, "Embed", h.Embed(tokens, nil), w.Embed(tokens, nil))
				hh, hw := h.Embed(tokens, nil), w.Embed(tokens, nil)
				for i := range h.Layers {
					hh, hw = h.Block(i, hh, b, T), w.Block(i, hw, b, T)
					bitsEqual(t, "Block", hh, hw)
				}
				bitsEqual(t, "Logits", h.Logits(hh, b, T), w.Logits(hw, b, T))
				dh, dw := NewDecoder(h, T), NewDecoder(w, T)
				for p, tok := range tokens[:T] {
					bitsEqual(t, "Decoder.Step", dh.Step(tok, p), dw.Step(tok, p))
				}
			})
		}
	}
}

// TestWithDType checks the conversions: narrowing rounds every weight
// (embedding and classifier included) to nearest, widening is exact and
// round-trips, converting to the current dtype is the identity, and the
// results share no memory with their source.
func TestWithDType(t *testing.T) {
	m := randModel(testConfig, 23)
	if same, _ := m.WithDType(Float32); same != m || m.Float32() != m {
		t.Fatal("WithDType(Float32) or Float32() on a float32 model is not the model itself")
	}
	bf, err := m.WithDType(BFloat16)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range m.Layers[1].W2 {
		if want := RoundBF16(v); bf.Layers[1].Half.W2[i] != want {
			t.Fatalf("layers.1.w2[%d]: %#04x, want %#04x", i, bf.Layers[1].Half.W2[i], want)
		}
	}
	if bf.Half.Classifier[7] != RoundBF16(m.Classifier[7]) || bf.Half.Embedding[9] != RoundBF16(m.Embedding[9]) {
		t.Fatal("embedding or classifier not rounded")
	}
	if &bf.FinalNorm[0] == &m.FinalNorm[0] || &bf.Layers[0].AttnNorm[0] == &m.Layers[0].AttnNorm[0] {
		t.Fatal("the bf16 model shares norms with its source")
	}
	// bf16 → f16 → f32: each step's values are the previous one's rounded.
	f16, err := bf.WithDType(Float16)
	if err != nil {
		t.Fatal(err)
	}
	wide := bf.Float32()
	for i, v := range wide.Layers[2].Wk {
		if want := RoundF16(v); f16.Layers[2].Half.Wk[i] != want {
			t.Fatalf("f16 layers.2.wk[%d]: %#04x, want %#04x", i, f16.Layers[2].Half.Wk[i], want)
		}
	}
	back, err := wide.WithDType(BFloat16)
	if err != nil {
		t.Fatal(err)
	}
	for i := range back.Layers {
		for j, p := range back.Layers[i].Half.list() {
			q := *bf.Layers[i].Half.list()[j]
			for k := range q {
				if (*p)[k] != q[k] {
					t.Fatalf("bf16 → f32 → bf16 changed layers.%d projection %d at %d", i, j, k)
				}
			}
		}
	}
	if _, err := m.WithDType("int8"); err == nil || err.Error() != `llama: dtype "int8" is not one of float32, bfloat16, float16` {
		t.Fatalf("WithDType(int8) error = %v", err)
	}
	// Clone copies the 16-bit slices.
	cl := bf.Clone()
	cl.Layers[0].Half.Wq[0] ^= 1
	cl.Half.Embedding[0] ^= 1
	if cl.Layers[0].Half.Wq[0] == bf.Layers[0].Half.Wq[0] || cl.Half.Embedding[0] == bf.Half.Embedding[0] {
		t.Fatal("Clone shares 16-bit weights")
	}
	if err := cl.Validate(); err != nil {
		t.Fatal(err)
	}
	// Keep keeps the 16-bit layers.
	k, err := bf.Keep([]int{0, 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Validate(); err != nil || k.Layers[1].Half != bf.Layers[2].Half {
		t.Fatalf("Keep on a bf16 model: %v", err)
	}
}

func TestHalfValidate(t *testing.T) {
	for _, c := range []struct {
		name   string
		break_ func(m *Model)
		want   string
	}{
		{"float32 copy left", func(m *Model) { m.Layers[1].W3 = make([]float32, 44*32) },
			"llama: tensor layers.1.w3 has 1408 floats in a bfloat16 model, which holds it 16-bit"},
		{"layer without half", func(m *Model) { m.Layers[2].Half = nil },
			"llama: layers.2 has no 16-bit projections in a bfloat16 model"},
		{"short half", func(m *Model) { m.Layers[0].Half.Wo = m.Layers[0].Half.Wo[1:] },
			"llama: bfloat16 tensor layers.0.wo has 1023 values, want 1024"},
		{"float32 embedding left", func(m *Model) { m.Embedding = make([]float32, 50*32) },
			"llama: tensor embedding has 1600 floats in a bfloat16 model, which holds it 16-bit"},
		{"bad dtype", func(m *Model) { m.Half.DType = "float8" },
			`llama: model's 16-bit dtype is "float8", want bfloat16 or float16`},
	} {
		m, err := randModel(testConfig, 24).WithDType(BFloat16)
		if err != nil {
			t.Fatal(err)
		}
		c.break_(m)
		if err := m.Validate(); err == nil || err.Error() != c.want {
			t.Errorf("%s: Validate() = %v, want %q", c.name, err, c.want)
		}
	}
	f := randModel(testConfig, 25)
	f.Layers[0].Half = &HalfLayer{}
	if err := f.Validate(); err == nil || err.Error() != "llama: layers.0 holds 16-bit projections in a float32 model" {
		t.Errorf("float32 model with a HalfLayer: %v", err)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "bfloat16; widen it with Float32 first") {
			t.Errorf("Tensors on a bf16 model: recovered %v", r)
		}
	}()
	bf, _ := randModel(testConfig, 26).WithDType(BFloat16)
	bf.Tensors()
}

// TestHalfWeightBytes: a 16-bit SmolLM-135M-shaped model takes half the
// float32 model's weight memory, but for its float32 norms.
func TestHalfWeightBytes(t *testing.T) {
	c := smolModel
	c.Layers = 2 // the ratio does not depend on depth; keep the test fast
	m := randModel(c, 27)
	bf, err := m.WithDType(BFloat16)
	if err != nil {
		t.Fatal(err)
	}
	f32, b16 := m.WeightBytes(), bf.WeightBytes()
	norms := 4 * int64(c.Dim*(2*c.Layers+1))
	if want := (f32-norms)/2 + norms; b16 != want {
		t.Fatalf("bf16 model: %d weight bytes, want %d (float32 %d)", b16, want, f32)
	}
	if want := 4 * c.Params(); f32 != want {
		t.Fatalf("float32 model: %d weight bytes, want 4·Params = %d", f32, want)
	}
	t.Logf("SmolLM-135M shape, %d layers: float32 %d bytes, bfloat16 %d bytes (%.4f×)", c.Layers, f32, b16, float64(b16)/float64(f32))
}

// TestHalfWithRopeStyle: re-pairing a 16-bit model permutes its 16-bit
// query and key rows as the float32 model's are permuted.
func TestHalfWithRopeStyle(t *testing.T) {
	c := halfConfigs()["qwen3"]
	m := randModel(c, 28)
	bf, err := m.WithDType(BFloat16)
	if err != nil {
		t.Fatal(err)
	}
	got := bf.WithRopeStyle(RopeInterleaved)
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
	want, err := m.WithRopeStyle(RopeInterleaved).WithDType(BFloat16)
	if err != nil {
		t.Fatal(err)
	}
	const T = 9
	tokens := randTokens(T, c.Vocab, 29)
	bitsEqual(t, "Forward", got.Forward(tokens, 1, T), want.Forward(tokens, 1, T))
	if &got.Layers[0].Half.W1[0] != &bf.Layers[0].Half.W1[0] || &got.Layers[0].Half.Wq[0] == &bf.Layers[0].Half.Wq[0] {
		t.Fatal("WithRopeStyle should copy only the permuted tensors")
	}
}
