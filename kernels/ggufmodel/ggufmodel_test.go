package ggufmodel

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"lrmc/internal/shareddata"
	"lrmc/kernels/gguf"
	"lrmc/kernels/llama"
	"lrmc/kernels/llama2c"
)

func randTokens(n, vocab int, seed uint64) []int32 {
	r := rand.New(rand.NewPCG(seed, 5))
	t := make([]int32, n)
	for i := range t {
		t[i] = int32(r.IntN(vocab))
	}
	return t
}

// relDiff is max|a−b| / max|b|.
func relDiff(a, b []float32) float64 {
	var diff, scale float64
	for i := range b {
		diff = math.Max(diff, math.Abs(float64(a[i])-float64(b[i])))
		scale = math.Max(scale, math.Abs(float64(b[i])))
	}
	return diff / scale
}

func identical(t *testing.T, what string, a, b []float32) {
	t.Helper()
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			t.Fatalf("%s: logit %d: %g vs %g", what, i, a[i], b[i])
		}
	}
}

func stories(t *testing.T) (*llama.Model, *Meta, *llama.Model) {
	t.Helper()
	g, meta, err := Load(shareddata.Path(t, "models", "stories260K", "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	bin, err := llama2c.Load(shareddata.Path(t, "models", "stories260K", "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	return g, meta, bin
}

// TestStories260K: the GGUF conversion of stories260K computes the llama2.c
// checkpoint's logits.
func TestStories260K(t *testing.T) {
	g, meta, bin := stories(t)
	if meta.Architecture != "llama" || meta.Name != "stories260K" || len(meta.Tokenizer) != 9 ||
		meta.Tokenizer[0].Key != "tokenizer.ggml.model" {
		t.Fatalf("meta %+v", meta)
	}
	c := g.Config
	if c.Dim != 64 || c.HiddenDim != 172 || c.Layers != 5 || c.Heads != 8 || c.KVHeads != 4 || c.Vocab != 512 ||
		c.SeqLen != 512 || c.NormEps != 1e-5 || c.RopeTheta != 10000 || c.HeadDim() != 8 || c.RopeStyle != llama.RopeInterleaved {
		t.Fatalf("config %+v", c)
	}
	// The file carries output.weight (a copy of the embedding), so the
	// classifier is not aliased, but it holds the same values.
	if c.SharedClassifier || !slices.Equal(g.Classifier, g.Embedding) {
		t.Fatal("output.weight is not the embedding's copy")
	}
	const b, T = 2, 24
	tokens := randTokens(b*T, 512, 1)
	got, want := g.Forward(tokens, b, T), bin.Forward(tokens, b, T)
	if d := relDiff(got, want); d > 1e-5 {
		t.Fatalf("GGUF logits differ from the .bin's by %.3g of their scale", d)
	} else {
		t.Logf("stories260K.gguf vs .bin: max relative logit difference %.3g", d)
	}
}

// TestSavePruned: a depth-pruned model written to GGUF loads back with
// identical logits and the metadata llama.cpp reads.
func TestSavePruned(t *testing.T) {
	g, meta, _ := stories(t)
	k, err := g.Keep([]int{0, 2, 4})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pruned.gguf")
	if err := Save(path, k, meta, "f32"); err != nil {
		t.Fatal(err)
	}
	back, bmeta, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	tokens := randTokens(20, 512, 2)
	identical(t, "pruned save/load", k.Forward(tokens, 1, 20), back.Forward(tokens, 1, 20))
	if !reflect.DeepEqual(back.Config, k.Config) {
		t.Errorf("config %+v, saved %+v", back.Config, k.Config)
	}
	if !slices.EqualFunc(bmeta.Tokenizer, meta.Tokenizer, func(a, b gguf.KV) bool { return a.Key == b.Key }) {
		t.Errorf("tokenizer keys not copied")
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for key, want := range map[string]uint32{
		"llama.block_count": 3, "llama.context_length": 512, "llama.embedding_length": 64, "llama.feed_forward_length": 172,
		"llama.attention.head_count": 8, "llama.attention.head_count_kv": 4, "llama.rope.dimension_count": 8,
		"general.file_type": 0, "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2,
	} {
		if got, err := f.Uint32(key); err != nil || got != want {
			t.Errorf("%s = %d, %v; want %d", key, got, err, want)
		}
	}
	if _, ok := f.Value("llama.attention.key_length"); ok {
		t.Error("key_length written although the head size is embedding_length/head_count")
	}
	if eps, _ := f.Float32("llama.attention.layer_norm_rms_epsilon"); eps != 1e-5 {
		t.Errorf("rms epsilon %g", eps)
	}
}

// TestHalfPrecision: f16 and bf16 files hold every weight matrix rounded to
// nearest — within half a unit in the last place of the format: 2^-11 and
// 2^-8 relative, or for f16's subnormals (below 2^-14) half its smallest
// step, 2^-25 — and the norms exactly, as F32.
func TestHalfPrecision(t *testing.T) {
	g, meta, _ := stories(t)
	for _, c := range []struct {
		dtype string
		typ   gguf.GGMLType
		ulp   float64 // relative half-ulp bound for normal values
		abs   float64 // absolute bound for subnormal ones
	}{{"f16", gguf.TypeF16, 0x1p-11, 0x1p-25}, {"bf16", gguf.TypeBF16, 0x1p-8, 0}} {
		path := filepath.Join(t.TempDir(), "m.gguf")
		if err := Save(path, g, meta, c.dtype); err != nil {
			t.Fatal(err)
		}
		back, _, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		var worst float64
		for i := range g.Layers {
			a, b := g.Layers[i], back.Layers[i]
			if !slices.Equal(a.AttnNorm, b.AttnNorm) || !slices.Equal(a.FFNNorm, b.FFNNorm) {
				t.Fatalf("%s: layer %d norms changed", c.dtype, i)
			}
			for _, p := range [][2][]float32{{a.Wq, b.Wq}, {a.Wk, b.Wk}, {a.Wv, b.Wv}, {a.Wo, b.Wo}, {a.W1, b.W1}, {a.W2, b.W2}, {a.W3, b.W3}} {
				for j, x := range p[0] {
					// worst is the error in units of the bound.
					bound := math.Max(c.ulp*math.Abs(float64(x)), c.abs)
					worst = math.Max(worst, math.Abs(float64(p[1][j])-float64(x))/bound)
				}
			}
		}
		if worst > 1 {
			t.Errorf("%s: rounding error is %.3g half-ulps", c.dtype, worst)
		}
		tokens := randTokens(16, 512, 3)
		d := relDiff(back.Forward(tokens, 1, 16), g.Forward(tokens, 1, 16))
		t.Logf("%s: max weight rounding %.3g half-ulps, logits differ by %.3g of their scale", c.dtype, worst, d)
		f, _ := gguf.Open(path)
		q, _ := f.Tensor("blk.0.attn_q.weight")
		n, _ := f.Tensor("blk.0.attn_norm.weight")
		f.Close()
		if q.Type != c.typ || n.Type != gguf.TypeF32 {
			t.Errorf("%s: attn_q stored as %s, attn_norm as %s", c.dtype, q.Type, n.Type)
		}
		if d > 0.02 {
			t.Errorf("%s: logits moved by %.3g of their scale", c.dtype, d)
		}
	}
}

// randModel is a small random model with the given options.
func randModel(c llama.Config, seed uint64) *llama.Model {
	r := rand.New(rand.NewPCG(seed, 9))
	vec := func(n int, mean, scale float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(mean + scale*r.NormFloat64())
		}
		return v
	}
	d, q, kv, h, hd := c.Dim, c.QDim(), c.KVDim(), c.HiddenDim, c.HeadDim()
	s := 1 / math.Sqrt(float64(d))
	m := &llama.Model{Config: c, Embedding: vec(c.Vocab*d, 0, 1), FinalNorm: vec(d, 1, 0.2)}
	for range c.Layers {
		l := llama.Layer{AttnNorm: vec(d, 1, 0.2), Wq: vec(q*d, 0, s), Wk: vec(kv*d, 0, s), Wv: vec(kv*d, 0, s),
			Wo: vec(d*q, 0, 1/math.Sqrt(float64(q))), FFNNorm: vec(d, 1, 0.2),
			W1: vec(h*d, 0, s), W3: vec(h*d, 0, s), W2: vec(d*h, 0, 1/math.Sqrt(float64(h)))}
		if c.QKVBias {
			l.Bq, l.Bk, l.Bv = vec(q, 0, 0.5), vec(kv, 0, 0.5), vec(kv, 0, 0.5)
		}
		if c.QKNorm {
			l.QNorm, l.KNorm = vec(hd, 1, 0.2), vec(hd, 1, 0.2)
		}
		m.Layers = append(m.Layers, l)
	}
	m.Classifier = m.Embedding
	if !c.SharedClassifier {
		m.Classifier = vec(c.Vocab*d, 0, s)
	}
	return m
}

// TestQwenRoundTrip: qwen2 (biases) and qwen3 (q/k norms, head size 16 in a
// 32-wide model) files keep the rotate-half layout, so the weights come
// back bit for bit and the logits identical; a rotate-half model written as
// llama is permuted to adjacent pairs and computes the same function.
func TestQwenRoundTrip(t *testing.T) {
	base := llama.Config{Dim: 32, HiddenDim: 40, Layers: 2, Heads: 4, KVHeads: 2, Vocab: 30, SeqLen: 64,
		NormEps: 1e-6, RopeTheta: 1e6, RopeStyle: llama.RopeHalf}
	qwen2, qwen3 := base, base
	qwen2.QKVBias, qwen2.HeadSize = true, 8
	qwen3.QKNorm, qwen3.HeadSize, qwen3.SharedClassifier = true, 16, true
	for arch, c := range map[string]llama.Config{"qwen2": qwen2, "qwen3": qwen3, "llama": base} {
		m := randModel(c, 4)
		path := filepath.Join(t.TempDir(), arch+".gguf")
		if err := Save(path, m, &Meta{Architecture: arch}, "f32"); err != nil {
			t.Fatal(err)
		}
		back, meta, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		tokens := randTokens(12, c.Vocab, 5)
		want, got := m.Forward(tokens, 1, 12), back.Forward(tokens, 1, 12)
		if meta.Architecture != arch || back.Config.SharedClassifier != c.SharedClassifier || back.Config.HeadDim() != c.HeadDim() {
			t.Fatalf("%s: loaded %+v", arch, back.Config)
		}
		if arch == "llama" {
			if back.Config.RopeStyle != llama.RopeInterleaved {
				t.Fatalf("llama loaded with %v RoPE", back.Config.RopeStyle)
			}
			if d := relDiff(got, want); d > 1e-5 {
				t.Fatalf("llama: permuted model's logits differ by %.3g of their scale", d)
			} else {
				t.Logf("rotate-half model saved as GGUF llama: max relative logit difference %.3g", d)
			}
			continue
		}
		identical(t, arch, got, want)
		if !slices.Equal(back.Layers[1].Wq, m.Layers[1].Wq) {
			t.Fatalf("%s: q rows permuted", arch)
		}
	}
}

func TestErrors(t *testing.T) {
	g, meta, _ := stories(t)
	dir := t.TempDir()
	write := func(name string, kvs []gguf.KV, ts []gguf.Tensor) string {
		p := filepath.Join(dir, name)
		if err := gguf.WriteFile(p, kvs, ts); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := filepath.Join(dir, "good.gguf")
	if err := Save(good, g, meta, "f32"); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(good)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kvs, ts := f.Metadata, f.Tensors

	edit := func(key string, v any) []gguf.KV {
		out := slices.Clone(kvs)
		for i := range out {
			if out[i].Key == key {
				out[i].Value = v
			}
		}
		return out
	}
	p := write("gpt2.gguf", edit("general.architecture", "gpt2"), ts)
	check := func(p, want string) {
		t.Helper()
		if _, _, err := Load(p); err == nil || err.Error() != want {
			t.Errorf("got  %v\nwant %s", err, want)
		}
	}
	check(p, "ggufmodel: "+p+`: architecture "gpt2" is not supported (supported: llama, qwen2, qwen3, deci)`)

	p = write("missing.gguf", kvs, slices.DeleteFunc(slices.Clone(ts), func(x gguf.Tensor) bool { return x.Name == "blk.3.ffn_up.weight" }))
	check(p, "ggufmodel: "+p+`: tensor "blk.3.ffn_up.weight" is missing (llama with 5 blocks)`)

	p = write("fewer.gguf", edit("llama.block_count", uint32(4)), ts)
	check(p, "ggufmodel: "+p+`: unexpected tensor "blk.4.attn_norm.weight": not part of a llama model with this metadata`)

	p = write("ffn.gguf", edit("llama.feed_forward_length", uint32(170)), ts)
	check(p, "ggufmodel: "+p+`: tensor "blk.0.ffn_gate.weight" has shape [172 64], the metadata implies [170 64]`)

	p = write("rope.gguf", edit("llama.rope.dimension_count", uint32(4)), ts)
	check(p, "ggufmodel: "+p+": rope.dimension_count 4 is not the head size 8 (partial rotary embedding is not supported)")

	// Hostile sizes fail in ReadConfig, before the planner plans a node per
	// block or anything allocates by them.
	for _, c := range []struct {
		key string
		v   uint32
	}{{"llama.block_count", 1e9}, {"llama.context_length", 1<<31 - 1}, {"llama.embedding_length", 1 << 30}} {
		p := write("hostile.gguf", edit(c.key, c.v), ts)
		want := fmt.Sprintf("ggufmodel: %s: %s is %d, more than the limit of ", p, c.key, c.v)
		if _, _, err := ReadConfig(p); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s = %d:\n got %v\nwant %s…", c.key, c.v, err, want)
		}
	}

	if err := Save(filepath.Join(dir, "x.gguf"), g, &Meta{Architecture: "qwen3"}, "f32"); err == nil ||
		err.Error() != "ggufmodel: save "+filepath.Join(dir, "x.gguf")+": architecture qwen3 cannot express a model with QKNorm=false" {
		t.Errorf("saving llama as qwen3: %v", err)
	}
}

// TestLlama3RopeFreqs: Llama 3.x rope scaling travels as llama.cpp's
// rope_freqs divisors. For Llama 3.1 8B's settings the divisors turn the
// plain frequencies into transformers' llama3 ones (a float64 rendering of
// _compute_llama3_parameters); a scaled model saved to GGUF comes back
// with the same RopeScaling and logits; divisors of another shape of
// scaling are refused.
func TestLlama3RopeFreqs(t *testing.T) {
	c := llama.Config{Dim: 4096, Heads: 32, RopeTheta: 500000,
		RopeScaling: llama.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}}
	var smoothed int
	for i, d := range llama3Divisors(c) {
		f := math.Pow(500000, -float64(2*i)/128)
		want := f
		switch wl := 2 * math.Pi / f; {
		case wl > 8192:
			want = f / 8
		case wl >= 2048:
			s := (8192/wl - 1) / 3
			want = (1-s)*f/8 + s*f
			smoothed++
		}
		if got := f / float64(d); math.Abs(got-want) > 1e-6*want {
			t.Errorf("pair %d: frequency/divisor %g, transformers' llama3 %g", i, got, want)
		}
	}
	if smoothed != 6 {
		t.Errorf("%d smoothed pairs, want 6", smoothed)
	}

	// Head size 8 with theta 5e5: wavelengths 6.3, 167, 4441 and 1.2e5,
	// so one pair of each kind and two kept.
	mc := llama.Config{Dim: 32, HiddenDim: 40, Layers: 2, Heads: 4, KVHeads: 2, Vocab: 30, SeqLen: 64,
		NormEps: 1e-5, RopeTheta: 500000, RopeStyle: llama.RopeHalf, RopeScaling: c.RopeScaling}
	m := randModel(mc, 6)
	path := filepath.Join(t.TempDir(), "llama31.gguf")
	if err := Save(path, m, nil, "f32"); err != nil {
		t.Fatal(err)
	}
	back, _, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Config.RopeScaling != mc.RopeScaling {
		t.Fatalf("rope scaling %+v, saved %+v", back.Config.RopeScaling, mc.RopeScaling)
	}
	tokens := randTokens(40, mc.Vocab, 7)
	if d := relDiff(back.Forward(tokens, 1, 40), m.Forward(tokens, 1, 40)); d > 1e-5 {
		t.Fatalf("logits differ by %.3g of their scale", d)
	}

	// Divisors that are not llama3's.
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ts := slices.Clone(f.Tensors)
	for i := range ts {
		if ts[i].Name == ropeFreqsName {
			ts[i], _ = gguf.FromFloat32(ropeFreqsName, gguf.TypeF32, []int{4}, []float32{1, 2, 4, 8})
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.gguf")
	err = gguf.WriteFile(bad, f.Metadata, ts)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := "ggufmodel: " + bad + ": rope_freqs.weight[1] is 2, but llama3 scaling (factor 8, low_freq_factor 1, high_freq_factor 4, original context 8192) gives 1; other rope factors are not supported"
	if _, _, err := Load(bad); err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	other := mc
	other.RopeScaling.OriginalMaxPositions = 4096
	if err := Save(bad, randModel(other, 1), nil, "f32"); err == nil || !strings.Contains(err.Error(), "is not Llama 3's") {
		t.Errorf("saving non-Llama-3 scaling: %v", err)
	}
}

func TestReadConfig(t *testing.T) {
	g, _, _ := stories(t)
	c, meta, err := ReadConfig(shareddata.Path(t, "models", "stories260K", "stories260K.gguf"))
	if err != nil || !reflect.DeepEqual(c, g.Config) || meta.Architecture != "llama" {
		t.Fatalf("ReadConfig: %+v, %+v, %v; Load's config %+v", c, meta, err, g.Config)
	}
}

// TestLoadDType: a GGUF file loaded 16-bit holds Load's values rounded to
// that type (exactly the stored ones when the file has that type), computes
// what its widened model computes bit for bit, and saves back in its own
// type byte for byte.
func TestLoadDType(t *testing.T) {
	g, meta, _ := stories(t)
	for _, c := range []struct {
		save string
		dt   llama.DType
	}{{"bf16", llama.BFloat16}, {"f16", llama.Float16}} {
		path := filepath.Join(t.TempDir(), "m.gguf")
		if err := Save(path, g, meta, c.save); err != nil {
			t.Fatal(err)
		}
		f32, _, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		m, _, err := LoadDType(path, "auto")
		if err != nil {
			t.Fatal(err)
		}
		if m.DType() != c.dt {
			t.Fatalf("%s file loaded with auto: dtype %s", c.save, m.DType())
		}
		tokens := randTokens(16, 512, 3)
		identical(t, c.save+" kept 16-bit vs widened on load", m.Forward(tokens, 1, 16), f32.Forward(tokens, 1, 16))
		// The other 16-bit type: the float32 values rounded.
		other := map[llama.DType]llama.DType{llama.BFloat16: llama.Float16, llama.Float16: llama.BFloat16}[c.dt]
		o, _, err := LoadDType(path, string(other))
		if err != nil {
			t.Fatal(err)
		}
		want, err := f32.WithDType(other)
		if err != nil {
			t.Fatal(err)
		}
		identical(t, c.save+" loaded as "+string(other), o.Forward(tokens, 1, 16), want.Forward(tokens, 1, 16))

		again := filepath.Join(t.TempDir(), "again.gguf")
		if err := Save(again, m, meta, c.save); err != nil {
			t.Fatal(err)
		}
		a, _ := os.ReadFile(path)
		b, _ := os.ReadFile(again)
		if !bytes.Equal(a, b) {
			t.Fatalf("%s: a 16-bit model saved in its own type is not the file it came from", c.save)
		}
	}
	// stories260K.gguf is float32: auto keeps it so.
	if m, _, err := LoadDType(shareddata.Path(t, "models", "stories260K", "stories260K.gguf"), "auto"); err != nil || m.DType() != llama.Float32 {
		t.Fatalf("float32 file loaded with auto: %v", err)
	}
}
