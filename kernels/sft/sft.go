// Package sft builds supervised fine-tuning examples for recovery training:
// token sequences with a loss mask that is true on the tokens the model is
// trained to produce (the assistant's) and false on the prompt.
//
// # Conversations
//
// FromConversation renders a conversation through the model's own chat
// template, so the tokens are exactly those the model sees when serving, and
// finds each assistant turn's text by rendering prefixes of the chat:
//
//	F   = render(messages)                                  the whole chat
//	P_i = render(messages[:i], add_generation_prompt=true)  the prompt of assistant turn i
//	T_i = render(messages[:i+1])                            the chat up to and including turn i
//
// T_i must start with P_i (an error naming the turn otherwise); the turn's
// span is T_i[len(P_i):]: the assistant's content as the template writes it
// (with Qwen3's "<think>…</think>" block, tool-call markup and so on) and the
// end-of-turn token the template emits after it ("<|im_end|>",
// "<|eot_id|>"), so that the model learns to stop. Two kinds of template glue
// at the end of the span are left out of it, being text the model never
// generates because generation stops at the end-of-turn token:
//
//   - trailing white space, such as ChatML's newline after "<|im_end|>";
//   - the generation prompt of templates that append it whatever
//     add_generation_prompt says (the early Llama 3 Instruct template ends
//     every rendering with "<|start_header_id|>assistant<|end_header_id|>\n\n").
//     Such a template is recognised by rendering messages[:i] without
//     add_generation_prompt and getting P_i; what it appends is what it
//     renders for no messages, less a leading BOS token.
//
// If every T_i, cut at the end of its span, is a prefix of F, the template
// renders history as it rendered each turn, and the result is one example:
// F with the mask set on every span. Otherwise the template rewrites
// history (Qwen3 drops the reasoning of assistant turns that precede the
// last user query), and the result is one example per assistant turn: T_i
// with its own span masked, the standard per-turn expansion. Either way an
// example ends with its last span: later text would predict nothing.
//
// Character spans become token masks by encoding the text in pieces (the
// text before a span, the span, the text before the next span, …) so that
// token boundaries fall on span boundaries. This can differ from encoding
// the text whole only at span edges: where a merge across the edge is lost,
// or where the tokenizer treats the start of a text specially (the dummy
// space prefix of SentencePiece). With Qwen3 and Llama 3 every span edge is
// a special token or a pre-tokenizer split, and the tests check that the
// two encodings agree on the shared data.
package sft

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"lrmc/kernels/chattemplate"
	"lrmc/kernels/textdata"
)

// Example is one training sequence.
type Example struct {
	Tokens []int32
	// Mask[i] is true when Tokens[i] is trained on: predicted by the
	// position before it and counted in the loss.
	Mask []bool
}

// Renderer renders a chat given as a JSON array of message objects;
// *chattemplate.Template is one.
type Renderer interface {
	RenderJSON(messages []byte, opts chattemplate.Options) (string, error)
}

// FromDocument returns plain text as an example trained on every token.
// enc decides about BOS and EOS.
func FromDocument(enc func(string) []int32, text string) Example {
	toks := enc(text)
	mask := make([]bool, len(toks))
	for i := range mask {
		mask[i] = true
	}
	return Example{Tokens: toks, Mask: mask}
}

// FromConversation returns the examples of one conversation, as the package
// documentation describes. enc must encode rendered text as the model's
// serving stack does: special tokens written in the text become their ids
// and nothing is added (tokenizer.Tokenizer.Encode(text, false)). The
// conversation's tools, when it has any, replace opts.Tools. A conversation
// without an assistant turn has no example.
func FromConversation(tmpl Renderer, enc func(string) []int32, conv textdata.Conversation, opts chattemplate.Options) ([]Example, error) {
	var msgs []json.RawMessage
	if err := json.Unmarshal(conv.Messages, &msgs); err != nil {
		return nil, fmt.Errorf("sft: messages: want a JSON array: %w", err)
	}
	if conv.Tools != nil {
		tools, err := chattemplate.ParseJSON(conv.Tools)
		if err != nil {
			return nil, fmt.Errorf("sft: tools: %w", err)
		}
		list, ok := tools.([]any)
		if !ok {
			return nil, fmt.Errorf("sft: tools is not a list")
		}
		opts.Tools = list
	}
	// One clock for every rendering, so that a template printing the date
	// renders each prefix of the chat identically.
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	r := renderer{tmpl: tmpl, opts: opts}

	var turns []turn
	for i, m := range msgs {
		var head struct {
			Role string `json:"role"`
		}
		if err := json.Unmarshal(m, &head); err != nil {
			return nil, fmt.Errorf("sft: message %d: %w", i, err)
		}
		if head.Role != "assistant" {
			continue
		}
		t, err := r.turn(msgs, i)
		if err != nil {
			return nil, fmt.Errorf("sft: assistant turn (message %d): %w", i, err)
		}
		turns = append(turns, t)
	}
	if len(turns) == 0 {
		return nil, nil
	}

	full, err := r.render(msgs, false)
	if err != nil {
		return nil, fmt.Errorf("sft: rendering the conversation: %w", err)
	}
	whole := true
	for k, t := range turns {
		if !strings.HasPrefix(full, t.text[:t.end]) || k > 0 && t.start < turns[k-1].end {
			whole = false
			break
		}
	}
	if whole {
		spans := make([][2]int, len(turns))
		for k, t := range turns {
			spans[k] = [2]int{t.start, t.end}
		}
		return []Example{encodeSpans(enc, full, spans)}, nil
	}
	out := make([]Example, len(turns))
	for k, t := range turns {
		out[k] = encodeSpans(enc, t.text, [][2]int{{t.start, t.end}})
	}
	return out, nil
}

