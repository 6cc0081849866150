package calibstats

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"lrmc/internal/shareddata"
	"lrmc/kernels/llama"
	"lrmc/kernels/llama2c"
)

func loadStories(t *testing.T) *llama.Model {
	t.Helper()
	m, err := llama2c.Load(shareddata.Path(t, "models", "stories260K", "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// randomTokens draws b·t token ids of the model's vocabulary, seeded.
func randomTokens(c llama.Config, n int, seed uint64) []int32 {
	r := rand.New(rand.NewPCG(seed, 7))
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(r.IntN(c.Vocab))
	}
	return out
}

// matvec64 returns W·x for W [rows, len(x)] in float64.
func matvec64(w []float32, x []float64) []float64 {
	cols := len(x)
	out := make([]float64, len(w)/cols)
	for r := range out {
		var s float64
		for j, v := range x {
			s += float64(w[r*cols+j]) * v
		}
		out[r] = s
	}
	return out
}

func rmsnorm64(x []float64, w []float32, eps float32) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	inv := 1 / math.Sqrt(ss/float64(len(x))+float64(eps))
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(w[i]) * v * inv
	}
	return out
}

// refSites recomputes, in float64 and without the model's kernels, the input
// of every linear layer of block layer (llama2.c's architecture: no biases,
// no q/k norm, adjacent-pair RoPE) over b sequences of t tokens entering as
// h. It returns per site the rows of X.
func refSites(t *testing.T, m *llama.Model, layer int, h []float32, b, tl int) [llama.NumSites][][]float64 {
	c := m.Config
	if c.QKVBias || c.QKNorm || c.RopeStyle != llama.RopeInterleaved {
		t.Fatalf("the reference block covers llama2.c's architecture only")
	}
	l := &m.Layers[layer]
	d, hd := c.Dim, c.HeadDim()
	freqs := llama.RopeFreqs(c)
	var out [llama.NumSites][][]float64
	for s := range b {
		var xs, qs, ks, vs, hs [][]float64
		for p := range tl {
			hr := make([]float64, d)
			for j := range hr {
				hr[j] = float64(h[((s*tl)+p)*d+j])
			}
			x := rmsnorm64(hr, l.AttnNorm, c.NormEps)
			q, k, v := matvec64(l.Wq, x), matvec64(l.Wk, x), matvec64(l.Wv, x)
			for _, vec := range [][]float64{q, k} {
				for h0 := 0; h0 < len(vec); h0 += hd {
					for i, f := range freqs {
						a := float64(p) * float64(f)
						c, sn := math.Cos(a), math.Sin(a)
						v0, v1 := vec[h0+2*i], vec[h0+2*i+1]
						vec[h0+2*i], vec[h0+2*i+1] = v0*c-v1*sn, v0*sn+v1*c
					}
				}
			}
			xs, qs, ks, vs, hs = append(xs, x), append(qs, q), append(ks, k), append(vs, v), append(hs, hr)
		}
		group := c.Heads / c.KVHeads
		for p := range tl {
			att := make([]float64, c.QDim())
			for hh := range c.Heads {
				kv := (hh / group) * hd
				scores := make([]float64, p+1)
				mx := math.Inf(-1)
				for j := 0; j <= p; j++ {
					var dot float64
					for i := range hd {
						dot += qs[p][hh*hd+i] * ks[j][kv+i]
					}
					scores[j] = dot / math.Sqrt(float64(hd))
					mx = max(mx, scores[j])
				}
				var z float64
				for j := range scores {
					scores[j] = math.Exp(scores[j] - mx)
					z += scores[j]
				}
				for j := range scores {
					for i := range hd {
						att[hh*hd+i] += scores[j] / z * vs[j][kv+i]
					}
				}
			}
			mid := matvec64(l.Wo, att)
			for j := range mid {
				mid[j] += hs[p][j]
			}
			xm := rmsnorm64(mid, l.FFNNorm, c.NormEps)
			g, u := matvec64(l.W1, xm), matvec64(l.W3, xm)
			act := make([]float64, len(g))
			for i := range g {
				act[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
			}
			out[llama.SiteAttnIn] = append(out[llama.SiteAttnIn], xs[p])
			out[llama.SiteOIn] = append(out[llama.SiteOIn], att)
			out[llama.SiteMLPIn] = append(out[llama.SiteMLPIn], xm)
			out[llama.SiteDownIn] = append(out[llama.SiteDownIn], act)
		}
	}
	return out
}

// TestCollectMatchesFloat64Forward: the statistics Collect gathers through
// the block's tap agree with Σx, Σx² and XᵀX of the site inputs recomputed
// in float64 from a plain forward of stories260K, at every site of a middle
// block, over 5 windows (one full batch of 4 and a partial one).
func TestCollectMatchesFloat64Forward(t *testing.T) {
	m := loadStories(t)
	c := m.Config
	const samples, seqLen, layer = 5, 12, 2
	toks := randomTokens(c, samples*seqLen, 3)
	h := m.Embed(toks, nil)
	for i := range layer {
		h = m.Block(i, h, samples, seqLen)
	}
	st, err := Collect(context.Background(), m, layer, h, samples, seqLen, Options{Hessian: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref := refSites(t, m, layer, h, samples, seqLen)
	if len(st.Sites) != llama.NumSites {
		t.Fatalf("%d sites, want %d", len(st.Sites), llama.NumSites)
	}
	for _, s := range st.Sites {
		rows := ref[s.Site]
		w := len(rows[0])
		if s.Width != w || s.Tokens != samples*seqLen || s.Sequences != samples {
			t.Fatalf("%s: width %d tokens %d windows %d, want %d %d %d", s.Site, s.Width, s.Tokens, s.Sequences, w, samples*seqLen, samples)
		}
		sum, abs, sq := make([]float64, w), make([]float64, w), make([]float64, w)
		gram := make([]float64, w*w)
		for _, x := range rows {
			for i, v := range x {
				sum[i] += v
				abs[i] += math.Abs(v)
				sq[i] += v * v
				for j, u := range x {
					gram[i*w+j] += v * u
				}
			}
		}
		const tol = 1e-4
		for i := range w {
			if math.Abs(s.Sum[i]-sum[i]) > tol*abs[i]+1e-9 {
				t.Fatalf("%s: Σx[%d] = %g, float64 reference %g", s.Site, i, s.Sum[i], sum[i])
			}
			if math.Abs(s.SumSq[i]-sq[i]) > tol*sq[i]+1e-9 {
				t.Fatalf("%s: Σx²[%d] = %g, float64 reference %g", s.Site, i, s.SumSq[i], sq[i])
			}
			for j := range w {
				if math.Abs(s.Gram[i*w+j]-gram[i*w+j]) > tol*math.Sqrt(sq[i]*sq[j])+1e-9 {
					t.Fatalf("%s: XᵀX[%d,%d] = %g, float64 reference %g", s.Site, i, j, s.Gram[i*w+j], gram[i*w+j])
				}
				if s.Gram[i*w+j] != s.Gram[j*w+i] {
					t.Fatalf("%s: XᵀX is not symmetric at %d,%d", s.Site, i, j)
				}
			}
		}
		// The derived statistics are what Wanda, Wanda-sp and FLAP read.
		norm, mean, variance := s.Norm(), s.Mean(), s.Variance()
		n := float64(samples * seqLen)
		for i := range w {
			if math.Abs(norm[i]-math.Sqrt(sq[i])) > 1e-4*math.Sqrt(sq[i]) {
				t.Fatalf("%s: ‖X_%d‖ = %g, want %g", s.Site, i, norm[i], math.Sqrt(sq[i]))
			}
			wantVar := sq[i]/n - (sum[i]/n)*(sum[i]/n)
			if math.Abs(mean[i]-sum[i]/n) > 1e-4*abs[i]/n+1e-9 || math.Abs(variance[i]-wantVar) > 1e-4*sq[i]/n+1e-9 {
				t.Fatalf("%s: mean/var[%d] = %g/%g, want %g/%g", s.Site, i, mean[i], variance[i], sum[i]/n, wantVar)
			}
		}
		hs, err := s.Hessian()
		if err != nil {
			t.Fatal(err)
		}
		if hs[0] != 2/float64(samples)*s.Gram[0] {
			t.Fatalf("%s: H[0,0] = %g, want 2/%d·XᵀX[0,0] = %g", s.Site, hs[0], samples, 2/float64(samples)*s.Gram[0])
		}
	}
}

// TestBlockTapIsBlock: observing a block changes nothing it computes.
func TestBlockTapIsBlock(t *testing.T) {
	m := loadStories(t)
	toks := randomTokens(m.Config, 2*9, 5)
	h := m.Embed(toks, nil)
	want := m.Block(1, h, 2, 9)
	var order []llama.Site
	got := m.BlockTap(1, h, 2, 9, func(s llama.Site, x []float32, width int) {
		order = append(order, s)
		if len(x) != 2*9*width {
			t.Fatalf("%s: %d values for width %d", s, len(x), width)
		}
	})
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("BlockTap output %d = %g, Block gives %g", i, got[i], want[i])
		}
	}
	if len(order) != 4 || order[0] != llama.SiteAttnIn || order[1] != llama.SiteOIn || order[2] != llama.SiteMLPIn || order[3] != llama.SiteDownIn {
		t.Fatalf("sites tapped in order %v", order)
	}
}

// spreadValues returns n normal values scaled by e^[0,3): magnitudes that
// spread over a few decades, so that summation order shows in the bits.
func spreadValues(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, seed+1))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * math.Exp(3*r.Float64()))
	}
	return x
}

