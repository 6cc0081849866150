package mceval

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Spec defines a task as data, the way lm-eval's yaml does, so a task is
// added without Go. Templates hold text and {{ expr }} holes, where expr
// is a field of the document with steps (see expr): nested fields
// ({{choices.text}}), items ({{choices[0]}}) and the string methods
// strip(), lstrip(), rstrip() and split(): the subset of Jinja that lm-eval's
// multiple-choice yaml files use.
type Spec struct {
	// Text is doc_to_text.
	Text string
	// Choices are doc_to_choice as one template per choice
	// (["{{sol1}}", "{{sol2}}"], or literals ["no", "yes"]); ChoicesField
	// instead names a field holding the list ("endings", "choices.text").
	// Exactly one is set.
	Choices      []string
	ChoicesField string
	// Gold names the field holding doc_to_target: an index into the
	// choices, or a boolean (false is choice 0, true choice 1); with
	// GoldLabels or GoldLabelsField, a label to look up among them
	// (lm-eval's choices.label.index(answerKey)).
	Gold string
	// GoldLabels are the labels of the choices, in order (["1", "2"]);
	// GoldLabelsField instead names a field holding them ("choices.label").
	// At most one is set.
	GoldLabels      []string
	GoldLabelsField string
	// Target, when set, makes the choices contexts and Target their one
	// continuation: lm-eval's multiple_inputs, as WinoGrande's partial
	// scoring does (each option fills the blank, and the rest of the
	// sentence is scored after each). Text then precedes every context.
	Target string
	// Metrics are the metrics reported: "acc" and "acc_norm" (both when
	// empty).
	Metrics []string
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

// Metrics are the metrics a task may report.
var Metrics = []string{"acc", "acc_norm"}

var hole = regexp.MustCompile(`\{\{(.*?)\}\}`)

type part struct {
	lit  string
	expr *expr
}

type template []part

func parseTemplate(s string) (template, error) {
	var t template
	last := 0
	for _, m := range hole.FindAllStringSubmatchIndex(s, -1) {
		t = append(t, part{lit: s[last:m[0]]})
		e, err := parseExpr(s[m[2]:m[3]])
		if err != nil {
			return nil, fmt.Errorf("template %q: %w", s, err)
		}
		t = append(t, part{expr: &e})
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
		if p.expr == nil {
			b.WriteString(p.lit)
			continue
		}
		s, err := p.expr.str(d)
		if err != nil {
			return "", err
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
	gold, err := parseExpr(s.Gold)
	if err != nil {
		return Task{}, fmt.Errorf("gold: %w", err)
	}
	if len(s.GoldLabels) > 0 && s.GoldLabelsField != "" {
		return Task{}, fmt.Errorf("at most one of goldLabels and goldLabelsField is allowed")
	}
	var labels *expr
	if s.GoldLabelsField != "" {
		e, err := parseExpr(s.GoldLabelsField)
		if err != nil {
			return Task{}, fmt.Errorf("goldLabelsField: %w", err)
		}
		labels = &e
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
	for _, m := range s.Metrics {
		if !slices.Contains(Metrics, m) {
			return Task{}, fmt.Errorf("unknown metric %q; known: %s", m, strings.Join(Metrics, ", "))
		}
	}
	choices := make([]template, len(s.Choices))
	for i, c := range s.Choices {
		if choices[i], err = parseTemplate(c); err != nil {
			return Task{}, fmt.Errorf("choices[%d]: %w", i, err)
		}
	}
	var choicesField expr
	if s.ChoicesField != "" {
		if choicesField, err = parseExpr(s.ChoicesField); err != nil {
			return Task{}, fmt.Errorf("choicesField: %w", err)
		}
	}
	t := Task{
		Name:             name,
		Delimiter:        cmpOr(s.Delimiter, " "),
		FewshotDelimiter: cmpOr(s.FewshotDelimiter, "\n\n"),
		Metrics:          slices.Clone(s.Metrics),
		Text: func(d Doc) (string, error) {
			out, err := text.render(d)
			return pre(out), err
		},
		Choices: func(d Doc) ([]string, error) {
			var out []string
			if s.ChoicesField != "" {
				l, err := choicesField.strings(d)
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
			if len(s.GoldLabels) == 0 && labels == nil {
				return index(gold, d)
			}
			l := s.GoldLabels
			if labels != nil {
				if l, err = labels.strings(d); err != nil {
					return 0, err
				}
			}
			return label(gold, d, l)
		},
	}
	if len(t.Metrics) == 0 {
		t.Metrics = slices.Clone(Metrics)
	}
	if s.Target != "" {
		target, err := parseTemplate(s.Target)
		if err != nil {
			return Task{}, fmt.Errorf("target: %w", err)
		}
		t.Target = func(d Doc) (string, error) {
			out, err := target.render(d)
			return pre(out), err
		}
	}
	return t, nil
}

// index reads the gold answer as an index: a number, a numeric string
// (some exports write labels as "0"/"1"), or a boolean (false is 0, true
// is 1).
func index(gold expr, d Doc) (int, error) {
	v, err := gold.eval(d)
	if err != nil {
		return 0, err
	}
	switch v := v.(type) {
	case bool:
		if v {
			return 1, nil
		}
		return 0, nil
	case float64:
		if v == float64(int(v)) {
			return int(v), nil
		}
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("field %q is %s, want an integer", gold.src, kind(v))
}

// label reads the gold answer as a label and returns its position among
// labels, as lm-eval's choices.label.index(answerKey) does. Leading space
// is dropped first, as OpenBookQA's answerKey.lstrip() does.
func label(gold expr, d Doc, labels []string) (int, error) {
	key, err := gold.str(d)
	if err != nil {
		return 0, err
	}
	key = strings.TrimLeft(key, pySpace)
	if i := slices.Index(labels, key); i >= 0 {
		return i, nil
	}
	return 0, fmt.Errorf("field %q is %q, which is not one of the labels %q", gold.src, key, labels)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
