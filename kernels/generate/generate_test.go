package generate

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"lrmc/internal/shareddata"
	"lrmc/kernels/llama2c"
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
