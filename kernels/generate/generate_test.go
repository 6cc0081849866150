package generate

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"lrmc/internal/shareddata"
	"lrmc/kernels/hf"
	"lrmc/kernels/llama"
	"lrmc/kernels/llama2c"
	"lrmc/kernels/sample"
	"lrmc/kernels/synth"
)

// reference is the part of reference/stories260K_greedy.json the test uses.
// The file holds one "result"; a "results" list is accepted too.
type reference struct {
	Semantics string      `json:"semantics"`
	Result    *refResult  `json:"result"`
	Results   []refResult `json:"results"`
}

type refResult struct {
	Prompt       string  `json:"prompt"`
	PromptTokens []int32 `json:"prompt_tokens"`
	Tokens       []int32 `json:"tokens"`
	StoppedOnBOS bool    `json:"stopped_on_bos"`
	Stdout       string  `json:"stdout"`
}

// TestReferenceGreedy reproduces run.c's greedy output for stories260K token
// for token and byte for byte, through Load, RunCSteps and Generate as the
// command runs them.
func TestReferenceGreedy(t *testing.T) {
	refPath := shareddata.Path(t, "reference", "stories260K_greedy.json")
	model := shareddata.Path(t, "models", "stories260K", "stories260K.bin")
	raw, err := os.ReadFile(refPath)
	if err != nil {
		t.Fatal(err)
	}
	var ref reference
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatalf("%s: %v", refPath, err)
	}
	results := ref.Results
	if ref.Result != nil {
		results = append(results, *ref.Result)
	}
	if len(results) == 0 {
		t.Fatalf("%s: no results", refPath)
	}
	m, err := Load(model, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.EOS, []int32{1}) {
		t.Fatalf("EOS %v, want [1] (run.c stops on BOS)", m.EOS)
	}
	for _, r := range results {
		t.Run(r.Prompt, func(t *testing.T) {
			prompt := m.Tok.EncodePrompt(r.Prompt)
			if !slices.Equal(prompt, r.PromptTokens) {
				t.Fatalf("prompt tokens %v, want %v", prompt, r.PromptTokens)
			}
			// The reference ran 200 steps: len(tokens)-1 unless it stopped on BOS.
			steps := len(r.Tokens) - 1
			if r.StoppedOnBOS {
				t.Skip("reference stopped on BOS: its step count is not recorded")
			}
			keep, maxNew := RunCSteps(len(prompt), steps, m.LM.Config.SeqLen)
			if keep != len(prompt) {
				t.Fatalf("RunCSteps kept %d prompt tokens of %d", keep, len(prompt))
			}
			var out strings.Builder
			out.WriteString(m.Tok.Decode(prompt))
			res, err := Generate(context.Background(), m.LM, m.Tok, prompt,
				Options{MaxNew: maxNew, EOS: m.EOS, Emit: func(p string) { out.WriteString(p) }})
			if err != nil {
				t.Fatal(err)
			}
			out.WriteString("\n") // run.c's final newline
			got := append(slices.Clone(prompt), res.IDs...)
			if !slices.Equal(got, r.Tokens) {
				i := 0
				for i < min(len(got), len(r.Tokens)) && got[i] == r.Tokens[i] {
					i++
				}
				t.Fatalf("tokens differ first at index %d (got %d tokens, want %d):\n got %v\nwant %v", i, len(got), len(r.Tokens), got, r.Tokens)
			}
			if res.Reason != StopMaxTokens {
				t.Errorf("stop reason %q, want %q", res.Reason, StopMaxTokens)
			}
			if out.String() != r.Stdout {
				t.Fatalf("stdout differs:\n got %q\nwant %q", out.String(), r.Stdout)
			}
			// The text of the continuation alone is the streamed text.
			if want := strings.TrimSuffix(r.Stdout, "\n")[len(m.Tok.Decode(prompt)):]; res.Text != want {
				t.Fatalf("Text %q, want %q", res.Text, want)
			}
		})
	}
}

