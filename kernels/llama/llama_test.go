package llama

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// testConfig is a small model with grouped-query attention (2 query heads per
// kv head), an MLP width that is not a multiple of the kernels' blocking, and
// more than one layer.
var testConfig = Config{Dim: 32, HiddenDim: 44, Layers: 3, Heads: 4, KVHeads: 2, Vocab: 50, SeqLen: 16,
	NormEps: 1e-5, RopeTheta: 10000, SharedClassifier: false}

func randModel(c Config, seed uint64) *Model {
	r := rand.New(rand.NewPCG(seed, 99))
	mat := func(out, in int) []float32 {
		w := make([]float32, out*in)
		s := 1 / math.Sqrt(float64(in))
		for i := range w {
			w[i] = float32(r.NormFloat64() * s)
		}
		return w
	}
	norm := func(n int) []float32 {
		w := make([]float32, n)
		for i := range w {
			w[i] = float32(1 + 0.2*r.NormFloat64())
		}
		return w
	}
	m := &Model{Config: c, Embedding: mat(c.Vocab, c.Dim)}
	for i := range c.Layers {
		c := c.Layer(i)
		l := Layer{
			AttnNorm: norm(c.Dim), Wq: mat(c.QDim(), c.Dim), Wk: mat(c.KVDim(), c.Dim), Wv: mat(c.KVDim(), c.Dim),
			Wo: mat(c.Dim, c.QDim()), FFNNorm: norm(c.Dim), W1: mat(c.HiddenDim, c.Dim), W2: mat(c.Dim, c.HiddenDim),
			W3: mat(c.HiddenDim, c.Dim),
		}
		if c.QKVBias {
			l.Bq, l.Bk, l.Bv = mat(1, c.QDim()), mat(1, c.KVDim()), mat(1, c.KVDim())
		}
		if c.QKNorm {
			l.QNorm, l.KNorm = norm(c.HeadDim()), norm(c.HeadDim())
		}
		if c.OutBias {
			l.Bo, l.B2 = mat(1, c.Dim), mat(1, c.Dim)
		}
		m.Layers = append(m.Layers, l)
	}
	m.FinalNorm = norm(c.Dim)
	if c.SharedClassifier {
		m.Classifier = m.Embedding
	} else {
		m.Classifier = mat(c.Vocab, c.Dim)
	}
	return m
}

func randTokens(n, vocab int, seed uint64) []int32 {
	r := rand.New(rand.NewPCG(seed, 7))
	t := make([]int32, n)
	for i := range t {
		t[i] = int32(r.IntN(vocab))
	}
	return t
}

