package ops

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"lrmc/executor"
	"lrmc/internal/shareddata"
	"lrmc/kernels/textdata"
	"lrmc/planner"
)

// The preview is the op's own output cut into sequences: concatenated, its
// ids (and masks) are the data.tokens and data.sft streams.
func TestPreviewIsTheOpsStream(t *testing.T) {
	data := shareddata.Path(t, "text", "reasoning_tool_use", "reason_tool_use_demo_50.think.jsonl")
	tok := shareddata.Path(t, "tokenizers", "qwen3")
	text := shareddata.Path(t, "text", "tinystories", "tinystories_val.txt")
	l2c := shareddata.Path(t, "models", "stories260K", "tok512.bin")
	on := true
	cases := []struct {
		name      string
		data, tok string
		p         planner.TokensParams
	}{
		{"chat", data, tok, planner.TokensParams{TokenizerFormat: "hf", Vocab: 151936, Format: "chat", From: 0, To: 0.2, Template: "model", Thinking: &on}},
		{"text", text, l2c, planner.TokensParams{TokenizerFormat: "llama2c", Vocab: 512, Format: "text", From: 0.95, To: 1}},
	}
	for _, c := range cases {
		params, _ := json.Marshal(c.p)
		for _, op := range []string{planner.OpTokens, planner.OpSFT} {
			pv, err := PreviewData(op, params, c.data, c.tok, 1<<30)
			if err != nil {
				t.Fatalf("%s %s: %v", c.name, op, err)
			}
			var ids []int32
			var mask []bool
			for _, it := range pv.Shown {
				ids = append(ids, it.IDs...)
				mask = append(mask, it.Mask...)
				if len(it.Pieces) != len(it.IDs) {
					t.Fatalf("%s %s: %d pieces for %d ids", c.name, op, len(it.Pieces), len(it.IDs))
				}
			}
			call := &executor.Call{Node: &planner.Node{Op: op, Params: params}, Inputs: []any{c.data, c.tok}, Log: hclog.NewNullLogger()}
			var want []int32
			var wantMask []bool
			if op == planner.OpTokens {
				v, err := dataTokens{}.Run(context.Background(), call)
				if err != nil {
					t.Fatal(err)
				}
				want = v.(Tokens).IDs
			} else {
				v, err := dataSFT{}.Run(context.Background(), call)
				if err != nil {
					t.Fatal(err)
				}
				want, wantMask = v.(SFTStream).IDs, v.(SFTStream).Mask
				trained := 0
				for _, m := range wantMask {
					if m {
						trained++
					}
				}
				if pv.Trained != trained || !slices.Equal(mask, wantMask) {
					t.Errorf("%s %s: preview trains on %d tokens, the op on %d", c.name, op, pv.Trained, trained)
				}
			}
			if !slices.Equal(ids, want) || pv.Tokens != len(want) {
				t.Errorf("%s %s: preview holds %d tokens (says %d), the op's stream %d", c.name, op, len(ids), pv.Tokens, len(want))
			}
		}
	}
}

// Qwen3's template keeps the reasoning of assistant turns after the last
// user message only. Over the whole shared file, 72 of the 112 reasoning
// parts (the count its README gives) reach calibration; data.sft's per-turn
// expansion trains on every one of them.
func TestPreviewCountsDroppedThinkBlocks(t *testing.T) {
	data := shareddata.Path(t, "text", "reasoning_tool_use", "reason_tool_use_demo_50.think.jsonl")
	tok := shareddata.Path(t, "tokenizers", "qwen3")
	on := true
	params, _ := json.Marshal(planner.TokensParams{TokenizerFormat: "hf", Vocab: 151936, Format: "chat", From: 0, To: 1, Template: "model", Thinking: &on})
	pv, err := PreviewData(planner.OpTokens, params, data, tok, 0)
	if err != nil {
		t.Fatal(err)
	}
	if pv.Items != 50 || pv.Think.Total != 112 || pv.Think.Seen != 72 || len(pv.Shown) != 0 {
		t.Errorf("data.tokens: %d conversations, %d of %d blocks seen, %d shown; want 50, 72 of 112, 0", pv.Items, pv.Think.Seen, pv.Think.Total, len(pv.Shown))
	}
	// A conversation listed as losing some holds more than one assistant
	// reasoning block: the last turn's always survives.
	convs, err := textdata.ReadConversations(data, "chat")
	if err != nil {
		t.Fatal(err)
	}
	if len(pv.Think.Conversations) == 0 {
		t.Error("no conversation listed as losing reasoning")
	}
	for _, i := range pv.Think.Conversations {
		if think, _ := splitMessages(convs[i].Messages); len(think) < 2 {
			t.Errorf("conversation %d loses reasoning but has %d blocks", i, len(think))
		}
	}
	// Qwen3's template keeps what follows the last "</think>" of a
	// message: the text of the messages holding more "</think>" than
	// "<think>" is lost, and only theirs.
	var unbalanced []int
	for i, c := range convs {
		var msgs []struct {
			Content string `json:"content"`
		}
		json.Unmarshal(c.Messages, &msgs)
		for _, m := range msgs {
			if strings.Count(m.Content, "</think>") != strings.Count(m.Content, "<think>") {
				unbalanced = append(unbalanced, i)
				break
			}
		}
	}
	if len(unbalanced) == 0 || !slices.Equal(pv.Messages.Conversations, unbalanced) || pv.Messages.Seen >= pv.Messages.Total {
		t.Errorf("conversations losing message text: %v (%d of %d seen); unbalanced <think> tags in %v",
			pv.Messages.Conversations, pv.Messages.Seen, pv.Messages.Total, unbalanced)
	}
	pv, err = PreviewData(planner.OpSFT, params, data, tok, 0)
	if err != nil {
		t.Fatal(err)
	}
	if pv.Think.Total != 112 || pv.Think.Seen != 112 || pv.Examples <= pv.Items {
		t.Errorf("data.sft: %d of %d blocks seen in %d examples of %d conversations; want all, expanded per turn", pv.Think.Seen, pv.Think.Total, pv.Examples, pv.Items)
	}
}