// TestReferenceMargins reports how decisively the reference's greedy choices
// are made: the smallest gap between the best and second-best logit along
// the path. A forward pass whose logits differ from run.c's by less than
// that gap picks the same tokens.
func TestReferenceMargins(t *testing.T) {
	model := shareddata.Path(t, "models", "stories260K", "stories260K.bin")
	m, err := llama2c.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	tokens := []int32{1, 403, 407, 261, 378} // "Once upon a time" with BOS
	dec := llama.NewDecoder(m, 200)
	minGap, at := float32(math.Inf(1)), -1
	tok := tokens[0]
	for pos := range 200 {
		logits := dec.Step(tok, pos)
		if pos+1 < len(tokens) {
			tok = tokens[pos+1]
			continue
		}
		best := sample.Argmax(logits)
		second := float32(math.Inf(-1))
		for i, v := range logits {
			if int32(i) != best && v > second {
				second = v
			}
		}
		if gap := logits[best] - second; gap < minGap {
			minGap, at = gap, pos
		}
		tok = best
	}
	if !(minGap > 0) {
		t.Fatalf("a greedy choice is a tie (gap %g at position %d)", minGap, at)
	}
	t.Logf("smallest top-1/top-2 logit gap on the greedy path: %.3g at position %d", minGap, at)
}

// pieceTokenizer decodes id i as pieces[i], bytes concatenated and invalid
// UTF-8 shown as U+FFFD, as Hugging Face decoders do.
type pieceTokenizer []string

func (p pieceTokenizer) Decode(ids []int32) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(p[id])
	}
	return strings.ToValidUTF8(b.String(), "\uFFFD")
}

// letters decodes 0…7 as a…h.
var letters = pieceTokenizer{"a", "b", "c", "d", "e", "f", "g", "h"}

// cycleModel is a model of 8 ids whose greedy choice after id t is t+1
// (mod 8): the blocks add nothing (zero weights), so the final hidden state
// is the normalized one-hot embedding of t, and classifier row j picks out
// coordinate j-1.
func cycleModel(seqLen int) *llama.Model {
	const v = 8
	c := llama.Config{Dim: v, HiddenDim: 4, Layers: 1, Heads: 2, KVHeads: 1, Vocab: v, SeqLen: seqLen,
		NormEps: 1e-5, RopeTheta: 10000}
	m := &llama.Model{Config: c, Embedding: make([]float32, v*v), FinalNorm: make([]float32, v),
		Classifier: make([]float32, v*v)}
	for i := range v {
		m.Embedding[i*v+i] = 1
		m.FinalNorm[i] = 1
		m.Classifier[i*v+(i+v-1)%v] = 1
	}
	m.Layers = []llama.Layer{{AttnNorm: make([]float32, v), Wq: make([]float32, v*v), Wk: make([]float32, v*4),
		Wv: make([]float32, v*4), Wo: make([]float32, v*v), FFNNorm: make([]float32, v), W1: make([]float32, 4*v),
		W2: make([]float32, v*4), W3: make([]float32, 4*v)}}
	return m
}