// refInvFreq is the rotary frequency of pair i, written in float64 from the
// definitions: theta^(-2i/hd), and for "llama3" scaling Meta's
// apply_scaling (wavelength above old/low: divided by factor; below
// old/high: kept; between: smooth = (old/wavelen − low)/(high − low),
// (1−smooth)·f/factor + smooth·f).
func refInvFreq(c Config, i int) float64 {
	hd := refHeadDim(c)
	f := math.Pow(c.RopeTheta, -float64(2*i)/float64(hd))
	s := c.RopeScaling
	if s.Type != "llama3" {
		return f
	}
	old := float64(s.OriginalMaxPositions)
	wavelen := 2 * math.Pi / f
	switch {
	case wavelen < old/s.HighFreqFactor:
		return f
	case wavelen > old/s.LowFreqFactor:
		return f / s.Factor
	}
	smooth := (old/wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
	return (1-smooth)*f/s.Factor + smooth*f
}

// refHeadDim is the head width the reference uses, derived independently of
// Config.HeadDim.
func refHeadDim(c Config) int {
	if c.HeadSize != 0 {
		return c.HeadSize
	}
	return c.Dim / c.Heads
}

// refForward is an independent float64 Llama forward pass for one sequence,
// written from the architecture's definition: the whole causal score matrix
// at once, rotary embedding as a complex rotation of adjacent pairs (or of
// pairs half a head apart, for RopeHalf), biases added after the q, k, v
// projections and per-head RMSNorm of q and k before the rotation.
func refForward(m *Model, tokens []int32) [][]float64 {
	c := m.Config
	d, hd, T := c.Dim, refHeadDim(c), len(tokens)
	linear := func(w []float32, x []float64, out int) []float64 {
		y := make([]float64, out)
		for o := range y {
			for i, v := range x {
				y[o] += float64(w[o*len(x)+i]) * v
			}
		}
		return y
	}
	rms := func(x []float64, w []float32) []float64 {
		var ss float64
		for _, v := range x {
			ss += v * v
		}
		s := 1 / math.Sqrt(ss/float64(len(x))+float64(c.NormEps))
		y := make([]float64, len(x))
		for i := range x {
			y[i] = x[i] * s * float64(w[i])
		}
		return y
	}
	rope := func(v []float64, pos int) {
		for h := 0; h < len(v); h += hd {
			for i := 0; i < hd/2; i++ {
				a, b := h+2*i, h+2*i+1
				if c.RopeStyle == RopeHalf {
					a, b = h+i, h+i+hd/2
				}
				angle := float64(pos) * refInvFreq(c, i)
				z := complex(v[a], v[b]) * complex(math.Cos(angle), math.Sin(angle))
				v[a], v[b] = real(z), imag(z)
			}
		}
	}
	// prep adds an optional bias, then RMS-normalises each head when w is
	// given.
	prep := func(v []float64, bias, w []float32) {
		for i := range bias {
			v[i] += float64(bias[i])
		}
		if w != nil {
			for h := 0; h < len(v); h += hd {
				copy(v[h:h+hd], rms(v[h:h+hd], w))
			}
		}
	}
	x := make([][]float64, T)
	for t, tok := range tokens {
		x[t] = make([]float64, d)
		for i := range x[t] {
			x[t][i] = float64(m.Embedding[int(tok)*d+i])
		}
	}
	for li, l := range m.Layers {
		// Each block's own widths (Config.Widths), from the one place
		// that states them.
		c := c
		if c.Widths != nil {
			w := c.Widths[li]
			c.Heads, c.KVHeads, c.HiddenDim = w.Heads, w.KVHeads, w.HiddenDim
		}
		qd, kvd := c.Heads*hd, c.KVHeads*hd
		q, k, v := make([][]float64, T), make([][]float64, T), make([][]float64, T)
		for t := range T {
			xn := rms(x[t], l.AttnNorm)
			q[t], k[t], v[t] = linear(l.Wq, xn, qd), linear(l.Wk, xn, kvd), linear(l.Wv, xn, kvd)
			prep(q[t], l.Bq, l.QNorm)
			prep(k[t], l.Bk, l.KNorm)
			prep(v[t], l.Bv, nil)
			rope(q[t], t)
			rope(k[t], t)
		}
		for t := range T {
			att := make([]float64, qd)
			for h := range c.Heads {
				kh := h / (c.Heads / c.KVHeads)
				w := make([]float64, t+1)
				var mx float64 = math.Inf(-1)
				for s := 0; s <= t; s++ {
					for i := range hd {
						w[s] += q[t][h*hd+i] * k[s][kh*hd+i]
					}
					w[s] /= math.Sqrt(float64(hd))
					mx = math.Max(mx, w[s])
				}
				var z float64
				for s := range w {
					w[s] = math.Exp(w[s] - mx)
					z += w[s]
				}
				for s := range w {
					for i := range hd {
						att[h*hd+i] += w[s] / z * v[s][kh*hd+i]
					}
				}
			}
			o := linear(l.Wo, att, d)
			for i := range o {
				x[t][i] += o[i]
				if l.Bo != nil {
					x[t][i] += float64(l.Bo[i])
				}
			}
			xn := rms(x[t], l.FFNNorm)
			g, u := linear(l.W1, xn, c.HiddenDim), linear(l.W3, xn, c.HiddenDim)
			for i := range g {
				g[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
			}
			o = linear(l.W2, g, d)
			for i := range o {
				x[t][i] += o[i]
				if l.B2 != nil {
					x[t][i] += float64(l.B2[i])
				}
			}
		}
	}
	logits := make([][]float64, T)
	for t := range T {
		logits[t] = linear(m.Classifier, rms(x[t], m.FinalNorm), c.Vocab)
	}
	return logits
}

// maxRelErr returns max|got-want| / max|want| over one row of logits.
func maxRelErr(got []float32, want []float64) float64 {
	var diff, scale float64
	for i, w := range want {
		diff = math.Max(diff, math.Abs(float64(got[i])-w))
		scale = math.Max(scale, math.Abs(w))
	}
	return diff / scale
}

func TestForwardAgainstFloat64(t *testing.T) {
	for _, shared := range []bool{false, true} {
		c := testConfig
		c.SharedClassifier = shared
		m := randModel(c, 1)
		if err := m.Validate(); err != nil {
			t.Fatal(err)
		}
		const b, T = 3, 11
		tokens := randTokens(b*T, c.Vocab, 2)
		logits := m.Forward(tokens, b, T)
		var worst float64
		for s := range b {
			ref := refForward(m, tokens[s*T:(s+1)*T])
			for p := range T {
				worst = math.Max(worst, maxRelErr(logits[(s*T+p)*c.Vocab:(s*T+p+1)*c.Vocab], ref[p]))
			}
		}
		// float32 through 3 blocks: errors stay within ~20 ulps of the
		// largest logit (1.3e-6 measured).
		const tol = 1e-5
		if worst > tol {
			t.Fatalf("shared=%v: max relative logit error %.3g exceeds %g", shared, worst, tol)
		}
		t.Logf("shared=%v: max relative logit error vs float64: %.3g", shared, worst)
	}
}

// variants are small models with each Hugging Face family's features, alone
// and together.
var variants = map[string]Config{
	// Qwen2: q/k/v biases, rotate-half RoPE.
	"qwen2": {Dim: 32, HiddenDim: 44, Layers: 2, Heads: 4, KVHeads: 2, Vocab: 50, SeqLen: 16,
		NormEps: 1e-6, RopeTheta: 1e6, QKVBias: true, RopeStyle: RopeHalf},
	// Qwen3: heads wider than Dim/Heads (QDim 48 ≠ Dim 32), per-head q/k norm.
	"qwen3": {Dim: 32, HiddenDim: 44, Layers: 2, Heads: 4, KVHeads: 2, Vocab: 50, SeqLen: 16,
		NormEps: 1e-6, RopeTheta: 1e6, HeadSize: 12, QKNorm: true, RopeStyle: RopeHalf, SharedClassifier: true},
	// Llama 3.1: "llama3" scaling with a short original context so that,
	// with 8-wide heads, one pair is kept, one interpolated and two divided.
	"llama3.1": {Dim: 32, HiddenDim: 44, Layers: 2, Heads: 4, KVHeads: 1, Vocab: 50, SeqLen: 16,
		NormEps: 1e-5, RopeTheta: 10000, RopeStyle: RopeHalf,
		RopeScaling: RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 64}},
	// Width-pruned Qwen3 shape: every block its own heads (GQA kept per
	// block), kv heads and MLP width, with FLAP's output biases.
	"widths-qwen3": {Dim: 32, HiddenDim: 44, Layers: 3, Heads: 6, KVHeads: 3, Vocab: 50, SeqLen: 16,
		NormEps: 1e-6, RopeTheta: 1e6, HeadSize: 12, QKNorm: true, RopeStyle: RopeHalf, SharedClassifier: true,
		OutBias: true, Widths: []LayerWidth{{6, 3, 44}, {2, 1, 20}, {4, 2, 37}}},
	// Width-pruned llama2.c shape (head 8 = Dim/Heads of the dense model).
	"widths-llama2c": {Dim: 32, HiddenDim: 40, Layers: 3, Heads: 4, KVHeads: 4, Vocab: 50, SeqLen: 16,
		NormEps: 1e-5, RopeTheta: 10000, HeadSize: 8,
		Widths: []LayerWidth{{3, 3, 40}, {4, 4, 17}, {1, 1, 31}}},
	// Every option at once, with interleaved RoPE.
	"all": {Dim: 24, HiddenDim: 40, Layers: 2, Heads: 3, KVHeads: 1, Vocab: 40, SeqLen: 16,
		NormEps: 1e-5, RopeTheta: 500, HeadSize: 10, QKVBias: true, QKNorm: true,
		RopeScaling: RopeScaling{Type: "llama3", Factor: 4, LowFreqFactor: 1, HighFreqFactor: 2, OriginalMaxPositions: 20}},
}

func TestVariantsAgainstFloat64(t *testing.T) {
	for name, c := range variants {
		m := randModel(c, 21)
		if err := m.Validate(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		const b, T = 2, 12
		tokens := randTokens(b*T, c.Vocab, 22)
		logits := m.Forward(tokens, b, T)
		dec := NewDecoder(m, T)
		var worst, worstDec float64
		for s := range b {
			ref := refForward(m, tokens[s*T:(s+1)*T])
			for p := range T {
				worst = math.Max(worst, maxRelErr(logits[(s*T+p)*c.Vocab:(s*T+p+1)*c.Vocab], ref[p]))
				if s == 1 {
					worstDec = math.Max(worstDec, maxRelErr(dec.Step(tokens[s*T+p], p), ref[p]))
				}
			}
		}
		if worst > 1e-5 || worstDec > 1e-5 {
			t.Errorf("%s: max relative logit error vs float64: Forward %.3g, Decoder %.3g; want ≤ 1e-5", name, worst, worstDec)
		}
		t.Logf("%s: max relative logit error vs float64: Forward %.3g, Decoder %.3g", name, worst, worstDec)
	}
}

// TestLlama3Freqs checks the float32 frequencies against the float64
// definition for Llama 3.1 8B's published rope settings, where all three
// regimes occur, and that each regime really is hit.
func TestLlama3Freqs(t *testing.T) {
	c := Config{Dim: 4096, Heads: 32, RopeTheta: 500000,
		RopeScaling: RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}}
	f := RopeFreqs(c)
	var kept, divided, smoothed int
	for i, got := range f {
		want := refInvFreq(c, i)
		if e := math.Abs(float64(got)-want) / want; e > 1e-6 {
			t.Errorf("pair %d: frequency %g, want %g (relative error %.2g)", i, got, want, e)
		}
		plain := math.Pow(c.RopeTheta, -float64(2*i)/128)
		switch r := want / plain; {
		case r == 1:
			kept++
		case r == 1.0/8:
			divided++
		default:
			smoothed++
		}
	}
	// 2π/f = 2π·500000^(i/64) crosses 8192/4 = 2048 at i ≈ 28.2 and 8192
	// at i ≈ 35.0.
	if kept != 29 || smoothed != 6 || divided != 29 {
		t.Errorf("kept %d, smoothed %d, divided %d pairs; want 29, 6, 29", kept, smoothed, divided)
	}
}

// TestBatchIndependent: a sequence's logits do not depend on the other
// sequences of the batch, bit for bit. (gemm reduces a product of at most
// 16 rows on its matrix-vector path and larger ones on its packed path,
// whose roundings differ; with T > 16 the sequence alone and the batch both
// take the packed path, as calibration batches do.)
func TestBatchIndependent(t *testing.T) {
	m := randModel(testConfig, 3)
	const b, T = 4, 17
	tokens := randTokens(b*T, testConfig.Vocab, 4)
	all := m.Forward(tokens, b, T)
	V := testConfig.Vocab
	for s := range b {
		one := m.Forward(tokens[s*T:(s+1)*T], 1, T)
		for i, v := range one {
			if v != all[s*T*V+i] {
				t.Fatalf("sequence %d logit %d: alone %g, in batch %g", s, i, v, all[s*T*V+i])
			}
		}
	}
}

func TestBlockChainEqualsForward(t *testing.T) {
	m := randModel(testConfig, 5)
	const b, T = 2, 9
	tokens := randTokens(b*T, testConfig.Vocab, 6)
	h := m.Embed(tokens, nil)
	for i := range m.Layers {
		in := append([]float32(nil), h...)
		next := m.Block(i, h, b, T)
		for j := range h {
			if h[j] != in[j] {
				t.Fatalf("Block %d modified its input at %d", i, j)
			}
		}
		h = next
	}
	got, want := m.Logits(h, b, T), m.Forward(tokens, b, T)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("logit %d: block chain %g, Forward %g", i, got[i], want[i])
		}
	}
}

