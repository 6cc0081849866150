package sft

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"

	"lrmc/kernels/chattemplate"
	"lrmc/kernels/textdata"
)

// runes encodes each character as one token (its code point), so that the
// expected masks below can be written as text.
func runes(s string) []int32 {
	var ids []int32
	for _, r := range s {
		ids = append(ids, r)
	}
	return ids
}

// piece is text of an expected example and whether it is trained.
type piece struct {
	text    string
	trained bool
}

func expect(pieces ...piece) Example {
	var ex Example
	for _, p := range pieces {
		for _, r := range p.text {
			ex.Tokens = append(ex.Tokens, r)
			ex.Mask = append(ex.Mask, p.trained)
		}
	}
	return ex
}

func mustTemplate(t *testing.T, src string) *chattemplate.Template {
	t.Helper()
	tmpl, err := chattemplate.New(src)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

// chat builds a conversation from role, content pairs.
func chat(t *testing.T, rc ...string) textdata.Conversation {
	t.Helper()
	var msgs []map[string]string
	for i := 0; i < len(rc); i += 2 {
		msgs = append(msgs, map[string]string{"role": rc[i], "content": rc[i+1]})
	}
	b, err := json.Marshal(msgs)
	if err != nil {
		t.Fatal(err)
	}
	return textdata.Conversation{Messages: b}
}

// show renders an example with trained text in brackets, for failures.
func show(ex Example) string {
	var s []rune
	for i, id := range ex.Tokens {
		if ex.Mask[i] && (i == 0 || !ex.Mask[i-1]) {
			s = append(s, '[')
		}
		s = append(s, rune(id))
		if ex.Mask[i] && (i+1 == len(ex.Tokens) || !ex.Mask[i+1]) {
			s = append(s, ']')
		}
	}
	return fmt.Sprintf("%q", string(s))
}

func checkExamples(t *testing.T, got []Example, want ...Example) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d examples, want %d", len(got), len(want))
	}
	for i := range want {
		if !slices.Equal(got[i].Tokens, want[i].Tokens) || !slices.Equal(got[i].Mask, want[i].Mask) {
			t.Errorf("example %d:\n got %s\nwant %s", i, show(got[i]), show(want[i]))
		}
	}
}

// chatML honours add_generation_prompt and renders history unchanged.
const chatML = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}" +
	"{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"

