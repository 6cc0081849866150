// Package chattemplate renders Hugging Face chat templates
// (tokenizer_config.json's "chat_template", Jinja2 source) in pure Go.
//
// It implements the Jinja2 subset that chat templates use, with the
// environment transformers builds: trim_blocks and lstrip_blocks on,
// autoescape off, the loopcontrols extension, the {% generation %} tag,
// Python semantics for values (None, str methods, slicing with negative
// steps, integer/float arithmetic), the sandbox's refusal of mutating
// methods, and transformers' tojson (json.dumps with ensure_ascii=False).
package chattemplate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// Template is a parsed chat template. It is immutable and safe for
// concurrent use.
type Template struct {
	body []node
}

// New parses Jinja2 template source. Syntax errors are *SyntaxError and
// name the line:col where parsing failed.
func New(src string) (*Template, error) {
	body, err := parse(src)
	if err != nil {
		return nil, fmt.Errorf("chattemplate: %w", err)
	}
	return &Template{body: body}, nil
}

// ToolCall is one function call of an assistant message, in the shape
// transformers passes to templates: {"id", "type", "function": {"name",
// "arguments"}}.
type ToolCall struct {
	ID   string // omitted when empty
	Type string // "function" when empty
	Name string
	// Arguments is usually a JSON object: pass json.RawMessage to keep its
	// key order for tojson, or a string for templates that print it as is.
	Arguments any
}

// Message is one chat turn. The template sees a dict with keys role,
// content, reasoning_content (only when non-empty), tool_calls (only when
// non-nil), then Extra's keys in sorted order. An Extra key replaces the
// field of the same name, so Extra{"content": nil} gives a None content,
// as assistant turns that only call tools have in OpenAI-style chats.
type Message struct {
	Role             string
	Content          string
	ReasoningContent string
	ToolCalls        []ToolCall
	Extra            map[string]any
}

// Options are the variables transformers' apply_chat_template passes
// besides the messages.
type Options struct {
	AddGenerationPrompt bool
	// BOSToken and EOSToken become bos_token and eos_token; an empty one
	// stays undefined, as transformers omits unset special tokens.
	BOSToken, EOSToken string
	// Tools are tool schemas (json.RawMessage keeps key order); nil
	// renders as None.
	Tools []any
	// Vars are extra template variables (e.g. "enable_thinking": false).
	// They override everything above.
	Vars map[string]any
	// Now is the time strftime_now() formats; zero means time.Now().
	Now time.Time
	// Limits bound the render's cost; a zero field means DefaultLimits'.
	Limits Limits
}

// RenderError is a failure while rendering, at a template position.
type RenderError struct {
	Line, Col int
	Msg       string
}

func (e *RenderError) Error() string {
	return fmt.Sprintf("chattemplate: render: %d:%d: %s", e.Line, e.Col, e.Msg)
}

// ExceptionError is raised by the template itself via raise_exception();
// Message is the template's text, as transformers reports it.
type ExceptionError struct {
	Message   string
	Line, Col int
}

func (e *ExceptionError) Error() string {
	return fmt.Sprintf("chattemplate: raise_exception at %d:%d: %s", e.Line, e.Col, e.Message)
}

// Render renders the template for the given chat.
func (t *Template) Render(messages []Message, opts Options) (string, error) {
	msgs := make([]any, len(messages))
	for i, m := range messages {
		v, err := m.value()
		if err != nil {
			return "", fmt.Errorf("chattemplate: message %d: %w", i, err)
		}
		msgs[i] = v
	}
	vars := map[string]any{
		"messages":              msgs,
		"add_generation_prompt": opts.AddGenerationPrompt,
		"tools":                 nil,
		"documents":             nil,
	}
	if opts.Tools != nil {
		tools, err := fromGo(opts.Tools)
		if err != nil {
			return "", fmt.Errorf("chattemplate: tools: %w", err)
		}
		vars["tools"] = tools
	}
	if opts.BOSToken != "" {
		vars["bos_token"] = opts.BOSToken
	}
	if opts.EOSToken != "" {
		vars["eos_token"] = opts.EOSToken
	}
	for k, v := range opts.Vars {
		c, err := fromGo(v)
		if err != nil {
			return "", fmt.Errorf("chattemplate: var %s: %w", k, err)
		}
		vars[k] = c
	}
	return t.renderWith(vars, opts.Now, opts.Limits)
}

// RenderJSON renders with messages given as a JSON array of message
// objects, keeping every field and key order exactly as written; this
// is the most faithful way to reproduce transformers' output.
func (t *Template) RenderJSON(messages []byte, opts Options) (string, error) {
	v, err := ParseJSON(messages)
	if err != nil {
		return "", fmt.Errorf("chattemplate: messages: %w", err)
	}
	list, ok := v.([]any)
	if !ok {
		return "", fmt.Errorf("chattemplate: messages: want a JSON array, got %s", typeName(v))
	}
	if opts.Vars == nil {
		opts.Vars = map[string]any{}
	} else {
		vars := make(map[string]any, len(opts.Vars)+1)
		for k, x := range opts.Vars {
			vars[k] = x
		}
		opts.Vars = vars
	}
	if _, set := opts.Vars["messages"]; !set {
		opts.Vars["messages"] = list
	}
	return t.Render(nil, opts)
}