func gen(t *testing.T, m *llama.Model, tok Detokenizer, prompt []int32, opt Options) Result {
	t.Helper()
	res, err := Generate(context.Background(), m, tok, prompt, opt)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestGenerateStops(t *testing.T) {
	m := cycleModel(64)
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		opt    Options
		ids    []int32
		text   string
		reason StopReason
		stop   string
	}{
		{"max new", Options{MaxNew: 3}, []int32{1, 2, 3}, "bcd", StopMaxTokens, ""},
		{"eos", Options{MaxNew: 20, EOS: []int32{7, 5}}, []int32{1, 2, 3, 4}, "bcde", StopEOS, ""},
		// The stop sequence's tokens stay in IDs; the text is cut before it.
		{"stop", Options{MaxNew: 20, Stop: []string{"de"}}, []int32{1, 2, 3, 4}, "bc", StopSequence, "de"},
		// The earliest of several wins, whatever their order.
		{"earliest stop", Options{MaxNew: 20, Stop: []string{"hab", "fg"}}, []int32{1, 2, 3, 4, 5, 6}, "bcde", StopSequence, "fg"},
		// A stop sequence spanning the wrap-around.
		{"stop later", Options{MaxNew: 20, Stop: []string{"hab"}}, []int32{1, 2, 3, 4, 5, 6, 7, 0, 1}, "bcdefg", StopSequence, "hab"},
		{"eos before stop", Options{MaxNew: 20, Stop: []string{"ef"}, EOS: []int32{4}}, []int32{1, 2, 3}, "bcd", StopEOS, ""},
		{"stop never met", Options{MaxNew: 4, Stop: []string{"x"}}, []int32{1, 2, 3, 4}, "bcde", StopMaxTokens, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var pieces []string
			c.opt.Emit = func(p string) { pieces = append(pieces, p) }
			res := gen(t, m, letters, []int32{0}, c.opt)
			if !slices.Equal(res.IDs, c.ids) || res.Text != c.text || res.Reason != c.reason || res.StopString != c.stop {
				t.Fatalf("got ids %v text %q reason %q stop %q; want %v %q %q %q",
					res.IDs, res.Text, res.Reason, res.StopString, c.ids, c.text, c.reason, c.stop)
			}
			if got := strings.Join(pieces, ""); got != c.text {
				t.Fatalf("emitted %q (%q), want %q", got, pieces, c.text)
			}
		})
	}
}

// TestGenerateEmitHoldsBack: text that may begin a stop sequence is held
// until it is known not to, and only then emitted.
func TestGenerateEmitHoldsBack(t *testing.T) {
	var pieces []string
	res := gen(t, cycleModel(64), letters, []int32{0}, Options{MaxNew: 6, Stop: []string{"cdx", "efy"},
		Emit: func(p string) { pieces = append(pieces, p) }})
	// "c" waits for "d", "cd" for "e"; "e" waits for "f", "ef" for "g".
	want := []string{"b", "cd", "efg"}
	if !slices.Equal(pieces, want) || res.Text != "bcdefg" {
		t.Fatalf("pieces %q text %q, want %q and \"bcdefg\"", pieces, res.Text, want)
	}
}

// TestGenerateEmitWholeCharacters: a character whose bytes span tokens is
// emitted once complete, never as U+FFFD.
func TestGenerateEmitWholeCharacters(t *testing.T) {
	tok := pieceTokenizer{"a", "b", "c", "d", "e", "f", "\xe2\x82", "\xac"}
	var pieces []string
	res := gen(t, cycleModel(64), tok, []int32{4}, Options{MaxNew: 5, Emit: func(p string) { pieces = append(pieces, p) }})
	want := []string{"f", "€", "a", "b"}
	if !slices.Equal(pieces, want) || res.Text != "f€ab" {
		t.Fatalf("pieces %q text %q, want %q and \"f€ab\"", pieces, res.Text, want)
	}
	// Stopping inside a character flushes what there is.
	pieces = nil
	res = gen(t, cycleModel(64), tok, []int32{4}, Options{MaxNew: 2, Emit: func(p string) { pieces = append(pieces, p) }})
	if got := strings.Join(pieces, ""); got != "f\uFFFD" || res.Text != "f\uFFFD" {
		t.Fatalf("emitted %q text %q, want \"f\\uFFFD\"", got, res.Text)
	}
}

