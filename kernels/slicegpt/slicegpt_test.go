package slicegpt

import (
	"context"
	"lrmc/internal/stories"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"lrmc/kernels/llama"
	"lrmc/kernels/perplexity"
	"lrmc/kernels/safetensors"
	"lrmc/kernels/synth"
)

// storiesSplit loads stories260K and its tokenizer's encoding of the TinyStories
// validation text: the first `calib` tokens for calibration, the next
// `eval` tokens held out.
func storiesSplit(t testing.TB, calib, eval int) (*llama.Model, []int32, []int32) {
	t.Helper()
	m, ids := stories.Load(t, 6*(calib+eval), calib+eval)
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
		{"stories260K", func(t testing.TB) *llama.Model { m, _, _ := storiesSplit(t, 0, 0); return m }},
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

// TestWidth: d' = int((1−s)·d) rounded down to a multiple of 8, as
// run_slicegpt.py computes new_embedding_dimension.
func TestWidth(t *testing.T) {
	for _, c := range []struct {
		d     int
		s     float64
		round int
		want  int
	}{
		{64, 0, 8, 64}, {64, 0.2, 8, 48}, {64, 0.25, 8, 48}, {64, 0.4, 8, 32},
		{64, 0.1, 8, 56}, {64, 0.125, 8, 56}, {64, 0.126, 8, 48},
		{1024, 0.2, 8, 816}, {1024, 0.25, 8, 768}, {1024, 0.3, 8, 712}, {1024, 0.4, 8, 608},
		{4096, 0.3, 8, 2864}, {896, 0.25, 8, 672}, {2048, 0.2, 8, 1632},
		{1000, 0.4, 8, 600}, // (1−0.4)·1000 is 600 in float64, not 599.99…
		{64, 0.2, 1, 51}, {64, 0.2, 16, 48},
	} {
		got, err := Width(c.d, c.s, c.round)
		if err != nil || got != c.want {
			t.Errorf("Width(%d, %g, %d) = %d, %v; want %d", c.d, c.s, c.round, got, err, c.want)
		}
	}
	for _, c := range []struct {
		d     int
		s     float64
		round int
		msg   string
	}{
		{64, 1, 8, "slicing ratio 1 outside [0, 1)"},
		{64, -0.1, 8, "slicing ratio -0.1 outside [0, 1)"},
		{64, math.NaN(), 8, "outside [0, 1)"},
		{64, 0.2, 0, "round interval 0"},
		{8, 0.2, 8, "leaves no dimension of the 8-wide residual stream"},
	} {
		if _, err := Width(c.d, c.s, c.round); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("Width(%d, %g, %d): error %v, want one containing %q", c.d, c.s, c.round, err, c.msg)
		}
	}
}

