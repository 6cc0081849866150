package chattemplate

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

// renderBounded renders src and fails the test when the render takes more
// than a few seconds or lets the heap grow past 1 GiB; it returns the
// render's error.
func renderBounded(t *testing.T, src string, lim Limits) error {
	t.Helper()
	tpl := mustNew(t, src)
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := tpl.Render(nil, Options{Limits: lim})
		done <- err
	}()
	var ms runtime.MemStats
	for {
		select {
		case err := <-done:
			return err
		case <-time.After(20 * time.Millisecond):
		}
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc > 1<<30 {
			t.Fatalf("render of %q holds %d MiB of heap", src, ms.HeapAlloc>>20)
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("render of %q still running after 10 s", src)
		}
	}
}

// TestLimits: a hostile template (it comes with the model) fails promptly
// with an error naming the limit and where it was passed, instead of
// hanging, exhausting the stack or the memory.
func TestLimits(t *testing.T) {
	for _, c := range []struct {
		name, src string
		lim       Limits
		want      string
	}{
		// 10^10 iterations under the default limit.
		{"nested loops", "{% for i in range(100000) %}\n{% for j in range(100000) %}{% endfor %}{% endfor %}", Limits{},
			"chattemplate: render: 2:1: loop limit of 1048576 iterations exceeded"},
		{"loop limit set", "{% for i in range(10) %}{{ i }}{% endfor %}", Limits{Iterations: 5},
			"chattemplate: render: 1:1: loop limit of 5 iterations exceeded"},
		{"loop filter counts", "{% for i in range(10) if i > 8 %}{{ i }}{% endfor %}", Limits{Iterations: 5},
			"chattemplate: render: 1:1: loop limit of 5 iterations exceeded"},
		{"string loop", "{% for c in 'x' * 100 %}{% endfor %}", Limits{Iterations: 50},
			"chattemplate: render: 1:1: loop limit of 50 iterations exceeded"},
		// Without a limit this recursion aborts the process (Go's 1 GB stack).
		{"recursive macro", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", Limits{},
			"chattemplate: render: 1:20: macro recursion deeper than 500 calls"},
		{"recursive caller", "{% macro m() %}{{ caller() }}{% endmacro %}{% macro r() %}{% call m() %}{{ r() }}{% endcall %}{% endmacro %}{{ r() }}",
			Limits{Depth: 10}, "chattemplate: render: 1:67: macro recursion deeper than 10 calls"},
		{"output", "{% for i in range(100000) %}{{ 'x' * 10000000 }}{% endfor %}", Limits{},
			"chattemplate: render: 1:29: output larger than 64 MiB"},
		{"output set", "{% for i in range(100) %}{{ 'abc' }}{% endfor %}", Limits{Output: 100},
			"chattemplate: render: 1:26: output larger than 100 bytes"},
		{"doubling", "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}", Limits{Output: 1 << 20},
			"chattemplate: render: 1:70: value larger than 1 MiB"},
		{"macro output", "{% macro m() %}{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}{% endmacro %}{% set y = m() %}", Limits{Output: 1 << 20},
			"output larger than 1 MiB"},
		{"center", "{{ 'x' | center(1000000000) }}", Limits{},
			"chattemplate: render: 1:8: center's result would be 1000000000 bytes, more than the limit of 64 MiB"},
		{"indent", "{{ ('a\\n' * 1000000) | indent(1000) }}", Limits{},
			"chattemplate: render: 1:22: indent's result would be 1002001000 bytes, more than the limit of 64 MiB"},
		{"replace", "{{ ('x' * 10000) | replace('', 'y' * 10000) }}", Limits{},
			"chattemplate: render: 1:18: replace's result would be 100020000 bytes, more than the limit of 64 MiB"},
		{"replace method", "{{ ('x' * 10000).replace('x', 'y' * 10000) }}", Limits{},
			"replace's result would be 100000000 bytes"},
		{"tojson indent", "{{ [1] | tojson(indent=100000000) }}", Limits{},
			"tojson: indent 100000000 is more than the limit of 1024"},
		{"repeat", "{% for i in range(100000) %}{% if 'x' * 16000000 %}{% endif %}{% endfor %}", Limits{Output: 1 << 20},
			"chattemplate: render: 1:39: value larger than 1 MiB"},
		{"repeat list", "{{ ([1, 2] * 1000000) | length }}", Limits{Output: 1 << 20},
			"chattemplate: render: 1:12: value larger than 1 MiB"},
		// Shared values nest exponentially: 2^100 leaves.
		{"shared", "{% set ns = namespace(s=1) %}{% for i in range(100) %}{% set ns.s = (ns.s, ns.s) %}{% endfor %}{{ ns.s == ns.s }}{{ ns }}",
			Limits{}, "chattemplate: render: 1:114: output larger than 64 MiB"},
		// range() itself stays capped at Jinja2's sandbox size: no giant list.
		{"range", "{{ range(1000000000) | length }}", Limits{},
			"range too big, maximum size for range is 100000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := renderBounded(t, c.src, c.lim)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("render error %v, want one containing %q", err, c.want)
			}
			var re *RenderError
			if !errors.As(err, &re) || re.Line == 0 {
				t.Errorf("%v is not a RenderError with a position", err)
			}
		})
	}
}