func TestOneExampleWhenHistoryIsKept(t *testing.T) {
	conv := chat(t, "system", "S", "user", "Hi", "assistant", "Hello!", "user", "Bye", "assistant", "Ciao", "user", "Later")
	got, err := FromConversation(mustTemplate(t, chatML), runes, conv, chattemplate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The newline after <|im_end|> is not trained, and the last user turn,
	// which no trained token follows, is dropped.
	checkExamples(t, got, expect(
		piece{"<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", false},
		piece{"Hello!<|im_end|>", true},
		piece{"\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n", false},
		piece{"Ciao<|im_end|>", true},
	))
}

func TestOneExamplePerTurnWhenHistoryIsRewritten(t *testing.T) {
	// Like Qwen3, this template drops the reasoning of earlier turns.
	src := "{% for m in messages %}<|im_start|>{{ m.role }}\n" +
		"{% if m.role == 'assistant' and not loop.last %}{{ m.content.split('</think>')[-1] }}{% else %}{{ m.content }}{% endif %}" +
		"<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
	conv := chat(t, "user", "Q1", "assistant", "<think>a</think>A1", "user", "Q2", "assistant", "<think>b</think>A2")
	got, err := FromConversation(mustTemplate(t, src), runes, conv, chattemplate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkExamples(t, got,
		expect(
			piece{"<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n", false},
			piece{"<think>a</think>A1<|im_end|>", true},
		),
		expect(
			piece{"<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n", false},
			piece{"<think>b</think>A2<|im_end|>", true},
		),
	)
}

// llama3Early is the first Llama 3 Instruct template: it appends the
// assistant header after every rendering, whatever add_generation_prompt.
const llama3Early = "{% set loop_messages = messages %}{% for message in loop_messages %}" +
	"{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}" +
	"{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}" +
	"{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"

func TestTemplateThatIgnoresGenerationPrompt(t *testing.T) {
	conv := chat(t, "user", "Hi", "assistant", " Hello! ", "user", "Bye", "assistant", "Ciao")
	got, err := FromConversation(mustTemplate(t, llama3Early), runes, conv, chattemplate.Options{BOSToken: "<B>"})
	if err != nil {
		t.Fatal(err)
	}
	const h = "<|start_header_id|>"
	checkExamples(t, got, expect(
		piece{"<B>" + h + "user<|end_header_id|>\n\nHi<|eot_id|>" + h + "assistant<|end_header_id|>\n\n", false},
		piece{"Hello!<|eot_id|>", true},
		piece{h + "user<|end_header_id|>\n\nBye<|eot_id|>" + h + "assistant<|end_header_id|>\n\n", false},
		piece{"Ciao<|eot_id|>", true},
	))
}

func TestToolsComeFromTheConversation(t *testing.T) {
	// trim_blocks eats the newline after {% endif %}.
	src := "{% if tools %}tools:{% for t in tools %} {{ t.name }}{% endfor %}\n{% endif %}" + chatML
	conv := chat(t, "user", "Hi", "assistant", "Hello")
	conv.Tools = json.RawMessage(`[{"name": "search"}, {"name": "calc"}]`)
	got, err := FromConversation(mustTemplate(t, src), runes, conv, chattemplate.Options{Tools: []any{"replaced"}})
	if err != nil {
		t.Fatal(err)
	}
	checkExamples(t, got, expect(
		piece{"tools: search calc<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", false},
		piece{"Hello<|im_end|>", true},
	))

	conv.Tools = json.RawMessage(`{"name": "search"}`)
	if _, err := FromConversation(mustTemplate(t, src), runes, conv, chattemplate.Options{}); err == nil || err.Error() != "sft: tools is not a list" {
		t.Errorf("tools object: error %v", err)
	}
}

func TestPromptNotAPrefixOfTheTurn(t *testing.T) {
	// Like Qwen3 with enable_thinking=false on reasoning data: the prompt
	// ends with an empty think block that the rendered turn lacks.
	src := "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}" +
		"{% if add_generation_prompt %}<|im_start|>assistant\n<think></think>{% endif %}"
	conv := chat(t, "user", "Hi", "assistant", "Hello")
	_, err := FromConversation(mustTemplate(t, src), runes, conv, chattemplate.Options{})
	want := `sft: assistant turn (message 1): the chat rendered up to this turn does not start with its prompt ` +
		`(the messages before it rendered with add_generation_prompt): at byte 52 the turn has "Hello<|im_end|>\n" where the prompt has "<think></think>"`
	if err == nil || err.Error() != want {
		t.Errorf("error\n %v\nwant\n %s", err, want)
	}
}

func TestRenderErrorNamesTheTurn(t *testing.T) {
	src := "{% for m in messages %}{% if m.content == 'bad' %}{{ raise_exception('no') }}{% endif %}{{ m.content }}{% endfor %}"
	conv := chat(t, "user", "Hi", "assistant", "bad")
	_, err := FromConversation(mustTemplate(t, src), runes, conv, chattemplate.Options{})
	var ex *chattemplate.ExceptionError
	if !errors.As(err, &ex) || ex.Message != "no" {
		t.Fatalf("error %v, want the template's exception", err)
	}
	if want := "sft: assistant turn (message 1): rendering it: " + ex.Error(); err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestNoAssistantTurn(t *testing.T) {
	got, err := FromConversation(mustTemplate(t, chatML), runes, chat(t, "system", "S", "user", "Hi"), chattemplate.Options{})
	if err != nil || got != nil {
		t.Errorf("got %v, %v; want no example", got, err)
	}
	_, err = FromConversation(mustTemplate(t, chatML), runes, textdata.Conversation{Messages: json.RawMessage(`{"role": "user"}`)}, chattemplate.Options{})
	if err == nil {
		t.Error("messages that are not an array: no error")
	}
}

func TestFromDocument(t *testing.T) {
	got := FromDocument(runes, "abc")
	checkExamples(t, []Example{got}, expect(piece{"abc", true}))
}

func TestTemplateWithoutGenerationPrompt(t *testing.T) {
	// Mistral's template: no generation prompt, and turns end with EOS.
	src := "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}[INST] {{ m.content }} [/INST]" +
		"{% else %}{{ m.content }}{{ eos_token }}{% endif %}{% endfor %}"
	conv := chat(t, "user", "Hi", "assistant", "Hello", "user", "Bye", "assistant", "Ciao")
	got, err := FromConversation(mustTemplate(t, src), runes, conv, chattemplate.Options{BOSToken: "<s>", EOSToken: "</s>"})
	if err != nil {
		t.Fatal(err)
	}
	checkExamples(t, got, expect(
		piece{"<s>[INST] Hi [/INST]", false},
		piece{"Hello</s>", true},
		piece{"[INST] Bye [/INST]", false},
		piece{"Ciao</s>", true},
	))
}

func TestAlwaysAppendedPromptAfterBOS(t *testing.T) {
	// The BOS is written before the loop, so rendering no messages gives
	// BOS and the header; only the header trails each turn.
	src := "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}<end>{% endfor %}<assistant>"
	conv := chat(t, "user", "Hi", "assistant", "Hello")
	got, err := FromConversation(mustTemplate(t, src), runes, conv, chattemplate.Options{BOSToken: "<s>"})
	if err != nil {
		t.Fatal(err)
	}
	checkExamples(t, got, expect(
		piece{"<s><user>Hi<end><assistant>", false},
		piece{"Hello<end>", true},
	))
}