// TestForwardThreadIndependent: results are bit-identical for any GOMAXPROCS.
func TestForwardThreadIndependent(t *testing.T) {
	m := randModel(testConfig, 7)
	const b, T = 3, 16
	tokens := randTokens(b*T, testConfig.Vocab, 8)
	old := runtime.GOMAXPROCS(1)
	one := m.Forward(tokens, b, T)
	runtime.GOMAXPROCS(4)
	four := m.Forward(tokens, b, T)
	runtime.GOMAXPROCS(old)
	for i := range one {
		if math.Float32bits(one[i]) != math.Float32bits(four[i]) {
			t.Fatalf("logit %d: %g with 1 thread, %g with 4", i, one[i], four[i])
		}
	}
}

// TestDecoderMatchesForward: one-token-at-a-time decoding over the KV cache
// gives Forward's logits. The measure is max|Δ| / max|logit| per position:
// today both paths run the same kernels in the same order and agree exactly,
// but a GEMM whose reduction order depends on m (an assembly kernel) would
// leave rounding-level differences, which 1e-5 of the row's scale allows.
func TestDecoderMatchesForward(t *testing.T) {
	for _, shared := range []bool{false, true} {
		c := testConfig
		c.SharedClassifier = shared
		m := randModel(c, 9)
		const T = 16
		tokens := randTokens(T, c.Vocab, 10)
		want := m.Forward(tokens, 1, T)
		dec := NewDecoder(m, T)
		var worst float64
		for p, tok := range tokens {
			got := dec.Step(tok, p)
			ref := make([]float64, c.Vocab)
			for i := range ref {
				ref[i] = float64(want[p*c.Vocab+i])
			}
			worst = math.Max(worst, maxRelErr(got, ref))
		}
		if worst > 1e-5 {
			t.Fatalf("shared=%v: decoder logits differ from Forward by %.3g of the logit scale > 1e-5", shared, worst)
		}
		t.Logf("shared=%v: decoder vs Forward max difference %.3g of the logit scale", shared, worst)
	}
}