// turn is an assistant turn: its rendering T_i and the span [start, end)
// of T_i that is trained on.
type turn struct {
	text       string
	start, end int
}

type renderer struct {
	tmpl Renderer
	opts chattemplate.Options
}

func (r renderer) render(msgs []json.RawMessage, genPrompt bool) (string, error) {
	o := r.opts
	o.AddGenerationPrompt = genPrompt
	arr := []byte{'['}
	for k, m := range msgs {
		if k > 0 {
			arr = append(arr, ',')
		}
		arr = append(arr, m...)
	}
	return r.tmpl.RenderJSON(append(arr, ']'), o)
}

// turn finds the span of the assistant message msgs[i].
func (r renderer) turn(msgs []json.RawMessage, i int) (turn, error) {
	prompt, err := r.render(msgs[:i], true)
	if err != nil {
		return turn{}, fmt.Errorf("rendering its prompt: %w", err)
	}
	text, err := r.render(msgs[:i+1], false)
	if err != nil {
		return turn{}, fmt.Errorf("rendering it: %w", err)
	}
	if !strings.HasPrefix(text, prompt) {
		k := len(commonPrefix(text, prompt))
		return turn{}, fmt.Errorf("the chat rendered up to this turn does not start with its prompt (the messages before it rendered with add_generation_prompt): at byte %d the turn has %q where the prompt has %q",
			k, excerpt(text[k:]), excerpt(prompt[k:]))
	}
	t := turn{text: text, start: len(prompt), end: len(text)}
	history, err := r.render(msgs[:i], false)
	if err != nil {
		return turn{}, fmt.Errorf("rendering the messages before it: %w", err)
	}
	if history == prompt {
		// The template ignores add_generation_prompt: whatever it appends
		// after the messages, it appends after this turn too. That text
		// is what it renders for no messages, less a leading BOS.
		none, err := r.render(nil, true)
		if err != nil {
			return turn{}, fmt.Errorf("the template ignores add_generation_prompt, and rendering no messages to learn what it appends failed: %w", err)
		}
		g := strings.TrimPrefix(none, r.opts.BOSToken)
		if !strings.HasSuffix(text[t.start:], g) {
			return turn{}, fmt.Errorf("the template ignores add_generation_prompt, and the turn does not end with what it renders for no messages, %q", excerpt(g))
		}
		t.end -= len(g)
	}
	t.end = t.start + len(strings.TrimRightFunc(text[t.start:t.end], unicode.IsSpace))
	if t.end == t.start {
		return turn{}, fmt.Errorf("the template renders it as nothing but white space")
	}
	return t, nil
}

// encodeSpans encodes text[:last span's end] in pieces split at the span
// edges, masking the tokens of the spans. Spans are ordered and disjoint.
func encodeSpans(enc func(string) []int32, text string, spans [][2]int) Example {
	var ex Example
	add := func(s string, trained bool) {
		if s == "" {
			return
		}
		ids := enc(s)
		ex.Tokens = append(ex.Tokens, ids...)
		for range ids {
			ex.Mask = append(ex.Mask, trained)
		}
	}
	at := 0
	for _, sp := range spans {
		add(text[at:sp[0]], false)
		add(text[sp[0]:sp[1]], true)
		at = sp[1]
	}
	return ex
}

// commonPrefix is the longest common prefix of a and b that ends on a
// character boundary.
func commonPrefix(a, b string) string {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	for n > 0 && n < len(a) && !utf8.RuneStart(a[n]) {
		n--
	}
	return a[:n]
}

// excerpt shortens s for an error message.
func excerpt(s string) string {
	const limit = 60
	if len(s) <= limit {
		return s
	}
	n := limit
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
