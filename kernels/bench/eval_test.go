package bench

import (
	"context"
	"slices"
	"strings"
	"testing"

	"lrmc/kernels/generate"
	"lrmc/kernels/mceval"
	"lrmc/kernels/synth"
)

// MeasureMC counts the tokens and rows the harness scores (each part's
// context once, every continuation but its last token; an over-long item
// cut per choice), and its rates and ratios are those of its times.
func TestMeasureMCCounts(t *testing.T) {
	m, _, err := synth.New(synth.Spec{Arch: "llama", Layers: 1, Dim: 16, Heads: 2, KVHeads: 1, FFN: 32, Vocab: 30, SeqLen: 12, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	rs := []mceval.Request{
		{Context: []int32{1, 2, 3}, Conts: [][]int32{{4, 5}, {6}, {7, 8, 9}}},
		// 11+3 tokens: 14 > 12+1, so that choice keeps 10 context tokens,
		// the other all 11: two parts.
		{Context: []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, Conts: [][]int32{{11, 12, 13}, {14}}},
	}
	r, err := MeasureMC(m, "tiny", "hand", rs, EvalOptions{Steps: false})
	if err != nil {
		t.Fatal(err)
	}
	// Item 0: 3 + (1+0+2) fed, 1 + 3 rows. Item 1: parts of 10 and 11
	// context tokens, 10+2 and 11+0 fed, (1+2)+(1+0) rows.
	if r.Items != 2 || r.Choices != 5 || r.FedTokens != 6+23 || r.LogitRows != 4+4 {
		t.Errorf("items %d choices %d fed %d rows %d, want 2, 5, 29, 8", r.Items, r.Choices, r.FedTokens, r.LogitRows)
	}
	if !(r.Seconds > 0 && r.PrefillSeconds > 0) || r.Ratio != r.Seconds/r.PrefillSeconds ||
		r.ItemsPerS != 2/r.Seconds || r.PrefillItemsPerS != 2/r.PrefillSeconds || r.StepsSeconds != 0 || r.Kind != "mc" {
		t.Errorf("result %+v", r)
	}
	if _, err := MeasureMC(m, "tiny", "hand", []mceval.Request{{Context: []int32{1}, Conts: [][]int32{make([]int32, 13)}}}, EvalOptions{}); err == nil ||
		!strings.Contains(err.Error(), "hand item 0: a continuation of 13 tokens does not fit the model's 12 positions") {
		t.Errorf("over-long continuation: %v", err)
	}
}

type digits struct{}

func (digits) Decode(ids []int32) string {
	var b strings.Builder
	for _, id := range ids {
		b.WriteByte('a' + byte(id%26))
	}
	return b.String()
}

// The plain decode the generation benchmark compares with does generation's
// work: the same greedy tokens from the same positions.
func TestPlainDecodeIsGreedyGeneration(t *testing.T) {
	m, _, err := synth.New(synth.Spec{Arch: "llama", Layers: 2, Dim: 16, Heads: 2, KVHeads: 1, FFN: 32, Vocab: 30, SeqLen: 40, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	prompt := []int32{1, 5, 7}
	g, err := generate.Generate(context.Background(), m, digits{}, prompt, generate.Options{MaxNew: 20})
	if err != nil {
		t.Fatal(err)
	}
	if got := plainDecode(m, prompt, 20); !slices.Equal(got, g.IDs) {
		t.Errorf("plain decode %v, generate %v", got, g.IDs)
	}
	r, err := MeasureGenerate(m, digits{}, "tiny", prompt, 20, EvalOptions{Reps: 2})
	if err != nil || r.Tokens != 20 || r.PromptTokens != 3 || r.Reps != 2 || r.Ratio != r.Seconds/r.DecodeSeconds || r.Kind != "generate" {
		t.Errorf("MeasureGenerate = %+v, %v", r, err)
	}
	if _, err := MeasureGenerate(m, digits{}, "tiny", prompt, 39, EvalOptions{}); err == nil ||
		err.Error() != "bench: 3 prompt and 39 new tokens do not fit the model's 40 positions" {
		t.Errorf("too many tokens: %v", err)
	}
}
