package mceval

import (
	"encoding/binary"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"

	"lrmc/internal/shareddata"
	"lrmc/kernels/ggufmodel"
	"lrmc/kernels/llama"
	"lrmc/kernels/llama2c"
	"lrmc/kernels/synth"
)

// A hand-built 3-item task whose log-likelihoods are known: acc and
// acc_norm follow in closed form.
func TestAccAndAccNormClosedForm(t *testing.T) {
	items := []struct {
		choices []string
		lls     []float64
		gold    int
		pred    int // argmax ll
		norm    int // argmax ll/len
	}{
		// ll/len: -2/1 = -2, -3/10 = -0.3: raw picks 0, normalised picks 1.
		{[]string{"a", "bbbbbbbbbb"}, []float64{-2, -3}, 1, 0, 1},
		// -1/2, -4/4 = -1, -9/3: both pick 0.
		{[]string{"xx", "yyyy", "zzz"}, []float64{-1, -4, -9}, 0, 0, 0},
		// A tie (-5, -5) goes to the first; lengths 5 and 5 tie too. The
		// character count, not bytes: "é" is one character.
		{[]string{"ééééé", "abcde"}, []float64{-5, -5}, 1, 0, 0},
	}
	var acc, accNorm []float64
	for i, it := range items {
		p, pn := Prediction(it.lls, it.choices)
		if p != it.pred || pn != it.norm {
			t.Errorf("item %d: predictions (%d, %d), want (%d, %d)", i, p, pn, it.pred, it.norm)
		}
		acc = append(acc, b2f(p == it.gold))
		accNorm = append(accNorm, b2f(pn == it.gold))
	}
	m, se := Mean(acc)
	// acc = 1/3: only item 2 is right; stderr = sqrt(var_{n-1}/n), var = 1/3.
	if math.Abs(m-1.0/3) > 1e-15 || math.Abs(se-math.Sqrt((1.0/3)/3)) > 1e-15 {
		t.Errorf("acc %v ± %v, want 1/3 ± %v", m, se, math.Sqrt(1.0/9))
	}
	mn, _ := Mean(accNorm)
	if math.Abs(mn-2.0/3) > 1e-15 {
		t.Errorf("acc_norm %v, want 2/3", mn)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func TestPreprocess(t *testing.T) {
	got := Preprocess("  Home and Garden: [header] How to paint [title] Buy paint.  [step] Mix it. ")
	// Python's str.replace is one pass: three spaces become two, as in lm-eval.
	want := "Home and Garden: How to paint. Buy paint.  Mix it."
	if got != want {
		t.Errorf("Preprocess = %q, want %q", got, want)
	}
}

func TestItemsTemplatesAndFewshot(t *testing.T) {
	piqa := mustTask(t, "piqa", Spec{Text: "Question: {{goal}}\nAnswer:", Choices: []string{"{{sol1}}", "{{sol2}}"}, Gold: "label"})
	docs := []Doc{
		{"goal": "g0", "sol1": "a0", "sol2": "b0", "label": 0.0},
		{"goal": "g1", "sol1": "a1", "sol2": "b1", "label": 1.0},
		{"goal": "g2", "sol1": "a2", "sol2": "b2", "label": 0.0},
	}
	items, err := Items(piqa, docs, 2, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[1].Context != "Question: g1\nAnswer:" || items[1].Continuation(1) != " b1" || items[1].Gold != 1 {
		t.Fatalf("items = %+v", items)
	}
	shots, err := Items(piqa, docs, 0, 2, 7)
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range shots {
		parts := strings.Split(it.Context, "\n\n")
		if len(parts) != 3 || parts[2] != docs[i]["goal"].(string) && parts[2] != "Question: "+docs[i]["goal"].(string)+"\nAnswer:" {
			t.Fatalf("item %d context %q", i, it.Context)
		}
		for _, p := range parts[:2] {
			if strings.Contains(p, "g"+string(rune('0'+i))) {
				t.Errorf("item %d uses itself as an example: %q", i, it.Context)
			}
		}
	}
	again, _ := Items(piqa, docs, 0, 2, 7)
	for i := range shots {
		if shots[i].Context != again[i].Context {
			t.Errorf("few-shot sampling is not reproducible")
		}
	}
	boolq := mustTask(t, "boolq", Spec{Text: "{{passage}}\nQuestion: {{question}}?\nAnswer:", Choices: []string{"no", "yes"}, Gold: "answer"})
	it, err := Items(boolq, []Doc{{"passage": "P", "question": "is it", "answer": true}}, 0, 0, 0)
	if err != nil || it[0].Context != "P\nQuestion: is it?\nAnswer:" || it[0].Gold != 1 || it[0].Continuation(1) != " yes" {
		t.Errorf("boolq item %+v, %v", it, err)
	}
	if _, err := Items(piqa, []Doc{{"goal": "g", "label": 0.0}}, 0, 0, 0); err == nil || !strings.Contains(err.Error(), `piqa: document 0: field "sol1" is missing`) {
		t.Errorf("bad document: %v", err)
	}
}

// Scoring N choices from one shared prefill, in one batched pass with
// other items, gives what scoring each choice alone, context and
// continuation through the whole-sequence forward pass, gives; and the
// same bits on every run and at every thread count.
func TestSharedPrefillEqualsAlone(t *testing.T) {
	m, _, err := synth.New(synth.Spec{Arch: "llama", Layers: 2, Dim: 32, Heads: 4, KVHeads: 2, FFN: 64, Vocab: 50, SeqLen: 64, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	rs := []Request{
		{Context: []int32{1, 7, 9, 11, 3, 40}, Conts: [][]int32{{5}, {6, 7, 8, 9}, {49, 2}, {1, 2, 3, 4, 5, 6, 7}}},
		{Context: []int32{2}, Conts: [][]int32{{3, 4}, {5}}},
		{Context: []int32{9, 9, 8, 8, 7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0}, Conts: [][]int32{{10, 20, 30}, {31, 41, 11}}},
	}
	batched, err := ScoreBatch(m, m.Config.SeqLen, rs)
	if err != nil {
		t.Fatal(err)
	}
	d := llama.NewDecoder(m, m.Config.SeqLen)
	for k, r := range rs {
		one, err := ScoreBatch(m, m.Config.SeqLen, rs[k:k+1])
		if err != nil {
			t.Fatal(err)
		}
		steps := Score(d, r)
		for i, c := range r.Conts {
			alone := ScoreAlone(m, r.Context, c)
			for name, got := range map[string]float64{"batched": batched[k][i], "item alone": one[0][i], "step by step": steps[i]} {
				if math.Abs(got-alone) > 1e-5 {
					t.Errorf("item %d choice %d: %s %.9f, alone %.9f", k, i, name, got, alone)
				}
			}
		}
	}
	again, _ := ScoreBatch(m, m.Config.SeqLen, rs)
	prev := runtime.GOMAXPROCS(1)
	serial, _ := ScoreBatch(m, m.Config.SeqLen, rs)
	runtime.GOMAXPROCS(prev)
	for k := range rs {
		if !slices.Equal(again[k], batched[k]) || !slices.Equal(serial[k], batched[k]) {
			t.Errorf("item %d: %v, again %v, on one thread %v", k, batched[k], again[k], serial[k])
		}
	}
}

func TestFit(t *testing.T) {
	r := Request{Context: []int32{1, 2, 3, 4, 5}, Conts: [][]int32{{6, 7, 8}, {9}, {10, 11, 12}}}
	parts, err := Fit(r, 5)
	// 5+3 tokens cut to 6 keep 3 context tokens; 5+1 fit whole.
	if err != nil || len(parts) != 2 || !slices.Equal(parts[0].Context, []int32{3, 4, 5}) || !slices.Equal(parts[0].Conts, []int{0, 2}) ||
		!slices.Equal(parts[1].Context, r.Context) || !slices.Equal(parts[1].Conts, []int{1}) {
		t.Errorf("Fit = %+v, %v", parts, err)
	}
	if Dropped(parts, r) != 2 || Fed(parts, r) != 3+2+2+5 {
		t.Errorf("dropped %d, fed %d", Dropped(parts, r), Fed(parts, r))
	}
	if _, err := Fit(Request{Context: []int32{1}, Conts: [][]int32{{1, 2, 3, 4, 5, 6}}}, 5); err == nil ||
		err.Error() != "a continuation of 6 tokens does not fit the model's 5 positions" {
		t.Errorf("a continuation longer than the model fits: %v", err)
	}
	b, err := Batches([]Request{r, r, {Context: []int32{1}, Conts: [][]int32{{2}}}, r}, 5, 20)
	if err != nil || !slices.Equal(b, [][2]int{{0, 1}, {1, 3}, {3, 4}}) {
		t.Errorf("Batches = %v, %v", b, err)
	}
}

// An item longer than the model's context is scored as lm-eval scores
// each request: (context+continuation)[-(maxLen+1):][:-1] through the
// model, the continuation's log-probabilities read off the last rows. The
// reference here transcribes that slicing; the text's tokens come from the
// stories260K tokenizer.
func TestOverlongItemTruncatedPerChoice(t *testing.T) {
	m, _, err := synth.New(synth.Spec{Arch: "llama", Layers: 2, Dim: 32, Heads: 4, KVHeads: 2, FFN: 64, Vocab: 512, SeqLen: 24, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := llama2c.LoadTokenizer(shareddata.Path(t, "models", "stories260K", "tok512.bin"), 512)
	if err != nil {
		t.Fatal(err)
	}
	it := Item{Context: "Once upon a time, there was a little girl called Lily. She liked to play in the park with her friends every day.",
		Choices: []string{"Then", "One day she found a big red ball under a tree.", "She was happy."}, Delimiter: " "}
	r, err := Tokenize(l2cEncoder{tok}, it)
	if err != nil {
		t.Fatal(err)
	}
	maxLen := m.Config.SeqLen
	got, err := ScoreBatch(m, maxLen, []Request{r})
	if err != nil {
		t.Fatal(err)
	}
	v := m.Config.Vocab
	dropped := map[int]bool{}
	for i, cont := range r.Conts {
		whole := append(slices.Clone(r.Context), cont...)
		if len(whole) <= maxLen+1 {
			t.Fatalf("choice %d: %d tokens fit in %d positions; the test wants every choice cut", i, len(whole), maxLen)
		}
		inp := whole[len(whole)-(maxLen+1):]
		inp = inp[:len(inp)-1]
		dropped[len(r.Context)-(len(inp)-(len(cont)-1))] = true
		logits := m.Forward(inp, 1, len(inp))
		var want float64
		for j, c := range cont {
			row := len(inp) - len(cont) + j
			want += LogProb(logits[row*v:(row+1)*v], c)
		}
		if math.Abs(got[0][i]-want) > 1e-5 {
			t.Errorf("choice %d (%d tokens): %.9f, lm-eval's truncation gives %.9f", i, len(cont), got[0][i], want)
		}
	}
	if len(dropped) < 2 {
		t.Errorf("every choice drops the same context tokens %v; the test wants choices of different lengths", dropped)
	}
}

type l2cEncoder struct{ *llama2c.Tokenizer }

func (e l2cEncoder) Encode(s string) []int32 { return e.Tokenizer.Encode(s, true, false) }

// A per-choice log-likelihood of stories260K equals one computed here by an
// independent float64 transcription of llama2.c's run.c forward pass, read
// straight from the llama2.c checkpoint's bytes; the model scored is loaded
// from the .bin and, separately, from the GGUF file of the same weights.
func TestStories260KAgainstFloat64Reference(t *testing.T) {
	bin := shareddata.Path(t, "models", "stories260K", "stories260K.bin")
	fromBin, err := llama2c.Load(bin)
	if err != nil {
		t.Fatal(err)
	}
	fromGGUF, _, err := ggufmodel.Load(shareddata.Path(t, "models", "stories260K", "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*llama.Model{"stories260K.bin": fromBin, "stories260K.gguf": fromGGUF} {
		t.Run(name, func(t *testing.T) { checkAgainstFloat64(t, m, bin) })
	}
}

func checkAgainstFloat64(t *testing.T, m *llama.Model, bin string) {
	tok, err := llama2c.LoadTokenizer(shareddata.Path(t, "models", "stories260K", "tok512.bin"), m.Config.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	it := Item{Context: "Once upon a time, there was a little girl. She", Choices: []string{"liked to play.", "was a dog outside the big tree."}, Delimiter: " "}
	r, err := Tokenize(l2cEncoder{tok}, it)
	if err != nil {
		t.Fatal(err)
	}
	if r.Context[0] != tok.BOS() {
		t.Fatalf("context does not start with BOS: %v", r.Context)
	}
	lls, err := ScoreBatch(m, m.Config.SeqLen, []Request{r})
	if err != nil {
		t.Fatal(err)
	}
	got := lls[0]
	ref := loadRef(t, bin)
	for i, c := range r.Conts {
		want := ref.loglik(r.Context, c)
		t.Logf("choice %d: %d tokens, lrmc %.9f, float64 reference %.9f", i, len(c), got[i], want)
		if math.Abs(got[i]-want) > 1e-4 {
			t.Errorf("choice %d: log-likelihood %.9f, float64 reference %.9f", i, got[i], want)
		}
	}
}

// ref is run.c's transformer in float64, weights as run.c maps them.
type ref struct {
	dim, hidden, layers, heads, kvHeads, vocab, seqLen              int
	emb, rmsAtt, wq, wk, wv, wo, rmsFFN, w1, w2, w3, rmsFinal, wcls []float64
}

func loadRef(t *testing.T, path string) *ref {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := make([]int, 7)
	for i := range h {
		h[i] = int(int32(binary.LittleEndian.Uint32(b[4*i:])))
	}
	r := &ref{dim: h[0], hidden: h[1], layers: h[2], heads: h[3], kvHeads: h[4], vocab: h[5], seqLen: h[6]}
	shared := r.vocab > 0
	if !shared {
		r.vocab = -r.vocab
	}
	off := 28
	take := func(n int) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[off+4*i:])))
		}
		off += 4 * n
		return out
	}
	hs := r.dim / r.heads
	kvDim := r.kvHeads * hs
	L := r.layers
	r.emb = take(r.vocab * r.dim)
	r.rmsAtt = take(L * r.dim)
	r.wq = take(L * r.dim * r.dim)
	r.wk = take(L * r.dim * kvDim)
	r.wv = take(L * r.dim * kvDim)
	r.wo = take(L * r.dim * r.dim)
	r.rmsFFN = take(L * r.dim)
	r.w1 = take(L * r.dim * r.hidden)
	r.w2 = take(L * r.hidden * r.dim)
	r.w3 = take(L * r.dim * r.hidden)
	r.rmsFinal = take(r.dim)
	take(r.seqLen * hs / 2) // freq_cis_real
	take(r.seqLen * hs / 2) // freq_cis_imag
	r.wcls = r.emb
	if !shared {
		r.wcls = take(r.vocab * r.dim)
	}
	return r
}

func rmsnorm(x, w []float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	ss = 1 / math.Sqrt(ss/float64(len(x))+1e-5)
	out := make([]float64, len(x))
	for i := range x {
		out[i] = w[i] * ss * x[i]
	}
	return out
}

// matmul is run.c's: W (d,n) @ x (n) -> (d).
func matmul(w, x []float64, n, d int) []float64 {
	out := make([]float64, d)
	for i := range d {
		var s float64
		for j := range n {
			s += w[i*n+j] * x[j]
		}
		out[i] = s
	}
	return out
}

// loglik runs the whole sequence ctx+cont[:len-1] position by position and
// sums log p of each continuation token.
func (r *ref) loglik(ctx, cont []int32) float64 {
	seq := append(append([]int32{}, ctx...), cont...)
	hs := r.dim / r.heads
	kvDim := r.kvHeads * hs
	kvMul := r.heads / r.kvHeads
	kc := make([][][]float64, r.layers)
	vc := make([][][]float64, r.layers)
	var ll float64
	for pos := 0; pos+1 < len(seq); pos++ {
		x := append([]float64{}, r.emb[int(seq[pos])*r.dim:(int(seq[pos])+1)*r.dim]...)
		for l := range r.layers {
			xb := rmsnorm(x, r.rmsAtt[l*r.dim:])
			q := matmul(r.wq[l*r.dim*r.dim:], xb, r.dim, r.dim)
			k := matmul(r.wk[l*r.dim*kvDim:], xb, r.dim, kvDim)
			v := matmul(r.wv[l*r.dim*kvDim:], xb, r.dim, kvDim)
			for i := 0; i < r.dim; i += 2 {
				freq := 1 / math.Pow(10000, float64(i%hs)/float64(hs))
				fcr, fci := math.Cos(float64(pos)*freq), math.Sin(float64(pos)*freq)
				rot := func(vec []float64) {
					v0, v1 := vec[i], vec[i+1]
					vec[i], vec[i+1] = v0*fcr-v1*fci, v0*fci+v1*fcr
				}
				rot(q)
				if i < kvDim {
					rot(k)
				}
			}
			kc[l] = append(kc[l], k)
			vc[l] = append(vc[l], v)
			att := make([]float64, r.dim)
			for h := range r.heads {
				kh := (h / kvMul) * hs
				scores := make([]float64, pos+1)
				mx := math.Inf(-1)
				for t := 0; t <= pos; t++ {
					var s float64
					for i := range hs {
						s += q[h*hs+i] * kc[l][t][kh+i]
					}
					scores[t] = s / math.Sqrt(float64(hs))
					mx = math.Max(mx, scores[t])
				}
				var sum float64
				for t := range scores {
					scores[t] = math.Exp(scores[t] - mx)
					sum += scores[t]
				}
				for t := range scores {
					for i := range hs {
						att[h*hs+i] += scores[t] / sum * vc[l][t][kh+i]
					}
				}
			}
			o := matmul(r.wo[l*r.dim*r.dim:], att, r.dim, r.dim)
			for i := range x {
				x[i] += o[i]
			}
			xb = rmsnorm(x, r.rmsFFN[l*r.dim:])
			h1 := matmul(r.w1[l*r.dim*r.hidden:], xb, r.dim, r.hidden)
			h3 := matmul(r.w3[l*r.dim*r.hidden:], xb, r.dim, r.hidden)
			for i := range h1 {
				h1[i] = h1[i] / (1 + math.Exp(-h1[i])) * h3[i]
			}
			o = matmul(r.w2[l*r.hidden*r.dim:], h1, r.hidden, r.dim)
			for i := range x {
				x[i] += o[i]
			}
		}
		if pos+1 < len(ctx) {
			continue
		}
		logits := matmul(r.wcls, rmsnorm(x, r.rmsFinal), r.dim, r.vocab)
		mx := math.Inf(-1)
		for _, v := range logits {
			mx = math.Max(mx, v)
		}
		var s float64
		for _, v := range logits {
			s += math.Exp(v - mx)
		}
		ll += logits[seq[pos+1]] - mx - math.Log(s)
	}
	return ll
}

func mustTask(t *testing.T, name string, s Spec) Task {
	t.Helper()
	task, err := FromSpec(name, s)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

func TestSpecTemplates(t *testing.T) {
	task := mustTask(t, "t", Spec{
		Text:    "Q: {{ q.strip() }} {{c[1]}} {{n}}|{{b}}",
		Choices: []string{"{{c[0]}}", "lit"}, Gold: "g", Preprocess: "hellaswag",
	})
	items, err := Items(task, []Doc{{"q": "  why? ", "c": []any{"x [step] y", "z"}, "n": 3.0, "b": true, "g": 1.0}}, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if it := items[0]; it.Context != "Q: why? z 3|true" || it.Choices[0] != "x y" || it.Continuation(1) != " lit" || it.Gold != 1 {
		t.Errorf("item %+v", it)
	}
	for _, bad := range []Spec{
		{Text: "{{q | upper}}", Choices: []string{"a", "b"}, Gold: "g"},
		{Text: "{{q", Choices: []string{"a", "b"}, Gold: "g"},
		{Text: "q", Gold: "g"},
		{Text: "q", Choices: []string{"a", "b"}, ChoicesField: "c", Gold: "g"},
		{Text: "q", Choices: []string{"a", "b"}, Gold: "g", Preprocess: "arc"},
	} {
		if _, err := FromSpec("bad", bad); err == nil {
			t.Errorf("FromSpec(%+v) accepted", bad)
		}
	}
	if _, err := Items(task, []Doc{{"q": "x", "c": []any{"a"}, "n": 1.0, "b": true, "g": 0.0}}, 0, 0, 0); err == nil ||
		!strings.Contains(err.Error(), `t: document 0: field "c" has no item 1`) {
		t.Errorf("missing item: %v", err)
	}
}