// TestLimitsLeaveRealTemplatesAlone: the defaults are far above what a
// long real chat needs.
func TestLimitsLeaveRealTemplatesAlone(t *testing.T) {
	const n = 5000 // messages, each with 10 tool calls
	tpl := mustNew(t, "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% for c in m.tool_calls %}[{{ c.function.name }}]{% endfor %}{% endfor %}")
	calls := make([]ToolCall, 10)
	for i := range calls {
		calls[i] = ToolCall{Name: "f", Arguments: "{}"}
	}
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i] = Message{Role: "user", Content: "hello", ToolCalls: calls}
	}
	out, err := tpl.Render(msgs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := n * (len("<|user|>hello") + 10*len("[f]")); len(out) != want {
		t.Fatalf("output has %d bytes, want %d", len(out), want)
	}
}

// TestParseNesting: deeply nested source fails to parse with an error
// instead of overflowing the stack (600,000 parentheses abort the process).
func TestParseNesting(t *testing.T) {
	for _, src := range []string{
		"{{ " + strings.Repeat("(", 600000) + "1" + strings.Repeat(")", 600000) + " }}",
		"{{ " + strings.Repeat("not ", 100000) + "1 }}",
		"{{ " + strings.Repeat("-", 100000) + "1 }}",
		strings.Repeat("{% if true %}", 100000),
	} {
		_, err := New(src)
		if err == nil || !strings.Contains(err.Error(), "nesting deeper than 1000 levels") {
			t.Errorf("New(%.20q…) = %v, want a nesting error", src, err)
		}
	}
	// Real templates nest a few levels; 200 is fine.
	if _, err := New("{{ " + strings.Repeat("(", 200) + "1" + strings.Repeat(")", 200) + " }}"); err != nil {
		t.Fatal(err)
	}
}

// TestReprCycle: a namespace that holds itself (found by FuzzRender) made
// repr recurse until the stack overflowed; Python writes the dict it is
// already inside as {...}.
func TestReprCycle(t *testing.T) {
	out, err := mustNew(t, "{% set ns = namespace() %}{% set ns.s = ns, 1 %}{{ ns }}").Render(nil, Options{})
	if want := "<Namespace {'s': (<Namespace {...}>, 1)}>"; err != nil || out != want {
		t.Fatalf("got %q, %v; want %q", out, err, want)
	}
}

// FuzzRender renders arbitrary templates under small limits: a render
// never panics, ends within a few seconds (loops, recursion and string
// growth are all bounded) and never returns more than the output limit.
func FuzzRender(f *testing.F) {
	for _, seed := range []string{
		"{% for i in range(1000) %}{% for j in range(1000) %}{{ i * j }}{% endfor %}{% endfor %}",
		"{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
		"{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
		"{{ ('x' * 1000) | replace('', 'yy') | indent(100) | center(100000) }}",
		"{% for m in messages %}{{ m.role }}: {{ m.content | tojson(indent=2) }}{% endfor %}",
	} {
		f.Add(seed)
	}
	msgs := []Message{{Role: "user", Content: "hi"}, {Role: "assistant", Content: "<think>r</think>a"}}
	lim := Limits{Iterations: 10000, Depth: 50, Output: 1 << 20}
	f.Fuzz(func(t *testing.T, src string) {
		tpl, err := New(src)
		if err != nil {
			return
		}
		start := time.Now()
		out, err := tpl.Render(msgs, Options{AddGenerationPrompt: true, Limits: lim})
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("render of %q took %v", src, d)
		}
		if err == nil && len(out) > lim.Output {
			t.Fatalf("render of %q returned %d bytes, over the %d-byte limit", src, len(out), lim.Output)
		}
	})
}