// TestPCA checks Cov against a plain float64 sum of outer products, and
// PCA's Q: orthonormal, QᵀHQ diagonal with the returned eigenvalues,
// sorted descending, on rows drawn with a known, anisotropic covariance.
func TestPCA(t *testing.T) {
	const d, rows = 24, 1000
	r := rand.New(rand.NewPCG(9, 9))
	// x = (z ⊙ σ)·R: independent N(0, σ_i²) coordinates, σ_i = i+1 but
	// a well separated σ = 60 last, turned by a random rotation R, so
	// H ≈ rows·Rᵀ·diag(σ²)·R.
	sigma := func(i int) float64 {
		if i == d-1 {
			return 60
		}
		return float64(i + 1)
	}
	g := make([]float64, d*d)
	for i := range g {
		g[i] = r.NormFloat64()
	}
	var qr mat.QR
	qr.Factorize(mat.NewDense(d, d, g))
	var rot mat.Dense
	qr.QTo(&rot)
	x := make([]float32, rows*d)
	z := make([]float64, d)
	for n := range rows {
		for i := range z {
			z[i] = r.NormFloat64() * sigma(i)
		}
		for j := range d {
			var s float64
			for i := range d {
				s += z[i] * rot.At(i, j)
			}
			x[n*d+j] = float32(s)
		}
	}
	c := NewCov(d)
	c.Add(x[:300*d]) // in two calls, across a block boundary
	c.Add(x[300*d:])
	ref := make([]float64, d*d)
	for n := range rows {
		for i := range d {
			for j := range d {
				ref[i*d+j] += float64(x[n*d+i]) * float64(x[n*d+j])
			}
		}
	}
	for i := range ref {
		if math.Abs(c.Sum[i]-ref[i]) > 1e-9*math.Abs(ref[i])+1e-9 {
			t.Fatalf("H[%d,%d] = %g, float64 reference %g", i/d, i%d, c.Sum[i], ref[i])
		}
	}
	if c.Rows != rows {
		t.Fatalf("rows %d", c.Rows)
	}
	vals, q, err := c.PCA()
	if err != nil {
		t.Fatal(err)
	}
	h := mat.NewDense(d, d, ref)
	var qtq, qthq, tmp mat.Dense
	qtq.Mul(q.T(), q)
	tmp.Mul(h, q)
	qthq.Mul(q.T(), &tmp)
	scale := vals[0]
	for i := range d {
		for j := range d {
			want := 0.0
			if i == j {
				want = 1
			}
			if e := math.Abs(qtq.At(i, j) - want); e > 1e-12 {
				t.Fatalf("QᵀQ[%d,%d] = %g, want %g", i, j, qtq.At(i, j), want)
			}
			want = 0
			if i == j {
				want = vals[i]
			}
			if e := math.Abs(qthq.At(i, j) - want); e > 1e-10*scale {
				t.Fatalf("QᵀHQ[%d,%d] = %g, want %g", i, j, qthq.At(i, j), want)
			}
		}
		if i > 0 && vals[i] > vals[i-1] {
			t.Fatalf("eigenvalues not descending: λ%d = %g > λ%d = %g", i, vals[i], i-1, vals[i-1])
		}
	}
	if !(vals[d-1] > 0) || vals[0]/vals[d-1] < 100 {
		t.Fatalf("eigenvalues %g … %g: the test data is not anisotropic", vals[0], vals[d-1])
	}
	// The leading component is the direction of σ = 60: row d−1 of R, up
	// to sign.
	var dot float64
	for j := range d {
		dot += q.At(j, 0) * rot.At(d-1, j)
	}
	if math.Abs(dot) < 0.99 {
		t.Fatalf("leading eigenvector · the σ=60 direction = %g, want ±1", dot)
	}
	if _, _, err := NewCov(4).PCA(); err == nil || !strings.Contains(err.Error(), "no calibration rows") {
		t.Fatalf("PCA of nothing: %v", err)
	}
}

// randomBasis is the baseline the PCA must beat: a rotation drawn at
// random (QR of a Gaussian matrix), whatever the activations.
func randomBasis(seed uint64) basisFunc {
	r := rand.New(rand.NewPCG(seed, 1))
	return func(c *Cov) ([]float64, *mat.Dense, error) {
		d := c.Dim
		g := make([]float64, d*d)
		for i := range g {
			g[i] = r.NormFloat64()
		}
		var qr mat.QR
		qr.Factorize(mat.NewDense(d, d, g))
		var q mat.Dense
		qr.QTo(&q)
		return make([]float64, d), &q, nil
	}
}

func ppl(t testing.TB, forward func([]int32, int, int) []float32, vocab int, eval []int32, seq int) float64 {
	t.Helper()
	ws, err := perplexity.Windows(eval, 0, seq)
	if err != nil {
		t.Fatal(err)
	}
	var acc perplexity.Accumulator
	for _, w := range ws {
		acc.AddWindow(forward(w, 1, seq), w, vocab)
	}
	return acc.Perplexity()
}