func TestKeep(t *testing.T) {
	m := randModel(testConfig, 11)
	k, err := m.Keep([]int{0, 2})
	if err != nil {
		t.Fatal(err)
	}
	if k.Config.Layers != 2 || len(k.Layers) != 2 || m.Config.Layers != 3 {
		t.Fatalf("Keep: config layers %d, %d layers; original now %d", k.Config.Layers, len(k.Layers), m.Config.Layers)
	}
	if &k.Layers[1].Wq[0] != &m.Layers[2].Wq[0] || &k.Embedding[0] != &m.Embedding[0] {
		t.Fatal("Keep copied weights instead of sharing them")
	}
	if err := k.Validate(); err != nil {
		t.Fatal(err)
	}
	// The pruned model runs blocks 0 and 2 of the original.
	const b, T = 2, 5
	tokens := randTokens(b*T, testConfig.Vocab, 12)
	h := m.Block(2, m.Block(0, m.Embed(tokens, nil), b, T), b, T)
	want, got := m.Logits(h, b, T), k.Forward(tokens, b, T)
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("logit %d: pruned model %g, blocks 0 and 2 of the original %g", i, got[i], want[i])
		}
	}
	for _, c := range []struct {
		layers []int
		err    string
	}{
		{[]int{0, 3}, "llama: keep: layer 3 out of range [0, 3)"},
		{[]int{1, 1}, "llama: keep: layers must be strictly increasing, got 1 after 1"},
		{[]int{-1}, "llama: keep: layer -1 out of range [0, 3)"},
	} {
		if _, err := m.Keep(c.layers); err == nil || err.Error() != c.err {
			t.Errorf("Keep(%v) error %v, want %q", c.layers, err, c.err)
		}
	}
	none, err := m.Keep(nil)
	if err != nil || none.Config.Layers != 0 {
		t.Fatalf("Keep(nil): %v, %v", none, err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := testConfig.Validate(); err != nil {
		t.Fatal(err)
	}
	c := testConfig
	c.Dim, c.KVHeads, c.NormEps = 30, 3, 0
	want := "llama: invalid config: dim 30 is not a multiple of heads 4\nheads 4 is not a multiple of kv_heads 3\nnorm_eps is 0, must be positive"
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	c = testConfig
	c.HeadSize, c.RopeStyle = 7, 2
	c.RopeScaling = RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 4, HighFreqFactor: 1, OriginalMaxPositions: 8192}
	want = "llama: invalid config: head dim 7 is odd; rotary embedding rotates pairs\nrope style RopeStyle(2) is unknown\n" +
		"llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor, got 4 and 1"
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	c = testConfig
	// With an explicit head size, Dim need not be a multiple of Heads.
	c.HeadSize = 12
	c.Dim = 30
	if err := c.Validate(); err != nil {
		t.Fatalf("explicit head size: %v", err)
	}
	c.RopeScaling.Type = "yarn"
	want = `llama: invalid config: rope scaling type "yarn" is not supported (only "llama3")`
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	c = testConfig
	c.Dim, c.Heads, c.KVHeads = 24, 8, 8 // head dim 3
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "head dim 3 is odd") {
		t.Fatalf("odd head dim: %v", err)
	}
}