// TestGenerateContext: MaxNew 0 fills the context; a longer MaxNew is cut
// there; a prompt longer than the context is refused.
func TestGenerateContext(t *testing.T) {
	m := cycleModel(6)
	// Prompt positions 0, 1; new tokens fed at 2…5, and one more chosen.
	for _, maxNew := range []int{0, 100} {
		res := gen(t, m, letters, []int32{0, 1}, Options{MaxNew: maxNew})
		if !slices.Equal(res.IDs, []int32{2, 3, 4, 5, 6}) || res.Reason != StopMaxTokens {
			t.Fatalf("MaxNew %d: %v %q", maxNew, res.IDs, res.Reason)
		}
	}
	for _, c := range []struct {
		prompt []int32
		opt    Options
		want   string
	}{
		{[]int32{0, 1, 2, 3, 4, 5, 6}, Options{}, "generate: the prompt's 7 tokens exceed the model's context of 6 positions"},
		{[]int32{0, 9}, Options{}, "generate: prompt token 9 (at 1) outside the model's vocabulary [0, 8)"},
		{nil, Options{}, "generate: empty prompt"},
		{[]int32{0}, Options{MaxNew: -1}, "generate: max new tokens is -1, must not be negative"},
		{[]int32{0}, Options{Stop: []string{""}}, "generate: empty stop sequence"},
	} {
		if _, err := Generate(context.Background(), m, letters, c.prompt, c.opt); err == nil || err.Error() != c.want {
			t.Errorf("%v %+v: error %v, want %q", c.prompt, c.opt, err, c.want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Generate(ctx, m, letters, []int32{0}, Options{}); err != context.Canceled {
		t.Errorf("cancelled context: %v", err)
	}
}

func TestRunCSteps(t *testing.T) {
	for _, c := range []struct{ prompt, steps, seqLen, keep, maxNew int }{
		{5, 200, 256, 5, 196}, // 200 positions: 4 forced, 196 chosen
		{5, 0, 256, 5, 252},   // 0: the context
		{5, 999, 256, 5, 252}, // capped at the context
		{5, 5, 256, 5, 1},
		{5, 4, 256, 5, 0}, // the steps end with the prompt
		{5, 2, 256, 3, 0}, // ... or inside it
	} {
		keep, maxNew := RunCSteps(c.prompt, c.steps, c.seqLen)
		if keep != c.keep || maxNew != c.maxNew {
			t.Errorf("RunCSteps(%d, %d, %d) = %d, %d; want %d, %d", c.prompt, c.steps, c.seqLen, keep, maxNew, c.keep, c.maxNew)
		}
	}
}

func TestCutStop(t *testing.T) {
	for _, c := range []struct {
		text string
		stop []string
		want string
		at   string
	}{
		{"abcabc", []string{"c", "b"}, "a", "b"},
		{"abc", nil, "abc", ""},
		{"Q: 1\n\nQ: 2", []string{"\n\n", "Q:"}, "", "Q:"},
		{"x = 4\n\nQuestion", []string{"Question", "\n\n"}, "x = 4", "\n\n"},
		{"abc", []string{"", "d"}, "abc", ""},
	} {
		got, at := CutStop(c.text, c.stop)
		if got != c.want || at != c.at {
			t.Errorf("CutStop(%q, %q) = %q, %q; want %q, %q", c.text, c.stop, got, at, c.want, c.at)
		}
	}
}

// TestGenerateSampledDeterministic: temperature sampling with a seed
// repeats, and another seed gives another text.
func TestGenerateSampledDeterministic(t *testing.T) {
	m, err := Load(shareddata.Path(t, "models", "stories260K", "stories260K.bin"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	prompt := m.Tok.EncodePrompt("Once upon a time")
	opt := Options{MaxNew: 60, Temperature: 1, TopP: 0.9, Seed: 5, EOS: m.EOS}
	a := gen(t, m.LM, m.Tok, prompt, opt)
	b := gen(t, m.LM, m.Tok, prompt, opt)
	opt.Seed = 6
	c := gen(t, m.LM, m.Tok, prompt, opt)
	if !slices.Equal(a.IDs, b.IDs) || a.Text != b.Text || slices.Equal(a.IDs, c.IDs) || a.Text == c.Text {
		t.Fatalf("seed 5 twice: %q / %q; seed 6: %q", a.Text, b.Text, c.Text)
	}
}

// TestGenerateBinAndGGUF: stories260K as a llama2.c checkpoint and as GGUF
// (weights and tokenizer converted) encode the prompt alike and generate
// the same greedy tokens and text.
func TestGenerateBinAndGGUF(t *testing.T) {
	bin, err := Load(shareddata.Path(t, "models", "stories260K", "stories260K.bin"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	gg, err := Load(shareddata.Path(t, "models", "stories260K", "stories260K.gguf"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	const prompt = "Once upon a time"
	pb, pg := bin.Tok.EncodePrompt(prompt), gg.Tok.EncodePrompt(prompt)
	if !slices.Equal(pb, pg) {
		t.Fatalf("prompt ids: .bin %v, .gguf %v", pb, pg)
	}
	var sb, sg strings.Builder
	rb := gen(t, bin.LM, bin.Tok, pb, Options{MaxNew: 120, EOS: bin.EOS, Emit: func(s string) { sb.WriteString(s) }})
	rg := gen(t, gg.LM, gg.Tok, pg, Options{MaxNew: 120, EOS: gg.EOS, Emit: func(s string) { sg.WriteString(s) }})
	if !slices.Equal(rb.IDs, rg.IDs) {
		t.Fatalf("ids differ:\n.bin  %v\n.gguf %v", rb.IDs, rg.IDs)
	}
	if rb.Text != rg.Text || sb.String() != sg.String() {
		t.Fatalf("text differs:\n.bin  %q (streamed %q)\n.gguf %q (streamed %q)", rb.Text, sb.String(), rg.Text, sg.String())
	}
	if bin.Tok.Decode(pb) != gg.Tok.Decode(pg) {
		t.Fatalf("prompt text: .bin %q, .gguf %q", bin.Tok.Decode(pb), gg.Tok.Decode(pg))
	}
}

// TestLoadHFEOS: a Hugging Face checkpoint ends generation at the
// tokenizer's eos_token and at config.json's and generation_config.json's
// eos_token_id, as transformers' generate does; the chat template and its
// special tokens come from tokenizer_config.json.
func TestLoadHFEOS(t *testing.T) {
	tokDir := shareddata.Path(t, "tokenizers", "qwen3")
	dir := filepath.Join(t.TempDir(), "m")
	m, cfg, err := synth.New(synth.Spec{Arch: "qwen3", Layers: 1, Dim: 16, Heads: 2, KVHeads: 1, HeadDim: 8,
		FFN: 16, Vocab: 64, SeqLen: 32, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := hf.Save(dir, m, cfg, "float32", 0); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tokenizer.json", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(tokDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gc := filepath.Join(dir, "generation_config.json")
	if err := os.WriteFile(gc, []byte(`{"eos_token_id": [151645, 151643], "do_sample": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir, "", "bfloat16")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.EOS, []int32{151645, 151643}) || got.Format != "hf" || got.Template == nil ||
		got.Specials.EOS != "<|im_end|>" || got.LM.DType() != llama.BFloat16 {
		t.Fatalf("EOS %v, format %q, template %v, specials %+v, dtype %s", got.EOS, got.Format, got.Template != nil, got.Specials, got.LM.DType())
	}
	if err := os.WriteFile(gc, []byte(`{"eos_token_id": "x"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, "", ""); err == nil || !strings.Contains(err.Error(), gc+": eos_token_id: want an id or a list of ids") {
		t.Fatalf("bad generation_config.json: %v", err)
	}
	if _, err := Load(dir, filepath.Join(dir, "config.json"), ""); err == nil ||
		!strings.Contains(err.Error(), "cannot tell the tokenizer's format") {
		t.Fatalf("tokenizer config.json: %v", err)
	}
}

func TestMetaID(t *testing.T) {
	for _, c := range []struct {
		v  any
		id int32
		ok bool
	}{
		{uint32(2), 2, true}, {int32(7), 7, true}, {uint64(151645), 151645, true}, {int64(-1), 0, false},
		{uint64(1 << 40), 0, false}, {"2", 0, false}, {uint8(3), 3, true},
	} {
		if id, ok := metaID(c.v); id != c.id || ok != c.ok {
			t.Errorf("metaID(%T %v) = %d, %v; want %d, %v", c.v, c.v, id, ok, c.id, c.ok)
		}
	}
}