// TestStoriesPerplexity slices stories260K by a quarter (d 64 → 48) with
// TinyStories calibration and measures held-out perplexity: finite, worse
// than the dense model's, and better than slicing the same widths along a
// random rotation instead of the principal components.
func TestStoriesPerplexity(t *testing.T) {
	const seq = 128
	m, calib, eval := storiesSplit(t, 64*seq, 16*seq)
	ctx := context.Background()
	sm, st, err := Slice(ctx, m, calib, seq, nil, Options{Sparsity: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	rm, _, err := slice(ctx, m, calib, seq, nil, Options{Sparsity: 0.25}, randomBasis(4))
	if err != nil {
		t.Fatal(err)
	}
	dense := ppl(t, m.Forward, m.Config.Vocab, eval, seq)
	sliced := ppl(t, sm.Forward, m.Config.Vocab, eval, seq)
	random := ppl(t, rm.Forward, m.Config.Vocab, eval, seq)
	t.Logf("stories260K held-out perplexity: dense %.3f, SliceGPT s=0.25 (d'=%d, %d → %d params) %.3f, random rotation %.3f",
		dense, sm.Width, m.Config.Params(), sm.Params(), sliced, random)
	t.Logf("variance kept: embedding %.4f, attention %.4v, block outputs %.4v", st.Embedding, st.Attn, st.MLP)
	if sm.Width != 48 {
		t.Fatalf("width %d, want 48", sm.Width)
	}
	if math.IsNaN(sliced) || math.IsInf(sliced, 0) || !(sliced > dense) || !(sliced < random) {
		t.Fatalf("perplexity dense %g, sliced %g, random %g: want dense < sliced < random", dense, sliced, random)
	}
	if st.Embedding <= 0.75 || st.Embedding >= 1 {
		t.Fatalf("PCA keeps %g of the embedding variance in 48 of 64 coordinates; more than 48/64 expected", st.Embedding)
	}
}

// TestDeterministic: slicing twice, and with another thread count, gives
// bit-identical weights; a precomputed input covariance gives the same
// model as one computed inside Slice.
func TestDeterministic(t *testing.T) {
	m := qwen3(t)
	const seq = 64
	r := rand.New(rand.NewPCG(3, 4))
	calib := make([]int32, 8*seq)
	for i := range calib {
		calib[i] = int32(r.IntN(m.Config.Vocab))
	}
	ctx := context.Background()
	opt := Options{Sparsity: 0.3}
	a, _, err := Slice(ctx, m, calib, seq, nil, opt)
	if err != nil {
		t.Fatal(err)
	}
	prev := runtime.GOMAXPROCS(1)
	in0, err := InputCovariance(ctx, m, calib, seq)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := Slice(ctx, m, calib, seq, in0, opt)
	runtime.GOMAXPROCS(prev)
	if err != nil {
		t.Fatal(err)
	}
	if a.Width != 40 {
		t.Fatalf("width %d, want 40", a.Width)
	}
	ta, tb := a.tensors(), b.tensors()
	if len(ta) != len(tb) {
		t.Fatalf("%d vs %d tensors", len(ta), len(tb))
	}
	for i := range ta {
		if ta[i].name != tb[i].name || !slices.Equal(ta[i].data, tb[i].data) {
			t.Fatalf("tensor %s differs between two slicings", ta[i].name)
		}
	}
}

// TestSliceErrors: bad inputs are refused with the reason.
func TestSliceErrors(t *testing.T) {
	m := qwen3(t)
	ctx := context.Background()
	toks := make([]int32, 64)
	for _, c := range []struct {
		toks []int32
		seq  int
		in0  *Cov
		opt  Options
		msg  string
	}{
		{toks[:60], 32, nil, Options{}, "calibration needs whole windows: 60 tokens in windows of 32"},
		{append(slices.Clone(toks[:63]), 128), 32, nil, Options{}, "calibration token 128 at index 63 outside the model's vocabulary [0, 128)"},
		{toks, 32, NewCov(8), Options{}, "input covariance is 8 wide, the model 64"},
		{toks, 32, nil, Options{Sparsity: 1}, "slicing ratio 1 outside [0, 1)"},
	} {
		if _, _, err := Slice(ctx, m, c.toks, c.seq, c.in0, c.opt); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("error %v, want one containing %q", err, c.msg)
		}
	}
}

// TestSaveLoad: a saved sliced model loads back with identical logits
// (float32) or within bfloat16 rounding, and says that standard tools
// cannot read it; damaged saves fail naming the file and the tensor.
func TestSaveLoad(t *testing.T) {
	m := qwen3(t)
	const seq = 32
	r := rand.New(rand.NewPCG(7, 8))
	calib := make([]int32, 4*seq)
	for i := range calib {
		calib[i] = int32(r.IntN(m.Config.Vocab))
	}
	sm, _, err := Slice(context.Background(), m, calib, seq, nil, Options{Sparsity: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := Save(dir, sm, safetensors.DTypeF32); err != nil {
		t.Fatal(err)
	}
	if !IsSaved(dir) || IsSaved(t.TempDir()) {
		t.Fatal("IsSaved")
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := sm.Forward(calib[:2*seq], 2, seq)
	if got := back.Forward(calib[:2*seq], 2, seq); !slices.Equal(got, want) {
		t.Fatalf("logits after a float32 round trip differ by %g", maxAbsDiff(got, want))
	}
	if back.Width != 48 || back.Sparsity != 0.2 || back.Params() != sm.Params() || !reflect.DeepEqual(back.Config, sm.Config) {
		t.Fatalf("loaded width %d, sparsity %g, params %d, config %+v", back.Width, back.Sparsity, back.Params(), back.Config)
	}
	cfg, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
	readme, _ := os.ReadFile(filepath.Join(dir, ReadmeFile))
	for _, b := range [][]byte{cfg, readme} {
		if !strings.Contains(string(b), "transformers and llama.cpp cannot load it") {
			t.Fatalf("saved files do not say that standard tools cannot load them:\n%s", b)
		}
	}
	if !strings.Contains(string(cfg), `"format": "lrmc-slicegpt"`) {
		t.Fatalf("config does not name the format:\n%s", cfg)
	}

	bdir := t.TempDir()
	if err := Save(bdir, sm, safetensors.DTypeBF16); err != nil {
		t.Fatal(err)
	}
	b16, err := Load(bdir)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(b16.Forward(calib[:seq], 1, seq), want[:seq*m.Config.Vocab]); d == 0 || d > 0.5 {
		t.Fatalf("bfloat16 round trip: logits differ by %g, want rounding-sized and nonzero", d)
	}

	// Damage: a tensor of the wrong shape, a missing one, another format.
	bad := func(edit func(dir string)) error {
		d := t.TempDir()
		if err := Save(d, sm, safetensors.DTypeF32); err != nil {
			t.Fatal(err)
		}
		edit(d)
		_, err := Load(d)
		return err
	}
	rewrite := func(drop, reshape string) func(string) {
		return func(d string) {
			var ts []safetensors.Tensor
			for _, n := range sm.tensors() {
				switch n.name {
				case drop:
					continue
				case reshape:
					ts = append(ts, safetensors.F32(n.name, []int{len(n.data)}, n.data))
				default:
					ts = append(ts, safetensors.F32(n.name, n.shape, n.data))
				}
			}
			if err := safetensors.WriteFile(filepath.Join(d, WeightsFile), ts, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		edit func(string)
		msg  string
	}{
		{rewrite("layers.1.mlp_shortcut", ""), "slicegpt.safetensors: tensor layers.1.mlp_shortcut is missing"},
		{rewrite("", "layers.0.attn_shortcut"), "tensor layers.0.attn_shortcut has shape [2304], want [48 48]"},
		{func(d string) {
			os.WriteFile(filepath.Join(d, ConfigFile), []byte(strings.Replace(string(cfg), `"lrmc-slicegpt"`, `"other"`, 1)), 0o644)
		}, `slicegpt.json: format is "other", want "lrmc-slicegpt"`},
		{func(d string) {
			os.WriteFile(filepath.Join(d, ConfigFile), []byte(strings.Replace(string(cfg), `"mid": 48`, `"mid": 4096`, 1)), 0o644)
		}, "layers[0].mid is 4096, outside [1, dense.dim = 64]"},
		{func(d string) { os.Remove(filepath.Join(d, ConfigFile)) }, "no slicegpt.json: not a saved SliceGPT model"},
	} {
		if err := bad(c.edit); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("load error %v, want one containing %q", err, c.msg)
		}
	}
}

// TestCodecs: the cache's encodings of a sliced model and of a covariance
// decode to equal values.
func TestCodecs(t *testing.T) {
	m := qwen3(t)
	const seq = 32
	calib := make([]int32, 2*seq)
	for i := range calib {
		calib[i] = int32(i % m.Config.Vocab)
	}
	ctx := context.Background()
	in0, err := InputCovariance(ctx, m, calib, seq)
	if err != nil {
		t.Fatal(err)
	}
	b, err := EncodeCov(in0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := DecodeCov(b)
	if err != nil || c.Dim != in0.Dim || c.Rows != 2*seq || !slices.Equal(c.Sum, in0.Sum) {
		t.Fatalf("covariance round trip: %v", err)
	}
	sm, _, err := Slice(ctx, m, calib, seq, c, Options{Sparsity: 0.4})
	if err != nil {
		t.Fatal(err)
	}
	mb, err := Encode(sm)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(mb)
	if err != nil {
		t.Fatal(err)
	}
	if back.Width != 32 || !slices.Equal(back.Forward(calib[:seq], 1, seq), sm.Forward(calib[:seq], 1, seq)) {
		t.Fatal("decoded model computes other logits")
	}
	if _, err := Decode(b); err == nil || !strings.Contains(err.Error(), "not an encoded sliced model") {
		t.Fatalf("decoding a covariance as a model: %v", err)
	}
}

// TestDecoder: token-by-token decoding, and a batched prefill followed by
// steps, give the prefill's logits at every position (to rounding: the
// attention sums in another order).
func TestDecoder(t *testing.T) {
	m := qwen3(t)
	const seq = 24
	calib := make([]int32, 4*seq)
	r := rand.New(rand.NewPCG(2, 2))
	for i := range calib {
		calib[i] = int32(r.IntN(m.Config.Vocab))
	}
	sm, _, err := Slice(context.Background(), m, calib, seq, nil, Options{Sparsity: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	toks := calib[:seq]
	v := m.Config.Vocab
	want := sm.Forward(toks, 1, seq)
	d := NewDecoder(sm, 128)
	for p, tok := range toks {
		if diff := maxAbsDiff(d.Step(tok, p), want[p*v:(p+1)*v]); diff > 1e-4 {
			t.Fatalf("step %d: logits differ from the prefill's by %g", p, diff)
		}
	}
	d = NewDecoder(sm, 128)
	if diff := maxAbsDiff(d.Prefill(toks[:10]), want[9*v:10*v]); diff > 1e-4 {
		t.Fatalf("prefill: logits differ by %g", diff)
	}
	for p := 10; p < seq; p++ {
		if diff := maxAbsDiff(d.Step(toks[p], p), want[p*v:(p+1)*v]); diff > 1e-4 {
			t.Fatalf("step %d after prefill: logits differ by %g", p, diff)
		}
	}
}

// recordingBasis is PCA that remembers every basis it returns, in the
// order slice asks: the embedding's, then per block the attention
// output's and the block output's.
func recordingBasis(qs *[]*mat.Dense) basisFunc {
	return func(c *Cov) ([]float64, *mat.Dense, error) {
		v, q, err := c.PCA()
		*qs = append(*qs, q)
		return v, q, err
	}
}

// projectedReference is the dense model computed in float64 with the
// residual stream projected, after the embedding and after each residual
// addition, onto the span of the kept principal directions (P = Q_kQ_kᵀ
// for the first k columns of that point's basis; the last block's output
// is not projected). This is what SliceGPT's sliced model computes,
// written in the dense basis: the rotations, the sliced rows and columns
// and the shortcut matrices are only its coordinates. The RMSNorms see
// the projected vector, whose norm is that of its kept coordinates, over
// the dense width d.
func projectedReference(m *llama.Model, qs []*mat.Dense, keep int, toks []int32) []float64 {
	c := m.Config
	d, qd, kvd, hd, hid, t := c.Dim, c.QDim(), c.KVDim(), c.HeadDim(), c.HiddenDim, len(toks)
	eps := float64(c.NormEps)
	project := func(x []float64, q *mat.Dense, k int) {
		coef := make([]float64, k)
		for j := range k {
			for i := range d {
				coef[j] += x[i] * q.At(i, j)
			}
		}
		for i := range d {
			var s float64
			for j := range k {
				s += q.At(i, j) * coef[j]
			}
			x[i] = s
		}
	}
	norm := func(x []float64, w []float32) []float64 {
		var ss float64
		for _, v := range x {
			ss += v * v
		}
		r := 1 / math.Sqrt(ss/float64(len(x))+eps)
		out := make([]float64, len(x))
		for i, v := range x {
			out[i] = v * r * float64(w[i])
		}
		return out
	}
	lin := func(w []float32, x []float64, rows int) []float64 {
		cols := len(x)
		out := make([]float64, rows)
		for r := range rows {
			for j := range cols {
				out[r] += float64(w[r*cols+j]) * x[j]
			}
		}
		return out
	}
	rope := func(v []float64, pos int) {
		freqs := llama.RopeFreqs(c)
		half := hd / 2
		for h := 0; h < len(v); h += hd {
			for i := range half {
				a, b := h+2*i, h+2*i+1
				if c.RopeStyle == llama.RopeHalf {
					a, b = h+i, h+i+half
				}
				ang := float64(pos) * float64(freqs[i])
				cs, sn := math.Cos(ang), math.Sin(ang)
				v0, v1 := v[a], v[b]
				v[a], v[b] = v0*cs-v1*sn, v0*sn+v1*cs
			}
		}
	}
	xs := make([][]float64, t)
	for p, tok := range toks {
		x := make([]float64, d)
		for i := range d {
			x[i] = float64(m.Embedding[int(tok)*d+i])
		}
		project(x, qs[0], keep)
		xs[p] = x
	}
	for li := range m.Layers {
		l := &m.Layers[li]
		ks, vs := make([][]float64, t), make([][]float64, t)
		qv := make([][]float64, t)
		for p := range t {
			n := norm(xs[p], l.AttnNorm)
			q, k, v := lin(l.Wq, n, qd), lin(l.Wk, n, kvd), lin(l.Wv, n, kvd)
			if c.QKVBias {
				for i := range q {
					q[i] += float64(l.Bq[i])
				}
				for i := range k {
					k[i] += float64(l.Bk[i])
					v[i] += float64(l.Bv[i])
				}
			}
			if c.QKNorm {
				for h := 0; h < qd; h += hd {
					copy(q[h:h+hd], norm(q[h:h+hd], l.QNorm))
				}
				for h := 0; h < kvd; h += hd {
					copy(k[h:h+hd], norm(k[h:h+hd], l.KNorm))
				}
			}
			rope(q, p)
			rope(k, p)
			qv[p], ks[p], vs[p] = q, k, v
		}
		group := c.Heads / c.KVHeads
		for p := range t {
			att := make([]float64, qd)
			for h := range c.Heads {
				kh := (h / group) * hd
				sc := make([]float64, p+1)
				mx := math.Inf(-1)
				for s := range p + 1 {
					for i := range hd {
						sc[s] += qv[p][h*hd+i] * ks[s][kh+i]
					}
					sc[s] /= math.Sqrt(float64(hd))
					mx = max(mx, sc[s])
				}
				var z float64
				for s := range sc {
					sc[s] = math.Exp(sc[s] - mx)
					z += sc[s]
				}
				for s := range sc {
					for i := range hd {
						att[h*hd+i] += sc[s] / z * vs[s][kh+i]
					}
				}
			}
			o := lin(l.Wo, att, d)
			h := make([]float64, d)
			for i := range d {
				h[i] = xs[p][i] + o[i]
			}
			project(h, qs[1+2*li], keep)
			n := norm(h, l.FFNNorm)
			g, u := lin(l.W1, n, hid), lin(l.W3, n, hid)
			for i := range g {
				g[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
			}
			down := lin(l.W2, g, d)
			for i := range d {
				h[i] += down[i]
			}
			if li < len(m.Layers)-1 {
				project(h, qs[2+2*li], keep)
			}
			xs[p] = h
		}
	}
	var logits []float64
	for p := range t {
		logits = append(logits, lin(m.Classifier, norm(xs[p], m.FinalNorm), c.Vocab)...)
	}
	return logits
}

// TestSlicedEqualsProjectedDense: at s = 0.25 the sliced model's logits
// equal an independent float64 computation of the dense model with its
// residual stream projected onto the kept principal subspaces, for a
// llama2.c model (interleaved rotary pairs, real norms) and a Qwen3-shaped
// one (per-head q/k norms, wide heads, tied embedding).
func TestSlicedEqualsProjectedDense(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    func(testing.TB) *llama.Model
	}{
		{"stories260K", func(t testing.TB) *llama.Model { m, _, _ := storiesSplit(t, 0, 0); return m }},
		{"qwen3-synthetic", qwen3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.m(t)
			const seq = 32
			r := rand.New(rand.NewPCG(11, 12))
			calib := make([]int32, 6*seq)
			for i := range calib {
				calib[i] = int32(r.IntN(m.Config.Vocab))
			}
			var qs []*mat.Dense
			sm, _, err := slice(context.Background(), m, calib, seq, nil, Options{Sparsity: 0.25}, recordingBasis(&qs))
			if err != nil {
				t.Fatal(err)
			}
			if len(qs) != 1+2*m.Config.Layers || sm.Width != 48 {
				t.Fatalf("%d bases, width %d", len(qs), sm.Width)
			}
			toks := calib[seq : seq+16]
			want := projectedReference(m, qs, sm.Width, toks)
			got := sm.Forward(toks, 1, len(toks))
			var worst, scale float64
			for i := range want {
				worst = max(worst, math.Abs(float64(got[i])-want[i]))
				scale = max(scale, math.Abs(want[i]))
			}
			t.Logf("max |Δlogit| %.3g (logits up to %.3g)", worst, scale)
			if worst > 1e-4 {
				t.Fatalf("sliced logits differ from the projected dense model's by %g", worst)
			}
			// And the projection matters: the dense model's logits are
			// far from the sliced ones.
			dense := m.Forward(toks, 1, len(toks))
			if d := maxAbsDiff(got, dense); d < 100*worst {
				t.Fatalf("dense and sliced logits differ by only %g", d)
			}
		})
	}
}