func TestParams(t *testing.T) {
	// stories260K's published count (README of the shared data).
	c := Config{Dim: 64, HiddenDim: 172, Layers: 5, Heads: 8, KVHeads: 4, Vocab: 512, SeqLen: 512,
		NormEps: 1e-5, RopeTheta: 10000, SharedClassifier: true}
	if got := c.Params(); got != 260032 {
		t.Fatalf("Params = %d, want 260032", got)
	}
	c.SharedClassifier = false
	if got := c.Params(); got != 260032+512*64 {
		t.Fatalf("unshared Params = %d, want %d", got, 260032+512*64)
	}
	// And the count matches the tensors a model holds.
	for name, c := range map[string]Config{"test": testConfig, "qwen2": variants["qwen2"], "qwen3": variants["qwen3"], "all": variants["all"]} {
		m := randModel(c, 13)
		n := len(m.Embedding) + len(m.FinalNorm)
		if !c.SharedClassifier {
			n += len(m.Classifier)
		}
		for _, l := range m.Layers {
			n += len(l.AttnNorm) + len(l.Wq) + len(l.Wk) + len(l.Wv) + len(l.Wo) + len(l.FFNNorm) + len(l.W1) + len(l.W2) + len(l.W3) +
				len(l.Bq) + len(l.Bk) + len(l.Bv) + len(l.QNorm) + len(l.KNorm)
		}
		if int64(n) != c.Params() {
			t.Errorf("%s: model holds %d floats, Params says %d", name, n, c.Params())
		}
	}
}

