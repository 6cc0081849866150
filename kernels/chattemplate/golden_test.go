package chattemplate

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lrmc/internal/shareddata"
)

// The golden files come from testdata/gen.py, which renders with Python's
// jinja2 configured as transformers configures it.

type constructCase struct {
	Name           string          `json:"name"`
	Template       string          `json:"template"`
	Vars           json.RawMessage `json:"vars"`
	Want           *string         `json:"want"`
	Error          string          `json:"error"`
	ParseErrorLine int             `json:"parse_error_line"`
}

// goldenNow is the time gen.py's strftime_now uses.
var goldenNow = time.Date(2024, 7, 26, 9, 5, 3, 0, time.UTC)

func loadJSON(t *testing.T, name string, v any) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// renderVars renders src with variables given as a JSON object (key
// order kept, as Python's json.load keeps it).
func renderVars(src string, varsJSON []byte) (string, error) {
	tpl, err := New(src)
	if err != nil {
		return "", err
	}
	v, err := ParseJSON(varsJSON)
	if err != nil {
		return "", err
	}
	vars := map[string]any{}
	d := v.(*dict)
	for _, k := range d.keys {
		vars[k.(string)] = d.vals[k]
	}
	return tpl.render(vars, goldenNow)
}

// errorMessage strips jinja2's "ExceptionClass: " prefix.
func errorMessage(s string) string {
	_, msg, _ := strings.Cut(s, ": ")
	return msg
}

func TestConstructsMatchJinja2(t *testing.T) {
	var golden struct {
		Cases []constructCase `json:"cases"`
	}
	loadJSON(t, "constructs.json", &golden)
	if len(golden.Cases) < 90 {
		t.Fatalf("only %d golden cases", len(golden.Cases))
	}
	for _, c := range golden.Cases {
		t.Run(c.Name, func(t *testing.T) {
			got, err := renderVars(c.Template, c.Vars)
			if c.Want != nil {
				if err != nil {
					t.Fatalf("template %q: %v", c.Template, err)
				}
				if got != *c.Want {
					t.Fatalf("template %q\n got %q\nwant %q", c.Template, got, *c.Want)
				}
				return
			}
			if err == nil {
				t.Fatalf("template %q rendered %q; jinja2 failed with %s", c.Template, got, c.Error)
			}
			var se *SyntaxError
			if strings.HasPrefix(c.Error, "TemplateSyntaxError") {
				if !errors.As(err, &se) {
					t.Fatalf("want a syntax error like jinja2's %q, got %v", c.Error, err)
				}
				if c.ParseErrorLine != 0 && se.Line != c.ParseErrorLine {
					t.Errorf("syntax error on line %d, jinja2 says line %d (%v)", se.Line, c.ParseErrorLine, err)
				}
				return
			}
			if errors.As(err, &se) && !strings.HasPrefix(c.Error, "TemplateAssertionError") {
				t.Fatalf("want a render error like jinja2's %q, got syntax error %v", c.Error, err)
			}
			// Runtime failures carry Python's own message text.
			if msg := errorMessage(c.Error); !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(strings.TrimSuffix(msg, "."))) {
				t.Errorf("error %q does not carry jinja2's message %q", err, msg)
			}
		})
	}
}

type chatCase struct {
	Template            string         `json:"template"`
	Chat                string         `json:"chat"`
	AddGenerationPrompt bool           `json:"add_generation_prompt"`
	Kwargs              map[string]any `json:"kwargs"`
	Tools               bool           `json:"tools"`
	Text                *string        `json:"text"`
	Error               string         `json:"error"`
}

