package chattemplate

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"lrmc/internal/shareddata"
)

func mustNew(t *testing.T, src string) *Template {
	t.Helper()
	tpl, err := New(src)
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

func TestSyntaxErrorsNameLineCol(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"{% if true %}\nabc", "chattemplate: 2:4: unexpected end of template: 'if' opened at 1:1 needs 'endif'"},
		{"line1\n  {{ 1 + }}", "chattemplate: 2:10: unexpected '}}'"},
		{"{{ 'abc }}", "chattemplate: 1:4: unterminated string literal"},
		{"a\n\n   {% frobnicate %}", "chattemplate: 3:4: unknown tag 'frobnicate'"},
		{"{% for x in y %}\n{% endif %}", "chattemplate: 2:4: unexpected 'endif': expected 'else' or 'endfor'"},
		{"{{ x | nofilter }}", "chattemplate: 1:6: no filter named 'nofilter'"},
		{"{{ x is nosuchtest }}", "chattemplate: 1:6: no test named 'nosuchtest'"},
		{"{{ x.y is defined if true }}", "chattemplate: 1:22: expected '}}', got 'true'"},
		{"{% for x in y recursive %}{% endfor %}", "chattemplate: 1:15: recursive loops are not supported"},
		{"{% include 'x' %}", "chattemplate: 1:1: 'include' is not supported in chat templates"},
		{"ü{{ [1, 2 }}", "chattemplate: 1:11: unexpected '}'"},
		{"{% if x %}{% break %}{% endif %}", "chattemplate: 1:11: 'break' outside of a loop"},
		{"{% for x in y %}{% macro m() %}{% continue %}{% endmacro %}{% endfor %}", "chattemplate: 1:32: 'continue' outside of a loop"},
	} {
		_, err := New(c.src)
		if err == nil || err.Error() != c.want {
			t.Errorf("New(%q) = %v, want %q", c.src, err, c.want)
		}
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("New(%q): %T is not a *SyntaxError", c.src, err)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	msgs := []Message{{Role: "user", Extra: map[string]any{"content": nil}}}
	for _, c := range []struct{ src, want string }{
		{"{{ nothing.attr }}", "chattemplate: render: 1:11: 'nothing' is undefined"},
		{"\n  {{ 'a' + 1 }}", `chattemplate: render: 2:10: can only concatenate str (not "int") to str`},
		{"{{ [1].append(2) }}", "chattemplate: render: 1:7: access to attribute 'append' of 'list' object is unsafe."},
		{"{% for m in messages %}{{ m.content.strip() }}{% endfor %}", "chattemplate: render: 1:36: 'None' has no attribute 'strip'"},
		{"{{ 1 // 0 }}", "chattemplate: render: 1:6: integer division or modulo by zero"},
		{"{% set x = 1 %}{% set x.a = 2 %}", "chattemplate: render: 1:16: cannot assign attribute on non-namespace object"},
	} {
		_, err := mustNew(t, c.src).Render(msgs, Options{})
		var re *RenderError
		if err == nil || err.Error() != c.want || !errors.As(err, &re) {
			t.Errorf("Render(%q) = %v, want *RenderError %q", c.src, err, c.want)
		}
	}
}

func TestRaiseException(t *testing.T) {
	tpl := mustNew(t, "{% if messages[0].role != 'user' %}\n  {{- raise_exception('Conversation must start with a user turn') }}\n{% endif %}ok")
	_, err := tpl.Render([]Message{{Role: "assistant", Content: "hi"}}, Options{})
	var ex *ExceptionError
	if !errors.As(err, &ex) {
		t.Fatalf("got %v, want *ExceptionError", err)
	}
	if ex.Message != "Conversation must start with a user turn" || ex.Line != 2 || ex.Col != 7 {
		t.Fatalf("got %+v", ex)
	}
	if got, err := tpl.Render([]Message{{Role: "user"}}, Options{}); err != nil || got != "ok" {
		t.Fatalf("got %q, %v", got, err)
	}
}