// TestAddIsOrderFixed: the sums are bit-identical however the rows are split
// into calls and however many threads build the Gram.
func TestAddIsOrderFixed(t *testing.T) {
	const w, rows = 37, 101
	x := spreadValues(w*rows, 1)
	whole := NewSite(llama.SiteDownIn, w, true)
	if err := whole.Add(x, 3); err != nil {
		t.Fatal(err)
	}
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	split := NewSite(llama.SiteDownIn, w, true)
	for _, cut := range [][2]int{{0, 1}, {1, 50}, {50, 51}, {51, rows}} {
		if err := split.Add(x[cut[0]*w:cut[1]*w], 1); err != nil {
			t.Fatal(err)
		}
	}
	for i := range whole.Gram {
		if math.Float64bits(whole.Gram[i]) != math.Float64bits(split.Gram[i]) {
			t.Fatalf("XᵀX[%d] differs when split: %x vs %x", i, whole.Gram[i], split.Gram[i])
		}
	}
	for i := range w {
		if whole.Sum[i] != split.Sum[i] || whole.SumSq[i] != split.SumSq[i] {
			t.Fatalf("channel %d sums differ when split", i)
		}
	}
	if split.Tokens != rows || split.Sequences != 4 {
		t.Fatalf("split counts %d tokens %d windows", split.Tokens, split.Sequences)
	}
}