func (t *Template) render(vars map[string]any, now time.Time) (string, error) {
	return t.renderWith(vars, now, Limits{})
}

func (t *Template) renderWith(vars map[string]any, now time.Time, lim Limits) (string, error) {
	if now.IsZero() {
		now = time.Now()
	}
	top := newFrame(newFrame(nil))
	for k, v := range globals(now) {
		top.parent.vars[k] = v
	}
	for k, v := range vars {
		top.vars[k] = v
	}
	var out strings.Builder
	err := (&evaluator{lim: lim.withDefaults()}).render(&out, t.body, top)
	if err != nil {
		var ee *evalError
		var ex *ExceptionError
		switch {
		case errors.As(err, &ex):
			return "", ex
		case errors.As(err, &ee):
			return "", &RenderError{Line: ee.p.line, Col: ee.p.col, Msg: ee.msg}
		}
		return "", fmt.Errorf("chattemplate: render: %w", err)
	}
	return out.String(), nil
}

func (m Message) value() (any, error) {
	d := newDict()
	d.set("role", m.Role)
	d.set("content", m.Content)
	if m.ReasoningContent != "" {
		d.set("reasoning_content", m.ReasoningContent)
	}
	if m.ToolCalls != nil {
		calls := make([]any, len(m.ToolCalls))
		for i, tc := range m.ToolCalls {
			args, err := fromGo(tc.Arguments)
			if err != nil {
				return nil, fmt.Errorf("tool call %d arguments: %w", i, err)
			}
			fn := newDict()
			fn.set("name", tc.Name)
			fn.set("arguments", args)
			c := newDict()
			if tc.ID != "" {
				c.set("id", tc.ID)
			}
			typ := tc.Type
			if typ == "" {
				typ = "function"
			}
			c.set("type", typ)
			c.set("function", fn)
			calls[i] = c
		}
		d.set("tool_calls", calls)
	}
	keys := make([]string, 0, len(m.Extra))
	for k := range m.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, err := fromGo(m.Extra[k])
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", k, err)
		}
		d.set(k, v)
	}
	return d, nil
}

// globals are the functions Jinja2 and transformers provide.
func globals(now time.Time) map[string]any {
	return map[string]any{
		"raise_exception": callable(func(args []any, kw *dict) (any, error) {
			msg := ""
			if len(args) > 0 {
				msg = toStr(args[0])
			}
			return nil, &ExceptionError{Message: msg}
		}),
		"namespace": callable(func(args []any, kw *dict) (any, error) {
			ns := &namespace{attrs: newDict()}
			for _, a := range args {
				d, ok := a.(*dict)
				if !ok {
					return nil, fmt.Errorf("namespace() positional argument must be a dict, not %s", typeName(a))
				}
				for _, k := range d.keys {
					ns.attrs.set(k, d.vals[k])
				}
			}
			if kw != nil {
				for _, k := range kw.keys {
					ns.attrs.set(k, kw.vals[k])
				}
			}
			return ns, nil
		}),
		"dict": callable(func(args []any, kw *dict) (any, error) {
			d := newDict()
			for _, a := range args {
				src, ok := a.(*dict)
				if !ok {
					return nil, fmt.Errorf("dict() positional argument must be a dict, not %s", typeName(a))
				}
				for _, k := range src.keys {
					d.set(k, src.vals[k])
				}
			}
			if kw != nil {
				for _, k := range kw.keys {
					d.set(k, kw.vals[k])
				}
			}
			return d, nil
		}),
		"range": callable(pyRange),
		"strftime_now": callable(func(args []any, kw *dict) (any, error) {
			if len(args) != 1 {
				return nil, errors.New("strftime_now() takes one format argument")
			}
			f, ok := args[0].(string)
			if !ok {
				return nil, fmt.Errorf("strftime_now() format must be str, not %s", typeName(args[0]))
			}
			return strftime(now, f)
		}),
	}
}

func pyRange(args []any, _ *dict) (any, error) {
	var b [3]int
	for i, a := range args {
		if i >= 3 {
			return nil, fmt.Errorf("range expected at most 3 arguments, got %d", len(args))
		}
		n, ok := toIndex(a)
		if !ok {
			return nil, fmt.Errorf("'%s' object cannot be interpreted as an integer", typeName(a))
		}
		b[i] = n
	}
	start, stop, step := 0, 0, 1
	switch len(args) {
	case 0:
		return nil, errors.New("range expected at least 1 argument, got 0")
	case 1:
		stop = b[0]
	case 2:
		start, stop = b[0], b[1]
	default:
		start, stop, step = b[0], b[1], b[2]
	}
	if step == 0 {
		return nil, errors.New("range() arg 3 must not be zero")
	}
	const limit = 100000 // Jinja2's sandbox MAX_RANGE
	out := []any{}
	for i := start; (step > 0 && i < stop) || (step < 0 && i > stop); i += step {
		if len(out) >= limit {
			return nil, fmt.Errorf("range too big, maximum size for range is %d", limit)
		}
		out = append(out, int64(i))
	}
	return out, nil
}

