package generate

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"lrmc/internal/shareddata"
	"lrmc/kernels/llama"
	"lrmc/kernels/llama2c"
	"lrmc/kernels/sample"
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
// for token and byte for byte.
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
	m, err := llama2c.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	tokPath, err := llama2c.FindTokenizer(model, m.Config.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := llama2c.LoadTokenizer(tokPath, m.Config.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		t.Run(r.Prompt, func(t *testing.T) {
			if got := tok.Encode(r.Prompt, true, false); !slices.Equal(got, r.PromptTokens) {
				t.Fatalf("prompt tokens %v, want %v", got, r.PromptTokens)
			}
			// The reference ran 200 steps: len(tokens)-1 unless it stopped on BOS.
			steps := len(r.Tokens) - 1
			if r.StoppedOnBOS {
				t.Skip("reference stopped on BOS: its step count is not recorded")
			}
			var out strings.Builder
			got, err := Generate(m, tok, r.Prompt, Options{Steps: steps}, func(p string) { out.WriteString(p) })
			if err != nil {
				t.Fatal(err)
			}
			out.WriteString("\n") // run.c's final newline
			if !slices.Equal(got, r.Tokens) {
				i := 0
				for i < min(len(got), len(r.Tokens)) && got[i] == r.Tokens[i] {
					i++
				}
				t.Fatalf("tokens differ first at index %d (got %d tokens, want %d):\n got %v\nwant %v", i, len(got), len(r.Tokens), got, r.Tokens)
			}
			if out.String() != r.Stdout {
				t.Fatalf("stdout differs:\n got %q\nwant %q", out.String(), r.Stdout)
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

// fakeTokenizer encodes every prompt to fixed ids and prints ids as "<id>".
type fakeTokenizer struct{ prompt []int32 }

func (f fakeTokenizer) Encode(string, bool, bool) []int32 { return f.prompt }
func (f fakeTokenizer) SafePiece(prev, tok int32) string  { return fmt.Sprintf("<%d>", tok) }
func (f fakeTokenizer) BOS() int32                        { return 1 }

// bosModel is a model whose blocks are the identity (zero weights) and whose
// classifier scores only BOS, so every sampled token is BOS.
func bosModel() *llama.Model {
	c := llama.Config{Dim: 4, HiddenDim: 4, Layers: 1, Heads: 2, KVHeads: 1, Vocab: 6, SeqLen: 8,
		NormEps: 1e-5, RopeTheta: 10000}
	m := &llama.Model{Config: c, Embedding: make([]float32, 6*4), FinalNorm: []float32{1, 1, 1, 1},
		Classifier: make([]float32, 6*4)}
	for i := range m.Embedding {
		m.Embedding[i] = 1
	}
	copy(m.Classifier[4:8], []float32{1, 1, 1, 1})
	m.Layers = []llama.Layer{{AttnNorm: make([]float32, 4), Wq: make([]float32, 16), Wk: make([]float32, 8),
		Wv: make([]float32, 8), Wo: make([]float32, 16), FFNNorm: make([]float32, 4), W1: make([]float32, 16),
		W2: make([]float32, 16), W3: make([]float32, 16)}}
	return m
}

func TestGenerateStopsOnBOS(t *testing.T) {
	m := bosModel()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	got, err := Generate(m, fakeTokenizer{[]int32{1, 3, 4}}, "x", Options{}, func(p string) { out.WriteString(p) })
	if err != nil {
		t.Fatal(err)
	}
	// Positions 0 and 1 force the prompt; position 2 samples BOS and stops.
	if !slices.Equal(got, []int32{1, 3, 4}) || out.String() != "<3><4>" {
		t.Fatalf("tokens %v, printed %q; want [1 3 4] and \"<3><4>\"", got, out.String())
	}
}

func TestGenerateSteps(t *testing.T) {
	m := bosModel()
	// Steps cut the prompt short: 2 positions, 2 tokens chosen (both forced).
	got, err := Generate(m, fakeTokenizer{[]int32{1, 3, 4, 5, 3}}, "x", Options{Steps: 2}, nil)
	if err != nil || !slices.Equal(got, []int32{1, 3, 4}) {
		t.Fatalf("Steps 2: %v, %v", got, err)
	}
	// More steps than SeqLen (8) run SeqLen positions: a 9-token prompt is
	// forced through position 7 and the 9th token is the last one chosen.
	long := []int32{1, 3, 4, 5, 3, 4, 5, 3, 4}
	got, err = Generate(m, fakeTokenizer{long}, "x", Options{Steps: 100}, nil)
	if err != nil || !slices.Equal(got, long) {
		t.Fatalf("Steps 100: %v, %v", got, err)
	}
	if _, err := Generate(m, fakeTokenizer{long}, "x", Options{Steps: -1}, nil); err == nil ||
		err.Error() != "generate: steps is -1, must not be negative" {
		t.Fatalf("Steps -1: %v", err)
	}
	if _, err := Generate(m, fakeTokenizer{[]int32{1, 9}}, "x", Options{}, nil); err == nil ||
		err.Error() != "generate: prompt token 9 (at 1) outside the model's vocabulary [0, 6)" {
		t.Fatalf("bad token: %v", err)
	}
}

// TestGenerateSampledDeterministic: temperature sampling with a seed repeats.
func TestGenerateSampledDeterministic(t *testing.T) {
	model := shareddata.Path(t, "models", "stories260K", "stories260K.bin")
	m, err := llama2c.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := llama2c.LoadTokenizer(shareddata.Path(t, "models", "stories260K", "tok512.bin"), m.Config.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	opt := Options{Steps: 60, Temperature: 1, TopP: 0.9, Seed: 5}
	a, err := Generate(m, tok, "Once upon a time", opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate(m, tok, "Once upon a time", opt, nil)
	opt.Seed = 6
	c, _ := Generate(m, tok, "Once upon a time", opt, nil)
	if !slices.Equal(a, b) || slices.Equal(a, c) {
		t.Fatalf("seed 5 twice: %v / %v; seed 6: %v", a, b, c)
	}
}
