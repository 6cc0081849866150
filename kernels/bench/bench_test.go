package bench

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"lrmc/kernels/gemm"
	"lrmc/kernels/ggufmodel"
	"lrmc/kernels/synth"
)

var tiny = GEMMShape{M: 5, K: 33, N: 17}

func TestMeasureGEMMTiny(t *testing.T) {
	rs, err := MeasureGEMM([]GEMMShape{tiny}, []int{1, 2}, GEMMOptions{Reps: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := append(gemm.Impls(), "gonum", "naive")
	if len(rs) != 2*len(want) {
		t.Fatalf("%d results, want %d (%v at 2 thread counts)", len(rs), 2*len(want), want)
	}
	for i, r := range rs {
		if r.Impl != want[i%len(want)] || r.Threads != 1+i/len(want) || r.M != 5 || r.K != 33 || r.N != 17 {
			t.Errorf("result %d is %s m=%d k=%d n=%d t=%d", i, r.Impl, r.M, r.K, r.N, r.Threads)
		}
		if r.Skipped != "" || r.Reps != 1 || r.Calls != 1 || !(r.GFLOPS > 0) || !(r.Seconds > 0) {
			t.Errorf("%s t=%d: not measured: %+v", r.Impl, r.Threads, r)
		}
		// 33 terms of N(0,1) products: float32 rounding stays far below
		// 1e-4; a wrong kernel misses by about 1.
		if !(r.MaxAbsErr < 1e-4) {
			t.Errorf("%s t=%d: max abs error %g against float64", r.Impl, r.Threads, r.MaxAbsErr)
		}
		if r.Impl == "gonum" && r.VsGonum != 1 {
			t.Errorf("gonum's ratio to itself is %g", r.VsGonum)
		}
	}
	b, err := json.Marshal(rs[0])
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal(b, &obj); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"impl", "m", "n", "k", "threads", "gflops", "reps", "seconds"} {
		if _, ok := obj[k]; !ok {
			t.Errorf("JSON %s lacks %q", b, k)
		}
	}
}

func TestMeasureGEMMSkipsNaiveAboveBudget(t *testing.T) {
	rs, err := MeasureGEMM([]GEMMShape{tiny}, []int{1}, GEMMOptions{Reps: 1, NaiveMaxFLOPs: 1000, Impls: []string{"gonum", "naive"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[1].Impl != "naive" {
		t.Fatalf("results %+v", rs)
	}
	if want := "5.6e-06 GFLOP is above the naive budget of 1e-06"; rs[1].Skipped != want || rs[1].GFLOPS != 0 {
		t.Errorf("naive: skipped %q gflops %g, want %q and 0", rs[1].Skipped, rs[1].GFLOPS, want)
	}
}

func TestMeasureGEMMErrors(t *testing.T) {
	_, err := MeasureGEMM([]GEMMShape{tiny}, []int{1}, GEMMOptions{Impls: []string{"cuda"}})
	if err == nil || !strings.Contains(err.Error(), `bench: GEMM kernel "cuda" is not available here`) {
		t.Errorf("unknown kernel: %v", err)
	}
	_, err = MeasureGEMM([]GEMMShape{{0, 4, 4}}, []int{1}, GEMMOptions{})
	if want := "bench: GEMM shape m=0 k=4 n=4: every dimension must be positive"; err == nil || err.Error() != want {
		t.Errorf("empty shape: %v, want %s", err, want)
	}
}

func TestNaiveMatchesFloat64(t *testing.T) {
	// The naive reference must be right at every split it uses: by rows,
	// and by columns for one row.
	for _, s := range []GEMMShape{{7, 9, 5}, {1, 9, 5}} {
		for _, threads := range []int{1, 2, 3} {
			r := rand.New(rand.NewPCG(1, 2))
			x, w := gaussians(r, s.M*s.K), gaussians(r, s.N*s.K)
			out := make([]float32, s.M*s.N)
			naive(out, x, w, s, threads)
			for i := range s.M {
				for j := range s.N {
					var acc float64
					for p := range s.K {
						acc += float64(x[i*s.K+p]) * float64(w[j*s.K+p])
					}
					if d := math.Abs(float64(out[i*s.N+j]) - acc); d > 1e-5 {
						t.Fatalf("%v t=%d: out[%d,%d] = %g, want %g", s, threads, i, j, out[i*s.N+j], acc)
					}
				}
			}
		}
	}
}

func TestMeasureModelStories(t *testing.T) {
	s, err := ModelShapeNamed("stories260k")
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.Build()
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	rs, err := MeasureModel(m, s.Name, ModelOptions{Threads: []int{1, 2}, Prefill: 8, Decode: 4, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 4 {
		t.Fatalf("%d results, want 4", len(rs))
	}
	for i, r := range rs {
		phase, tokens := PhasePrefill, 8
		if i%2 == 1 {
			phase, tokens = PhaseDecode, 4
		}
		if r.Shape != "stories260k" || r.Phase != phase || r.Tokens != tokens || r.Threads != 1+i/2 || r.Dtype != "float32" {
			t.Errorf("result %d: %+v", i, r)
		}
		if !(r.TokensPerS > 0) || math.Abs(r.TokensPerS*r.Seconds-float64(tokens)) > 1e-9*float64(tokens) {
			t.Errorf("result %d: %g tokens/s over %gs for %d tokens", i, r.TokensPerS, r.Seconds, tokens)
		}
	}
	if n := strings.Count(progress.String(), "\n"); n != 4 {
		t.Errorf("%d progress lines, want 4:\n%s", n, progress.String())
	}
}

func TestFLOPCounts(t *testing.T) {
	s, _ := ModelShapeNamed("smollm-135m")
	spec := s.Spec
	spec.Layers, spec.Vocab = 1, 300 // the count per block does not depend on the rest
	m, err := ModelShape{s.Name, spec}.Build()
	if err != nil {
		t.Fatal(err)
	}
	c := m.Config
	// Projections of one block: q and o 576², k and v 576·192, the MLP 3·576·1536.
	if got, want := layerMatrixParams(c), int64(2*576*576+2*576*192+3*576*1536); got != want {
		t.Errorf("block projections %d, want %d", got, want)
	}
	// Two tokens: the first attends to one position, the second to two,
	// each costing 2 FLOPs (scores) + 2 (weighted sum) per query dimension.
	if got, want := attentionFLOPs(c, 2), float64(4*576*(1+2)); got != want {
		t.Errorf("attention over 2 tokens %g FLOPs, want %g", got, want)
	}
}

func TestDecodeIsGreedy(t *testing.T) {
	s, _ := ModelShapeNamed("stories260k")
	m, err := s.Build()
	if err != nil {
		t.Fatal(err)
	}
	got := decode(m, 5, 6)
	// The same tokens from the batched forward pass: the argmax at each
	// position of the prompt made of the first token and the choices so far.
	seq := append([]int32{5}, got[:5]...)
	logits := m.Forward(seq, 1, len(seq))
	for p := range seq {
		if want := argmax(logits[p*m.Config.Vocab : (p+1)*m.Config.Vocab]); got[p] != want {
			t.Fatalf("step %d chose %d, the forward pass %d (decoded %v)", p, got[p], want, got)
		}
	}
}

func TestMeasureCapture(t *testing.T) {
	s, _ := ModelShapeNamed("stories260k")
	r, err := MeasureCapture(s, CaptureOptions{Samples: 2, SeqLen: 16, Layers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.LayersTimed != 2 || r.LayersTotal != 5 || !r.Extrapolated || r.Samples != 2 || r.SeqLen != 16 || r.Batch != 4 {
		t.Errorf("%+v", r)
	}
	// A batch that does not divide the samples still runs them all.
	if r3, err := MeasureCapture(s, CaptureOptions{Samples: 5, SeqLen: 16, Layers: 1, Batch: 2}); err != nil || r3.Batch != 2 || !(r3.GFLOPS > 0) {
		t.Errorf("batch 2 of 5 samples: %+v, %v", r3, err)
	}
	if math.Abs(r.Seconds-5*r.SecondsPerLayer) > 1e-12 || !(r.GFLOPS > 0) {
		t.Errorf("seconds %g for 5 layers of %g", r.Seconds, r.SecondsPerLayer)
	}
}

func TestExportGGUFLoadsBack(t *testing.T) {
	s, _ := ModelShapeNamed("stories260k")
	m, err := s.Build()
	if err != nil {
		t.Fatal(err)
	}
	path, err := ExportGGUF(t.TempDir(), s, m)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "stories260k.gguf" {
		t.Errorf("path %s", path)
	}
	back, meta, err := ggufmodel.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if meta.Architecture != "llama" || back.Config.Vocab != 512 || back.Config.Layers != 5 {
		t.Errorf("loaded %s with %+v", meta.Architecture, back.Config)
	}
	// Same model: same logits (the rotary layouts differ by a permutation
	// that changes only the order of the query–key sums).
	tok := []int32{1, 300, 7}
	a, b := m.Forward(tok, 1, 3), back.Forward(tok, 1, 3)
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-5 {
			t.Fatalf("logit %d: %g exported, %g in memory", i, b[i], a[i])
		}
	}
	var tokens []string
	for _, kv := range meta.Tokenizer {
		if kv.Key == "tokenizer.ggml.tokens" {
			tokens, _ = kv.Value.([]string)
		}
	}
	if len(tokens) != 512 || tokens[3] != "<0x00>" || tokens[258] != "<0xFF>" || tokens[259] != "\u2581t259" {
		t.Errorf("tokens: %d, %q", len(tokens), tokens[:min(len(tokens), 4)])
	}
	if _, err := SyntheticVocab(100); err == nil || !strings.Contains(err.Error(), "100 tokens") {
		t.Errorf("small vocabulary: %v", err)
	}
}

func TestModelShapeNamed(t *testing.T) {
	_, err := ModelShapeNamed("llama-70b")
	if want := `bench: unknown model shape "llama-70b" (have stories260k, smollm-135m, qwen3-0.6b)`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	// The shapes are the real models' (parameter counts with tied
	// embeddings): SmolLM-135M has 134,515,008, Qwen3-0.6B 596,049,920.
	for name, want := range map[string]int64{"smollm-135m": 134515008, "qwen3-0.6b": 596049920} {
		s, _ := ModelShapeNamed(name)
		hc, err := synth.Config(s.Spec)
		if err != nil {
			t.Fatal(err)
		}
		c, err := hc.LlamaConfig()
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Params(); got != want {
			t.Errorf("%s: %d parameters, want %d", name, got, want)
		}
	}
	if !slices.ContainsFunc(ModelShapes, func(s ModelShape) bool { return s.Name == "qwen3-0.6b" && s.Spec.Arch == "qwen3" }) {
		t.Error("qwen3-0.6b is not a qwen3")
	}
}