func TestAddRejects(t *testing.T) {
	s := NewSite(llama.SiteMLPIn, 3, false)
	if err := s.Add([]float32{1, 2, 3, 4}, 1); err == nil || !strings.Contains(err.Error(), "not whole rows of width 3") {
		t.Fatalf("ragged rows: %v", err)
	}
	err := s.Add([]float32{1, 2, 3, 4, float32(math.NaN()), 6}, 1)
	if err == nil || !strings.Contains(err.Error(), "mlp_in: row 1 channel 1 is NaN") {
		t.Fatalf("NaN: %v", err)
	}
	if _, err := NewSite(llama.SiteOIn, 2, false).Hessian(); err == nil || !strings.Contains(err.Error(), "XᵀX was not gathered") {
		t.Fatalf("Hessian without Gram: %v", err)
	}
}

// TestHessianBound: the Gram matrices' memory is dim² × 8 per site, known
// before anything runs, and a bound below it is refused with the numbers.
func TestHessianBound(t *testing.T) {
	c := llama.Config{Dim: 64, HiddenDim: 172, Layers: 1, Heads: 8, KVHeads: 4, Vocab: 10, SeqLen: 8, NormEps: 1e-5, RopeTheta: 1e4}
	n, err := HessianBytes(c, Options{Hessian: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(8 * (64*64*3 + 172*172)); n != want {
		t.Fatalf("HessianBytes = %d, want %d", n, want)
	}
	if n, _ := HessianBytes(c, Options{}); n != 0 {
		t.Fatalf("HessianBytes without Hessian = %d", n)
	}
	if n, _ := HessianBytes(c, Options{Hessian: true, Sites: []llama.Site{llama.SiteDownIn}}); n != 172*172*8 {
		t.Fatalf("HessianBytes of down_in = %d", n)
	}
	err = Check(c, Options{Hessian: true, MaxHessianBytes: 1000})
	if err == nil || !strings.Contains(err.Error(), "need 334976 bytes") || !strings.Contains(err.Error(), "above the bound of 1000 bytes") {
		t.Fatalf("bound: %v", err)
	}
	if err := Check(c, Options{Sites: []llama.Site{llama.SiteOIn, llama.SiteOIn}}); err == nil || !strings.Contains(err.Error(), "o_in asked for twice") {
		t.Fatalf("duplicate site: %v", err)
	}
}

func TestCollectRejects(t *testing.T) {
	m := loadStories(t)
	h := make([]float32, 2*4*m.Config.Dim)
	_, err := Collect(context.Background(), m, 9, h, 2, 4, Options{}, nil)
	if err == nil || !strings.Contains(err.Error(), "block 9 does not exist in a model of 5 blocks") {
		t.Fatalf("bad layer: %v", err)
	}
	_, err = Collect(context.Background(), m, 0, h, 2, 5, Options{}, nil)
	if err == nil || !strings.Contains(err.Error(), "want 2 windows × 5 tokens") {
		t.Fatalf("bad size: %v", err)
	}
	_, err = Collect(context.Background(), m, 0, h, 2, 4, Options{Hessian: true, MaxHessianBytes: 8}, nil)
	if err == nil || !strings.Contains(err.Error(), "above the bound of 8 bytes") {
		t.Fatalf("bound: %v", err)
	}
	// Only the sites asked for are gathered.
	st, err := Collect(context.Background(), m, 0, h, 2, 4, Options{Sites: []llama.Site{llama.SiteDownIn}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Sites) != 1 || st.Sites[0].Site != llama.SiteDownIn || st.Sites[0].Gram != nil {
		t.Fatalf("sites %+v", st.Sites)
	}
	if _, err := st.Site(llama.SiteAttnIn); err == nil || !strings.Contains(err.Error(), "hold no attn_in (only [down_in])") {
		t.Fatalf("missing site: %v", err)
	}
}

// TestGramTileIsPlainLoop: the tiled Gram equals, bit for bit, the plain
// loop that adds every token's product in order, at every width (tile
// edges, odd rows) and across calls.
func TestGramTileIsPlainLoop(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	for _, w := range []int{1, 2, 3, 4, 5, 6, 7, 9, 13, 37} {
		const rows = 23
		s := NewSite(llama.SiteOIn, w, true)
		want := make([]float64, w*w)
		for range 2 {
			x := make([]float32, rows*w)
			for i := range x {
				x[i] = float32(r.NormFloat64())
			}
			if err := s.Add(x, 1); err != nil {
				t.Fatal(err)
			}
			for i := range w {
				for j := range w {
					acc := want[i*w+j]
					for t := range rows {
						acc += float64(x[t*w+i]) * float64(x[t*w+j])
					}
					want[i*w+j] = acc
				}
			}
		}
		for k := range want {
			if math.Float64bits(s.Gram[k]) != math.Float64bits(want[k]) {
				t.Fatalf("width %d: XᵀX[%d,%d] = %v, the plain loop gives %v", w, k/w, k%w, s.Gram[k], want[k])
			}
		}
	}
}

// TestAddThreadsBitIdentical: with the channels spread over 1, 2 and 3
// threads, Σx, Σx² and XᵀX have the bits of plain float64 loops over the
// tokens in order, and of the NaNs planted in several threads' ranges the
// error names the first in row-major order.
func TestAddThreadsBitIdentical(t *testing.T) {
	const w, rows = 300, 512
	x := spreadValues(w*rows, 7)
	sum, sq, gram := make([]float64, w), make([]float64, w), make([]float64, w*w)
	for row := range rows {
		for j := range w {
			f := float64(x[row*w+j])
			sum[j] += f
			sq[j] += f * f
		}
	}
	for i := range w {
		for j := range w {
			var acc float64
			for row := range rows {
				acc += float64(x[row*w+i]) * float64(x[row*w+j])
			}
			gram[i*w+j] = acc
		}
	}
	bad := slices.Clone(x)
	bad[7*w+10] = float32(math.NaN())
	bad[5*w+260] = float32(math.Inf(-1))
	bad[5*w+250] = float32(math.NaN())
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, 2, 3} {
		runtime.GOMAXPROCS(procs)
		s := NewSite(llama.SiteDownIn, w, true)
		if err := s.Add(x, 1); err != nil {
			t.Fatal(err)
		}
		for j := range w {
			if math.Float64bits(s.Sum[j]) != math.Float64bits(sum[j]) || math.Float64bits(s.SumSq[j]) != math.Float64bits(sq[j]) {
				t.Fatalf("%d threads: channel %d sums %v %v, plain loop %v %v", procs, j, s.Sum[j], s.SumSq[j], sum[j], sq[j])
			}
		}
		for i := range gram {
			if math.Float64bits(s.Gram[i]) != math.Float64bits(gram[i]) {
				t.Fatalf("%d threads: XᵀX[%d] = %v, plain loop %v", procs, i, s.Gram[i], gram[i])
			}
		}
		err := NewSite(llama.SiteDownIn, w, false).Add(bad, 1)
		if err == nil || err.Error() != "calibration statistics: down_in: row 5 channel 250 is NaN" {
			t.Errorf("%d threads: %v", procs, err)
		}
	}
}