// strftime formats the C strftime directives that chat templates use.
func strftime(t time.Time, f string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		if f[i] != '%' || i+1 == len(f) {
			b.WriteByte(f[i])
			continue
		}
		i++
		switch f[i] {
		case 'd':
			fmt.Fprintf(&b, "%02d", t.Day())
		case 'm':
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case 'Y':
			fmt.Fprintf(&b, "%d", t.Year())
		case 'y':
			fmt.Fprintf(&b, "%02d", t.Year()%100)
		case 'b':
			b.WriteString(t.Month().String()[:3])
		case 'B':
			b.WriteString(t.Month().String())
		case 'a':
			b.WriteString(t.Weekday().String()[:3])
		case 'A':
			b.WriteString(t.Weekday().String())
		case 'H':
			fmt.Fprintf(&b, "%02d", t.Hour())
		case 'M':
			fmt.Fprintf(&b, "%02d", t.Minute())
		case 'S':
			fmt.Fprintf(&b, "%02d", t.Second())
		case 'j':
			fmt.Fprintf(&b, "%03d", t.YearDay())
		case '%':
			b.WriteByte('%')
		default:
			return "", fmt.Errorf("strftime_now: unsupported directive %%%c", f[i])
		}
	}
	return b.String(), nil
}

// Specials are the special-token strings of a tokenizer_config.json;
// an empty string means the token is unset (null or absent).
type Specials struct {
	BOS, EOS, PAD, UNK string
}

// FromTokenizerConfig reads a tokenizer_config.json: its chat_template
// (a string, or a list of {"name", "template"} from which "default" is
// taken) and its special tokens (strings or AddedToken objects).
func FromTokenizerConfig(path string) (*Template, Specials, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, Specials{}, fmt.Errorf("chattemplate: %w", err)
	}
	var cfg struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
		BOS          json.RawMessage `json:"bos_token"`
		EOS          json.RawMessage `json:"eos_token"`
		PAD          json.RawMessage `json:"pad_token"`
		UNK          json.RawMessage `json:"unk_token"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, Specials{}, fmt.Errorf("chattemplate: %s: %w", path, err)
	}
	var sp Specials
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *string
	}{{"bos_token", cfg.BOS, &sp.BOS}, {"eos_token", cfg.EOS, &sp.EOS}, {"pad_token", cfg.PAD, &sp.PAD}, {"unk_token", cfg.UNK, &sp.UNK}} {
		if *f.dst, err = tokenString(f.raw); err != nil {
			return nil, Specials{}, fmt.Errorf("chattemplate: %s: %s: %w", path, f.name, err)
		}
	}
	src, err := templateSource(cfg.ChatTemplate)
	if err != nil {
		return nil, Specials{}, fmt.Errorf("chattemplate: %s: chat_template: %w", path, err)
	}
	body, err := parse(src)
	if err != nil {
		return nil, Specials{}, fmt.Errorf("chattemplate: %s: chat_template: %w", path, err)
	}
	return &Template{body: body}, sp, nil
}

// ErrNoTemplate reports a tokenizer_config.json without a chat_template
// (e.g. base models such as Mistral-7B v0.1).
var ErrNoTemplate = errors.New("no chat_template")

func templateSource(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", ErrNoTemplate
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var named []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(raw, &named); err != nil {
		return "", fmt.Errorf("want a string or a list of {name, template}: %w", err)
	}
	for _, n := range named {
		if n.Name == "default" {
			return n.Template, nil
		}
	}
	return "", errors.New(`list of named templates has no "default"`)
}

// tokenString accepts a token as a string, an AddedToken object with
// "content", or null.
func tokenString(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var tok struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &tok); err != nil || tok.Content == nil {
		return "", fmt.Errorf("want a string or an object with \"content\", got %s", raw)
	}
	return *tok.Content, nil
}

// SourceFromTokenizerConfig returns the text of the default chat template
// of a tokenizer_config.json ("" and ErrNoTemplate when it has none), for
// writers that carry the template along (GGUF's tokenizer.chat_template).
func SourceFromTokenizerConfig(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("chattemplate: %w", err)
	}
	var cfg struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return "", fmt.Errorf("chattemplate: %s: %w", path, err)
	}
	src, err := templateSource(cfg.ChatTemplate)
	if err != nil {
		return "", fmt.Errorf("chattemplate: %s: chat_template: %w", path, err)
	}
	return src, nil
}
