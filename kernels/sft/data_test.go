package sft

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"lrmc/internal/shareddata"
	"lrmc/kernels/chattemplate"
	"lrmc/kernels/textdata"
	"lrmc/kernels/tokenizer"
)

// model is a shared tokenizer with its chat template.
type model struct {
	tok   *tokenizer.Tokenizer
	tmpl  *chattemplate.Template
	specs chattemplate.Specials
}

var (
	modelsMu sync.Mutex
	models   = map[string]*model{}
)

// loadModel loads a tokenizer folder of the shared data once per test run.
func loadModel(t *testing.T, name string) *model {
	t.Helper()
	dir := filepath.Dir(shareddata.Path(t, "tokenizers", name, "tokenizer.json"))
	modelsMu.Lock()
	defer modelsMu.Unlock()
	if m, ok := models[name]; ok {
		return m
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, specs, err := chattemplate.FromTokenizerConfig(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	m := &model{tok: tok, tmpl: tmpl, specs: specs}
	models[name] = m
	return m
}

func (m *model) enc(s string) []int32 { return m.tok.Encode(s, false) }

func (m *model) opts() chattemplate.Options {
	return chattemplate.Options{BOSToken: m.specs.BOS, EOSToken: m.specs.EOS}
}

// spans returns the [start, end) token ranges where mask is true.
func spans(mask []bool) [][2]int {
	var out [][2]int
	for i, on := range mask {
		switch {
		case on && (i == 0 || !mask[i-1]):
			out = append(out, [2]int{i, i + 1})
		case on:
			out[len(out)-1][1] = i + 1
		}
	}
	return out
}

// checkWhole checks that encoding text whole gives the example's tokens,
// which FromConversation encoded in pieces split at the span edges.
func checkWhole(t *testing.T, m *model, where, text string, ex Example) {
	t.Helper()
	if got := m.enc(text); !slices.Equal(got, ex.Tokens) {
		t.Errorf("%s: encoding the text whole gives %d tokens, in pieces %d", where, len(got), len(ex.Tokens))
	}
}

// render renders msgs[:n] of conv with the model's template.
func (m *model) render(t *testing.T, conv textdata.Conversation, n int) string {
	t.Helper()
	return m.renderWith(t, conv, n, m.opts())
}

func (m *model) renderWith(t *testing.T, conv textdata.Conversation, n int, o chattemplate.Options) string {
	t.Helper()
	var msgs []json.RawMessage
	if err := json.Unmarshal(conv.Messages, &msgs); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(msgs[:n])
	if err != nil {
		t.Fatal(err)
	}
	if conv.Tools != nil {
		tools, err := chattemplate.ParseJSON(conv.Tools)
		if err != nil {
			t.Fatal(err)
		}
		o.Tools = tools.([]any)
	}
	text, err := m.tmpl.RenderJSON(b, o)
	if err != nil {
		t.Fatal(err)
	}
	return text
}

func TestQwen3ThinkToolUse(t *testing.T) {
	m := loadModel(t, "qwen3")
	convs, err := textdata.ReadConversations(shareddata.Path(t, "text", "reasoning_tool_use", "reason_tool_use_demo_50.think.jsonl"), textdata.FormatChat)
	if err != nil {
		t.Fatal(err)
	}
	var nEx, nSpans, nPerTurn, nTokens, nMasked int
	for c, conv := range convs {
		exs, err := FromConversation(m.tmpl, m.enc, conv, m.opts())
		if err != nil {
			t.Fatalf("conversation %d: %v", c, err)
		}
		nEx += len(exs)
		if len(exs) > 1 {
			nPerTurn++
		}
		// Qwen3 drops the reasoning of assistant turns before the last
		// user query, so exactly the conversations with such a turn need
		// one example per turn.
		turnEnds, rewritten := assistantTurns(t, conv)
		if want := map[bool]int{false: 1, true: len(turnEnds)}[rewritten]; len(exs) != want {
			t.Fatalf("conversation %d: %d examples, want %d (%d assistant turns, history rewritten: %v)", c, len(exs), want, len(turnEnds), rewritten)
		}
		for k, ex := range exs {
			where := "conversation " + itoa(c) + " example " + itoa(k)
			sp := spans(ex.Mask)
			nSpans += len(sp)
			nTokens += len(ex.Tokens)
			for _, s := range sp {
				nMasked += s[1] - s[0]
				before := m.tok.Decode(ex.Tokens[:s[0]], false)
				span := m.tok.Decode(ex.Tokens[s[0]:s[1]], false)
				if !strings.HasSuffix(before, "<|im_start|>assistant\n") {
					t.Errorf("%s: span at token %d follows %q", where, s[0], before[max(0, len(before)-40):])
				}
				// Every assistant turn of this file reasons; the span
				// trains the reasoning, the answer and the turn's end.
				if !strings.HasPrefix(span, "<think>\n") || !strings.HasSuffix(span, "<|im_end|>") || strings.Count(span, "<|im_end|>") != 1 {
					t.Errorf("%s: span at token %d is %q", where, s[0], span)
				}
			}
			if len(exs) > 1 && len(sp) != 1 {
				t.Errorf("%s: per-turn example has %d spans", where, len(sp))
			}
			// The example's text is the chat up to its last assistant
			// turn (one example) or its k-th (one per turn), ending with
			// that turn's <|im_end|>.
			n := turnEnds[len(turnEnds)-1]
			if len(exs) > 1 {
				n = turnEnds[k]
			}
			text := m.render(t, conv, n)
			checkWhole(t, m, where, text[:strings.LastIndex(text, "<|im_end|>")+len("<|im_end|>")], ex)
		}
	}
	t.Logf("%d conversations: %d examples (%d conversations expanded per turn), %d spans, %d tokens, %d trained", len(convs), nEx, nPerTurn, nSpans, nTokens, nMasked)
}

// assistantTurns returns i+1 for each assistant message i of conv and
// says whether one that reasons comes before the last user turn.
func assistantTurns(t *testing.T, conv textdata.Conversation) (ends []int, thinkBeforeLastUser bool) {
	t.Helper()
	var msgs []struct{ Role, Content string }
	if err := json.Unmarshal(conv.Messages, &msgs); err != nil {
		t.Fatal(err)
	}
	lastUser := -1
	for i, m := range msgs {
		if m.Role == "user" {
			lastUser = i
		}
	}
	for i, m := range msgs {
		if m.Role == "assistant" {
			ends = append(ends, i+1)
			if i < lastUser && strings.Contains(m.Content, "</think>") {
				thinkBeforeLastUser = true
			}
		}
	}
	return ends, thinkBeforeLastUser
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestLlama3Alpaca(t *testing.T) {
	m := loadModel(t, "llama3")
	path := shareddata.Path(t, "text", "alpaca_en_demo", "alpaca_en_demo.json")
	convs, err := textdata.ReadConversations(path, textdata.FormatInstruction)
	if err != nil {
		t.Fatal(err)
	}
	var records []struct{ Output string }
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &records); err != nil {
		t.Fatal(err)
	}
	const header = "<|start_header_id|>assistant<|end_header_id|>\n\n"
	var nTokens, nMasked int
	for c, conv := range convs {
		exs, err := FromConversation(m.tmpl, m.enc, conv, m.opts())
		if err != nil {
			t.Fatalf("record %d: %v", c, err)
		}
		if len(exs) != 1 {
			t.Fatalf("record %d: %d examples, want 1", c, len(exs))
		}
		ex := exs[0]
		sp := spans(ex.Mask)
		// The template appends the assistant header after every
		// rendering; the example ends with the response's <|eot_id|>.
		if len(sp) != 1 || sp[0][1] != len(ex.Tokens) {
			t.Fatalf("record %d: trained spans %v of %d tokens, want one that ends the example", c, sp, len(ex.Tokens))
		}
		nTokens += len(ex.Tokens)
		nMasked += sp[0][1] - sp[0][0]
		if ex.Tokens[0] != 128000 {
			t.Errorf("record %d: starts with token %d, want <|begin_of_text|> (128000)", c, ex.Tokens[0])
		}
		// Token-level checks: decoding would clean up spaces.
		text, ok := strings.CutSuffix(m.render(t, conv, 2), header)
		if !ok {
			t.Fatalf("record %d: the rendering does not end with the assistant header", c)
		}
		checkWhole(t, m, "record "+itoa(c), text, ex)
		if want := m.enc(strings.TrimSpace(records[c].Output) + "<|eot_id|>"); !slices.Equal(ex.Tokens[sp[0][0]:], want) {
			t.Errorf("record %d: span is %q, want the response and <|eot_id|>", c, excerpt(m.tok.Decode(ex.Tokens[sp[0][0]:], false)))
		}
		if !slices.Equal(ex.Tokens[sp[0][0]-5:sp[0][0]], m.enc("<|eot_id|>"+header)) {
			t.Errorf("record %d: span follows %q", c, m.tok.Decode(ex.Tokens[:sp[0][0]], false))
		}
	}
	t.Logf("%d records: %d tokens, %d trained", len(convs), nTokens, nMasked)
}

// TestQwen3AlpacaThinking renders instruction data for Qwen3 with and
// without enable_thinking=false: the generation prompt then holds the
// empty think block, so only the answer is trained; otherwise the template
// writes an empty think block into the turn, and it is trained.
func TestQwen3AlpacaThinking(t *testing.T) {
	m := loadModel(t, "qwen3")
	path := shareddata.Path(t, "text", "alpaca_en_demo", "alpaca_en_demo.json")
	convs, err := textdata.ReadConversations(path, textdata.FormatInstruction)
	if err != nil {
		t.Fatal(err)
	}
	var records []struct{ Output string }
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &records); err != nil {
		t.Fatal(err)
	}
	const emptyThink = "<think>\n\n</think>\n\n"
	for _, thinking := range []bool{false, true} {
		opts := m.opts()
		if !thinking {
			opts.Vars = map[string]any{"enable_thinking": false}
		}
		for c, conv := range convs[:200] {
			exs, err := FromConversation(m.tmpl, m.enc, conv, opts)
			if err != nil {
				t.Fatalf("thinking %v: record %d: %v", thinking, c, err)
			}
			if len(exs) != 1 {
				t.Fatalf("thinking %v: record %d: %d examples, want 1", thinking, c, len(exs))
			}
			ex := exs[0]
			sp := spans(ex.Mask)
			if len(sp) != 1 || sp[0][1] != len(ex.Tokens) {
				t.Fatalf("thinking %v: record %d: trained spans %v of %d tokens", thinking, c, sp, len(ex.Tokens))
			}
			want := strings.TrimLeft(records[c].Output, "\n") + "<|im_end|>"
			prompt := "<|im_start|>assistant\n"
			if thinking {
				want = emptyThink + want
			} else {
				prompt += emptyThink
			}
			if got := m.tok.Decode(ex.Tokens[sp[0][0]:], false); got != want {
				t.Errorf("thinking %v: record %d: span %q, want %q", thinking, c, excerpt(got), excerpt(want))
			}
			if got := m.tok.Decode(ex.Tokens[:sp[0][0]], false); !strings.HasSuffix(got, prompt) {
				t.Errorf("thinking %v: record %d: span follows %q", thinking, c, got)
			}
			text := m.renderWith(t, conv, 2, opts)
			checkWhole(t, m, "record "+itoa(c), strings.TrimSuffix(text, "\n"), ex)
		}
	}
}
