package textdata

import (
	"encoding/json"
	"strings"
	"testing"

	"lrmc/internal/shareddata"
)

func TestReadConversationsThinkTraces(t *testing.T) {
	p := shareddata.Path(t, "text", "reasoning_tool_use", "reason_tool_use_demo_50.think.jsonl")
	cs, err := ReadConversations(p, FormatChat)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 50 {
		t.Fatalf("%d conversations, want 50", len(cs))
	}
	var msgs []map[string]string
	if err := json.Unmarshal(cs[0].Messages, &msgs); err != nil {
		t.Fatal(err)
	}
	if msgs[0]["role"] != "system" || msgs[2]["role"] != "assistant" || !strings.HasPrefix(msgs[2]["content"], "<think>\n") {
		t.Errorf("first conversation: %v", msgs[:3])
	}
	if cs[0].Tools == nil || !json.Valid(cs[0].Tools) || cs[0].Tools[0] != '[' {
		t.Errorf("tools not decoded from their JSON string: %.60s", cs[0].Tools)
	}
}

func TestReadConversationsAlpacaArray(t *testing.T) {
	p := shareddata.Path(t, "text", "alpaca_en_demo", "alpaca_en_demo.json")
	cs, err := ReadConversations(p, FormatInstruction)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 999 {
		t.Fatalf("%d records, want 999", len(cs))
	}
	var msgs []map[string]string
	json.Unmarshal(cs[0].Messages, &msgs)
	if len(msgs) != 2 || msgs[0]["role"] != "user" || msgs[0]["content"] != "Describe a process of making crepes." ||
		msgs[1]["role"] != "assistant" || !strings.HasPrefix(msgs[1]["content"], "Making crepes is an easy") {
		t.Errorf("first record: %v", msgs)
	}
}

func TestReadConversationsShareGPTAndErrors(t *testing.T) {
	p := writeFile(t, "sg.jsonl", `{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}`+"\n\n")
	cs, err := ReadConversations(p, FormatChat)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(cs[0].Messages); got != `[{"content":"hi","role":"user"},{"content":"hello","role":"assistant"}]` {
		t.Errorf("messages = %s", got)
	}
	for _, c := range []struct{ format, content, want string }{
		{FormatChat, `{"conversations": [{"from": "alien", "value": "x"}]}`, `:1: conversations[0]: unknown speaker "alien"`},
		{FormatChat, "\n" + `{"messages": [{"content": "x"}]}`, `:2: turn 0 lacks "role"`},
		{FormatChat, `{"text": "x"}`, `:1: no "messages" or "conversations" list`},
		{FormatChat, `[1]`, `:[0]: want a JSON object`},
		{FormatInstruction, `{"instruction": "x"}`, `:1: record lacks "output"`},
		{FormatInstruction, `{"instruction": 3, "output": "y"}`, `:1: "instruction" is not a string`},
		{"yaml", `{}`, `unknown conversation format "yaml"`},
	} {
		p := writeFile(t, "bad.jsonl", c.content)
		_, err := ReadConversations(p, c.format)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%q: error %v, want one naming %s and %q", c.content, err, p, c.want)
		}
	}
}