// TestMessageFields checks how typed messages appear to templates: field
// order, optional fields, tool calls in OpenAI shape, Extra overrides.
func TestMessageFields(t *testing.T) {
	tpl := mustNew(t, "{% for m in messages %}{{ m | tojson }}|{{ m.reasoning_content is defined }}|{{ m.content is none }}\n{% endfor %}")
	got, err := tpl.Render([]Message{
		{Role: "user", Content: "hi", Extra: map[string]any{"name": "bob", "ts": 3}},
		{Role: "assistant", ReasoningContent: "think", ToolCalls: []ToolCall{
			{ID: "c1", Name: "get", Arguments: json.RawMessage(`{"z": 1, "a": [true, null, 1.5]}`)},
			{Type: "code", Name: "run", Arguments: `{"raw": "string"}`},
		}, Extra: map[string]any{"content": nil}},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"role": "user", "content": "hi", "name": "bob", "ts": 3}|False|False` + "\n" +
		`{"role": "assistant", "content": null, "reasoning_content": "think", "tool_calls": [` +
		`{"id": "c1", "type": "function", "function": {"name": "get", "arguments": {"z": 1, "a": [true, null, 1.5]}}}, ` +
		`{"type": "code", "function": {"name": "run", "arguments": "{\"raw\": \"string\"}"}}]}|True|True` + "\n"
	if got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
}

func TestOptionsVariables(t *testing.T) {
	tpl := mustNew(t, "{{ bos_token is defined }}{{ eos_token }}|{{ tools }}|{{ documents }}|{{ add_generation_prompt }}|{{ enable_thinking }}|{{ extra | tojson }}")
	got, err := tpl.Render(nil, Options{EOSToken: "</s>", Vars: map[string]any{
		"enable_thinking": false,
		"extra":           map[string]any{"b": []int{1, 2}, "a": 1.0},
	}})
	if err != nil {
		t.Fatal(err)
	}
	// Go maps carry no order, so their keys are sorted.
	if want := `False</s>|None|None|False|False|{"a": 1.0, "b": [1, 2]}`; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	got, err = tpl.Render(nil, Options{AddGenerationPrompt: true, BOSToken: "<s>", Tools: []any{json.RawMessage(`{"y": 1, "x": 2}`)}, Vars: map[string]any{"extra": nil}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `True|[{'y': 1, 'x': 2}]|None|True||null`; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestFromTokenizerConfigForms(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	named := write("named.json", `{
		"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "{{ bos_token }}D"}],
		"bos_token": {"__type": "AddedToken", "content": "<bos>"}, "eos_token": "</e>", "pad_token": null}`)
	tpl, sp, err := FromTokenizerConfig(named)
	if err != nil {
		t.Fatal(err)
	}
	if sp != (Specials{BOS: "<bos>", EOS: "</e>"}) {
		t.Fatalf("specials %+v", sp)
	}
	if got, err := tpl.Render(nil, Options{BOSToken: sp.BOS}); err != nil || got != "<bos>D" {
		t.Fatalf("got %q, %v", got, err)
	}

	noDefault := write("nodefault.json", `{"chat_template": [{"name": "rag", "template": "R"}]}`)
	if _, _, err := FromTokenizerConfig(noDefault); err == nil || err.Error() != "chattemplate: "+noDefault+`: chat_template: list of named templates has no "default"` {
		t.Fatalf("got %v", err)
	}
	bad := write("bad.json", `{"chat_template": "{% if %}"}`)
	if _, _, err := FromTokenizerConfig(bad); err == nil || err.Error() != "chattemplate: "+bad+": chat_template: 1:7: expected an expression, got '%}'" {
		t.Fatalf("got %v", err)
	}
	badTok := write("badtok.json", `{"chat_template": "x", "eos_token": 5}`)
	if _, _, err := FromTokenizerConfig(badTok); err == nil || err.Error() != "chattemplate: "+badTok+`: eos_token: want a string or an object with "content", got 5` {
		t.Fatalf("got %v", err)
	}
}

func TestFromTokenizerConfigWithoutTemplate(t *testing.T) {
	path := shareddata.Path(t, "tokenizers", "mistral_v0.1", "tokenizer_config.json")
	_, _, err := FromTokenizerConfig(path)
	if !errors.Is(err, ErrNoTemplate) {
		t.Fatalf("got %v, want ErrNoTemplate", err)
	}
}

func TestRenderJSONKeepsFieldsAndOrder(t *testing.T) {
	tpl := mustNew(t, "{% for m in messages %}{{ m | tojson }}{% endfor %}")
	got, err := tpl.RenderJSON([]byte(`[{"content": "c", "role": "user", "weird": {"b": 1, "a": 2}}]`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"content": "c", "role": "user", "weird": {"b": 1, "a": 2}}`; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if _, err := tpl.RenderJSON([]byte(`{"role": "user"}`), Options{}); err == nil || err.Error() != "chattemplate: messages: want a JSON array, got dict" {
		t.Fatalf("got %v", err)
	}
}

func TestTemplateIsReusableAndIsolated(t *testing.T) {
	// Top-level sets and namespaces must not leak between renders.
	tpl := mustNew(t, "{% if seen is defined %}leak{% endif %}{% set seen = 1 %}{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}")
	for i := 0; i < 3; i++ {
		got, err := tpl.Render([]Message{{Role: "user"}, {Role: "assistant"}}, Options{})
		if err != nil || got != "2" {
			t.Fatalf("render %d: got %q, %v", i, got, err)
		}
	}
}

// FuzzNew checks that parsing and rendering arbitrary source never
// panics, and that rendering is deterministic.
func FuzzNew(f *testing.F) {
	for _, seed := range []string{
		"{%- for m in messages[::-1] %}{{ m.role ~ loop.index0 }}{% endfor -%}",
		"{% set ns = namespace(a=1) %}{% set ns.a = ns.a + 1 %}{{ ns.a | tojson }}",
		"{{ 'a' if x is defined else 'b' }}{# c #}{% raw %}{{{% endraw %}",
		"{% macro f(a, b=2) %}{{ a }}{% endmacro %}{{ f(1, b=[1, {'k': none}]) }}",
		"  {%+ if true -%}\n x {%- endif +%}\n",
		"{{ '%s %d' % ('a', 1) }}{{ (1, 2)[::-1] }}{{ 'x'.split() }}",
	} {
		f.Add(seed)
	}
	msgs := []Message{{Role: "user", Content: "hi"}, {Role: "assistant", Content: "<think>r</think>a"}}
	f.Fuzz(func(t *testing.T, src string) {
		tpl, err := New(src)
		if err != nil {
			return
		}
		a, errA := tpl.Render(msgs, Options{AddGenerationPrompt: true})
		b, errB := tpl.Render(msgs, Options{AddGenerationPrompt: true})
		if a != b || (errA == nil) != (errB == nil) {
			t.Fatalf("nondeterministic render of %q", src)
		}
	})
}

// TestIntegerLimits: Python integers are unbounded; results that do not
// fit int64 fail instead of wrapping, and huge repetitions fail fast.
func TestIntegerLimits(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"{{ 2 ** 62 }}|{{ (-2) ** 63 }}|{{ 3 ** 0 }}", "4611686018427387904|-9223372036854775808|1"},
		{"{{ 9223372036854775807 - 1 + 1 }}", "9223372036854775807"},
	} {
		got, err := mustNew(t, c.src).Render(nil, Options{})
		if err != nil || got != c.want {
			t.Errorf("%s: got %q, %v; want %q", c.src, got, err, c.want)
		}
	}
	for _, c := range []struct{ src, want string }{
		{"{{ 2 ** 63 }}", "chattemplate: render: 1:6: integer result does not fit in 64 bits"},
		{"{{ 2 ** 99999999999999 }}", "chattemplate: render: 1:6: integer result does not fit in 64 bits"},
		{"{{ 9223372036854775807 + 1 }}", "chattemplate: render: 1:24: integer result does not fit in 64 bits"},
		{"{{ -9223372036854775807 - 2 }}", "chattemplate: render: 1:25: integer result does not fit in 64 bits"},
		{"{{ 4294967296 * 4294967296 }}", "chattemplate: render: 1:15: integer result does not fit in 64 bits"},
		{"{{ 'ab' * 99999999999 }}", "chattemplate: render: 1:9: repetition result over 16777216 items"},
	} {
		_, err := mustNew(t, c.src).Render(nil, Options{})
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: got %v, want %q", c.src, err, c.want)
		}
	}
}

func BenchmarkQwen3Render(b *testing.B) {
	tpl, sp, err := FromTokenizerConfig(shareddata.Path(b, "tokenizers", "qwen3", "tokenizer_config.json"))
	if err != nil {
		b.Fatal(err)
	}
	msgs := []Message{
		{Role: "system", Content: "You are helpful."},
		{Role: "user", Content: "What is 2+3?"},
		{Role: "assistant", Content: "<think>\nadd\n</think>\n\n5"},
		{Role: "user", Content: "Now multiply that by 4."},
	}
	opts := Options{AddGenerationPrompt: true, EOSToken: sp.EOS, Vars: map[string]any{"enable_thinking": false}}
	for b.Loop() {
		if _, err := tpl.Render(msgs, opts); err != nil {
			b.Fatal(err)
		}
	}
}