func TestRealTemplatesMatchJinja2(t *testing.T) {
	var golden struct {
		Tools    json.RawMessage            `json:"tools"`
		Chats    map[string]json.RawMessage `json:"chats"`
		Specials map[string]map[string]string
		Cases    []chatCase `json:"cases"`
	}
	loadJSON(t, "chats.json", &golden)
	var tools []json.RawMessage
	if err := json.Unmarshal(golden.Tools, &tools); err != nil {
		t.Fatal(err)
	}
	templates := map[string]*Template{}
	for _, c := range golden.Cases {
		tpl := templates[c.Template]
		if tpl == nil {
			tpl = loadGoldenTemplate(t, c.Template, golden.Specials[c.Template])
			templates[c.Template] = tpl
		}
		name := c.Template + "/" + c.Chat
		if c.AddGenerationPrompt {
			name += "/gen"
		}
		if c.Tools {
			name += "/tools"
		}
		if len(c.Kwargs) > 0 {
			name += "/kwargs"
		}
		t.Run(name, func(t *testing.T) {
			sp := golden.Specials[c.Template]
			opts := Options{
				AddGenerationPrompt: c.AddGenerationPrompt,
				BOSToken:            sp["bos_token"],
				EOSToken:            sp["eos_token"],
				Vars:                c.Kwargs,
				Now:                 goldenNow,
			}
			if c.Tools {
				for _, tool := range tools {
					opts.Tools = append(opts.Tools, tool)
				}
			}
			got, err := tpl.RenderJSON(golden.Chats[c.Chat], opts)
			if c.Text == nil {
				if err == nil {
					t.Fatalf("rendered %q; jinja2 failed with %s", got, c.Error)
				}
				if msg := errorMessage(c.Error); !strings.Contains(err.Error(), msg) {
					t.Errorf("error %q does not carry jinja2's message %q", err, msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != *c.Text {
				t.Fatalf("\n got %q\nwant %q", got, *c.Text)
			}
		})
	}
}

// loadGoldenTemplate reads a template named in chats.json: a file under
// testdata/templates, or a tokenizer in shared/data/tokenizers whose
// special tokens must match those gen.py saw.
func loadGoldenTemplate(t *testing.T, name string, want map[string]string) *Template {
	t.Helper()
	if file, ok := strings.CutPrefix(name, "templates/"); ok {
		src, err := os.ReadFile(filepath.Join("testdata", "templates", file))
		if err != nil {
			t.Fatal(err)
		}
		tpl, err := New(string(src))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return tpl
	}
	tpl, sp, err := FromTokenizerConfig(shareddata.Path(t, "tokenizers", name, "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if sp.BOS != want["bos_token"] || sp.EOS != want["eos_token"] || sp.PAD != want["pad_token"] || sp.UNK != want["unk_token"] {
		t.Fatalf("%s: specials %+v, want %v", name, sp, want)
	}
	return tpl
}

// TestReferenceChats reproduces shared/data/reference/tokenizers.json's
// chat renderings byte for byte, through the typed Message API.
func TestReferenceChats(t *testing.T) {
	refPath := shareddata.Path(t, "reference", "tokenizers.json")
	raw, err := os.ReadFile(refPath)
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Chats      map[string][]struct{ Role, Content string } `json:"chats"`
		Tokenizers map[string]struct {
			Chat []struct {
				Chat                string         `json:"chat"`
				AddGenerationPrompt bool           `json:"add_generation_prompt"`
				Kwargs              map[string]any `json:"kwargs"`
				Text                string         `json:"text"`
			} `json:"chat"`
		} `json:"tokenizers"`
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatalf("%s: %v", refPath, err)
	}
	n := 0
	for name, tk := range ref.Tokenizers {
		if len(tk.Chat) == 0 {
			continue
		}
		tpl, sp, err := FromTokenizerConfig(shareddata.Path(t, "tokenizers", name, "tokenizer_config.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range tk.Chat {
			var msgs []Message
			for _, m := range ref.Chats[c.Chat] {
				msgs = append(msgs, Message{Role: m.Role, Content: m.Content})
			}
			got, err := tpl.Render(msgs, Options{AddGenerationPrompt: c.AddGenerationPrompt, BOSToken: sp.BOS, EOSToken: sp.EOS, Vars: c.Kwargs})
			if err != nil {
				t.Fatalf("%s %s %v: %v", name, c.Chat, c.Kwargs, err)
			}
			if got != c.Text {
				t.Errorf("%s %s %v:\n got %q\nwant %q", name, c.Chat, c.Kwargs, got, c.Text)
			}
			n++
		}
	}
	if n != 3 {
		t.Fatalf("checked %d reference renderings, want 3", n)
	}
}

// TestRandomExpressionsMatchJinja2 checks 2,000 random nested expressions
// (operators, filters, tests, methods, undefined values) against jinja2:
// the same output, or an error where jinja2 raised one.
func TestRandomExpressionsMatchJinja2(t *testing.T) {
	var golden struct {
		Vars  json.RawMessage `json:"vars"`
		Cases []randomCase    `json:"cases"`
	}
	loadJSON(t, "random.json", &golden)
	if len(golden.Cases) != 2000 {
		t.Fatalf("%d cases, want 2000", len(golden.Cases))
	}
	checkRandom(t, golden.Vars, golden.Cases)
}

// TestRandomLayoutsMatchJinja2 checks 1,000 random mixes of text,
// whitespace and tags with "-"/"+" modifiers: whitespace control under
// trim_blocks and lstrip_blocks must match jinja2 byte for byte.
func TestRandomLayoutsMatchJinja2(t *testing.T) {
	var golden struct {
		Layouts []randomCase `json:"layouts"`
	}
	loadJSON(t, "random.json", &golden)
	if len(golden.Layouts) != 1000 {
		t.Fatalf("%d layouts, want 1000", len(golden.Layouts))
	}
	checkRandom(t, []byte("{}"), golden.Layouts)
}

type randomCase struct {
	Template string  `json:"template"`
	Want     *string `json:"want"`
	Error    string  `json:"error"`
}

func checkRandom(t *testing.T, vars []byte, cases []randomCase) {
	t.Helper()
	failures := 0
	for _, c := range cases {
		got, err := renderVars(c.Template, vars)
		switch {
		case c.Want != nil && err != nil:
			t.Errorf("%s: %v; jinja2 rendered %q", c.Template, err, *c.Want)
		case c.Want != nil && got != *c.Want:
			t.Errorf("%s:\n got %q\nwant %q", c.Template, got, *c.Want)
		case c.Want == nil && err == nil:
			t.Errorf("%s: rendered %q; jinja2 failed with %s", c.Template, got, c.Error)
		default:
			continue
		}
		if failures++; failures == 20 {
			t.Fatal("too many failures")
		}
	}
}
