package ops

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"lrmc/executor"
	"lrmc/internal/shareddata"
	"lrmc/kernels/chattemplate"
	"lrmc/kernels/tokenizer"
	"lrmc/planner"
)

func runTokens(t *testing.T, p planner.TokensParams, data, tok string) (Tokens, error) {
	t.Helper()
	params, _ := json.Marshal(p)
	c := &executor.Call{
		Node:   &planner.Node{Op: planner.OpTokens, Params: params},
		Inputs: []any{data, tok},
		Log:    hclog.NewNullLogger(),
	}
	v, err := dataTokens{}.Run(context.Background(), c)
	if err != nil {
		return Tokens{}, err
	}
	return v.(Tokens), nil
}

func TestChatDataThroughTheModelsTemplate(t *testing.T) {
	data := shareddata.Path(t, "text", "reasoning_tool_use", "reason_tool_use_demo_50.think.jsonl")
	dir := shareddata.Path(t, "tokenizers", "qwen3")
	on, off := true, false
	p := planner.TokensParams{TokenizerFormat: "hf", Vocab: 151936, Format: "chat", From: 0, To: 0.1, Template: "model", Thinking: &on}
	got, err := runTokens(t, p, data, dir)
	if err != nil {
		t.Fatal(err)
	}
	// Independently: render the first five conversations and encode them.
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, sp, err := chattemplate.FromTokenizerConfig(dir + "/tokenizer_config.json")
	if err != nil {
		t.Fatal(err)
	}
	var want []int32
	var first string
	for _, line := range readLines(t, data)[:5] {
		var rec struct {
			Messages json.RawMessage `json:"messages"`
			Tools    string          `json:"tools"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		tools, err := chattemplate.ParseJSON([]byte(rec.Tools))
		if err != nil {
			t.Fatal(err)
		}
		text, err := tmpl.RenderJSON(rec.Messages, chattemplate.Options{
			BOSToken: sp.BOS, EOSToken: sp.EOS, Tools: tools.([]any), Vars: map[string]any{"enable_thinking": true}})
		if err != nil {
			t.Fatal(err)
		}
		if first == "" {
			first = text
		}
		want = append(want, tok.Encode(text, false)...)
	}
	if !strings.HasPrefix(first, "<|im_start|>system\n") || !strings.Contains(first, "<tools>") || !strings.Contains(first, "<think>") {
		t.Errorf("rendered chat lacks the system turn, tools or a think block:\n%.400s", first)
	}
	if len(got.IDs) != len(want) {
		t.Fatalf("%d tokens, want %d", len(got.IDs), len(want))
	}
	for i := range want {
		if got.IDs[i] != want[i] {
			t.Fatalf("token %d = %d, want %d", i, got.IDs[i], want[i])
		}
	}
	// Qwen3's enable_thinking acts only at the generation prompt, which
	// training data does not have: the tokens must not change.
	p.Thinking = &off
	gotOff, err := runTokens(t, p, data, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(gotOff.IDs) != len(got.IDs) {
		t.Errorf("thinking off changed the training tokens: %d vs %d", len(gotOff.IDs), len(got.IDs))
	}

	// Errors name the file.
	p.Template = ""
	if _, err := runTokens(t, p, data, dir); err == nil || !strings.Contains(err.Error(), data+`: chat data needs template "model"`) {
		t.Errorf("chat without template: %v", err)
	}
	p = planner.TokensParams{TokenizerFormat: "hf", Vocab: 1000, Format: "text", From: 0, To: 0.01}
	text := shareddata.Path(t, "text", "tinystories", "tinystories_val.txt")
	if _, err := runTokens(t, p, text, dir); err == nil || !strings.Contains(err.Error(), "outside the model's vocabulary of 1000") {
		t.Errorf("ids beyond the vocabulary: %v", err)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}