func TestModelValidateNamesTensor(t *testing.T) {
	m := randModel(testConfig, 14)
	m.Layers[1].W2 = m.Layers[1].W2[:10]
	want := "llama: tensor layers.1.w2 has 10 floats, want 1408"
	if err := m.Validate(); err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	// Optional tensors must be present exactly when the config asks.
	m = randModel(variants["qwen3"], 14)
	m.Layers[0].Bk = make([]float32, 24)
	want = "llama: tensor layers.0.bk has 24 floats, want 0"
	if err := m.Validate(); err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	m = randModel(variants["qwen3"], 14)
	m.Layers[1].KNorm = nil
	want = "llama: tensor layers.1.k_norm has 0 floats, want 12"
	if err := m.Validate(); err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
}

// TestWithRopeStyle: a model converted to the other pairing, and back,
// computes the same logits; the round trip restores the weights exactly.
func TestWithRopeStyle(t *testing.T) {
	for name, c := range variants {
		m := randModel(c, 31)
		other := RopeHalf
		if c.RopeStyle == RopeHalf {
			other = RopeInterleaved
		}
		conv := m.WithRopeStyle(other)
		if conv.Config.RopeStyle != other || m.Config.RopeStyle != c.RopeStyle {
			t.Fatalf("%s: styles %v and %v after converting to %v", name, m.Config.RopeStyle, conv.Config.RopeStyle, other)
		}
		if err := conv.Validate(); err != nil {
			t.Fatal(err)
		}
		const T = 10
		tokens := randTokens(T, c.Vocab, 32)
		want, got := m.Forward(tokens, 1, T), conv.Forward(tokens, 1, T)
		var worst float64
		for p := range T {
			ref := make([]float64, c.Vocab)
			for i := range ref {
				ref[i] = float64(want[p*c.Vocab+i])
			}
			worst = math.Max(worst, maxRelErr(got[p*c.Vocab:(p+1)*c.Vocab], ref))
		}
		if worst > 1e-5 {
			t.Errorf("%s: converted model's logits differ by %.3g of the logit scale", name, worst)
		}
		back := conv.WithRopeStyle(c.RopeStyle)
		for i := range m.Layers {
			a, b := m.Layers[i], back.Layers[i]
			for _, p := range [][2][]float32{{a.Wq, b.Wq}, {a.Wk, b.Wk}, {a.Bq, b.Bq}, {a.Bk, b.Bk}, {a.QNorm, b.QNorm}, {a.KNorm, b.KNorm}} {
				if !slices.Equal(p[0], p[1]) {
					t.Fatalf("%s: layer %d: round trip changed a q/k tensor", name, i)
				}
			}
		}
		if m.WithRopeStyle(c.RopeStyle) != m {
			t.Errorf("%s: converting to the model's own style made a copy", name)
		}
	}
	// One head of width 4, interleaved (a0 b0 a1 b1) → half (a0 a1 b0 b1).
	c := Config{Dim: 4, HiddenDim: 2, Heads: 1, KVHeads: 1, Vocab: 2, SeqLen: 2, NormEps: 1e-5, RopeTheta: 10000}
	m := randModel(c, 1)
	m.Layers = []Layer{{Bq: []float32{0, 1, 2, 3}}}
	if got := m.WithRopeStyle(RopeHalf).Layers[0].Bq; !slices.Equal(got, []float32{0, 2, 1, 3}) {
		t.Errorf("interleaved→half permutes [0 1 2 3] to %v, want [0 2 1 3]", got)
	}
}

// TestDecoderSizedByUse: a decoder for a context of 2^24 positions (what a
// header's context length can ask for) takes memory for the positions fed,
// not for the whole context, and computes what a decoder sized exactly for
// them does, across the caches' growth.
func TestDecoderSizedByUse(t *testing.T) {
	c := testConfig
	c.SeqLen = MaxSeqLen
	m := randModel(c, 9)
	const T = 2*initialPositions + 3
	tokens := randTokens(T, c.Vocab, 10)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	big := NewDecoder(m, MaxSeqLen)
	runtime.ReadMemStats(&after)
	// Sized by maxSeq, the caches alone would be 2·3·2^24·16 floats (6 GiB).
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("NewDecoder(m, 2^24) allocated %d bytes, want under 1 MiB", n)
	}
	exact := NewDecoder(m, T)
	for p, tok := range tokens {
		got, want := big.Step(tok, p), exact.Step(tok, p)
		if !slices.Equal(got, want) {
			t.Fatalf("position %d: logits of the growing decoder differ from the exactly sized one", p)
		}
	}
	if big.held >= 4*T {
		t.Errorf("after %d positions the caches hold %d", T, big.held)
	}
}
