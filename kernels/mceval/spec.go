package mceval

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Spec defines a task as data, the way lm-eval's yaml does, so a task is
// added without Go. Templates hold text and {{ expr }} holes, where expr
// is a field of the document, optionally indexed ({{choices[0]}}) and
// optionally stripped of surrounding space ({{question.strip()}}): the
// subset of Jinja that lm-eval's multiple-choice yaml files use.
type Spec struct {
	// Text is doc_to_text.
	Text string
	// Choices are doc_to_choice as one template per choice
	// (["{{sol1}}", "{{sol2}}"], or literals ["no", "yes"]); ChoicesField
	// instead names a field holding the list. Exactly one is set.
	Choices      []string
	ChoicesField string
	// Gold names the field holding doc_to_target: an index into the
	// choices, or a boolean (false is choice 0, true choice 1).
	Gold string
	// Preprocess, "hellaswag", applies lm-eval's hellaswag preprocess to
	// the text and each choice; "" applies nothing.
	Preprocess string
	// Delimiter is target_delimiter (" " when empty) and FewshotDelimiter
	// fewshot_delimiter ("\n\n" when empty).
	Delimiter        string
	FewshotDelimiter string
}

// Preprocessors are the values of Spec.Preprocess.
var Preprocessors = []string{"", "hellaswag"}

var hole = regexp.MustCompile(`\{\{(.*?)\}\}`)

// expr is {{ field[i][j].strip() }}.
var exprSyntax = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)(\.strip\(\))?\s*$`)

type part struct {
	lit   string
	field string
	index []int
	strip bool
}

type template []part

func parseTemplate(s string) (template, error) {
	var t template
	last := 0
	for _, m := range hole.FindAllStringSubmatchIndex(s, -1) {
		t = append(t, part{lit: s[last:m[0]]})
		e := exprSyntax.FindStringSubmatch(s[m[2]:m[3]])
		if e == nil {
			return nil, fmt.Errorf("template %q: {{%s}} is not a field, an indexed field or .strip() of one", s, s[m[2]:m[3]])
		}
		p := part{field: e[1], strip: e[3] != ""}
		for _, ix := range regexp.MustCompile(`\d+`).FindAllString(e[2], -1) {
			n, _ := strconv.Atoi(ix)
			p.index = append(p.index, n)
		}
		t = append(t, p)
		last = m[1]
	}
	if rest := s[last:]; strings.Contains(rest, "{{") || strings.Contains(rest, "}}") {
		return nil, fmt.Errorf("template %q: unbalanced {{ }}", s)
	}
	return append(t, part{lit: s[last:]}), nil
}

func (t template) render(d Doc) (string, error) {
	var b strings.Builder
	for _, p := range t {
		if p.field == "" {
			b.WriteString(p.lit)
			continue
		}
		v, ok := d[p.field]
		if !ok {
			return "", fmt.Errorf("field %q is missing", p.field)
		}
		for _, i := range p.index {
			l, ok := v.([]any)
			if !ok || i >= len(l) {
				return "", fmt.Errorf("field %q has no item %d", p.field, i)
			}
			v = l[i]
		}
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case float64, bool:
			s = fmt.Sprint(v)
		default:
			return "", fmt.Errorf("field %q is %s, want a string", p.field, kind(v))
		}
		if p.strip {
			s = strings.TrimSpace(s)
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

// FromSpec builds a task from its definition, checking the templates.
func FromSpec(name string, s Spec) (Task, error) {
	text, err := parseTemplate(s.Text)
	if err != nil {
		return Task{}, fmt.Errorf("text: %w", err)
	}
	if (len(s.Choices) == 0) == (s.ChoicesField == "") {
		return Task{}, fmt.Errorf("exactly one of choices and choicesField is needed")
	}
	if s.Gold == "" {
		return Task{}, fmt.Errorf("gold names no field")
	}
	var pre func(string) string
	switch s.Preprocess {
	case "":
		pre = func(s string) string { return s }
	case "hellaswag":
		pre = Preprocess
	default:
		return Task{}, fmt.Errorf("unknown preprocess %q; known: hellaswag", s.Preprocess)
	}
	choices := make([]template, len(s.Choices))
	for i, c := range s.Choices {
		if choices[i], err = parseTemplate(c); err != nil {
			return Task{}, fmt.Errorf("choices[%d]: %w", i, err)
		}
	}
	t := Task{
		Name:             name,
		Delimiter:        cmpOr(s.Delimiter, " "),
		FewshotDelimiter: cmpOr(s.FewshotDelimiter, "\n\n"),
		Text: func(d Doc) (string, error) {
			out, err := text.render(d)
			return pre(out), err
		},
		Choices: func(d Doc) ([]string, error) {
			var out []string
			if s.ChoicesField != "" {
				l, err := list(d, s.ChoicesField)
				if err != nil {
					return nil, err
				}
				out = l
			} else {
				for _, c := range choices {
					r, err := c.render(d)
					if err != nil {
						return nil, err
					}
					out = append(out, r)
				}
			}
			for i := range out {
				out[i] = pre(out[i])
			}
			return out, nil
		},
		Gold: func(d Doc) (int, error) {
			if b, ok := d[s.Gold].(bool); ok {
				if b {
					return 1, nil
				}
				return 0, nil
			}
			return integer(d, s.Gold)
		},
	}
	return t, nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
