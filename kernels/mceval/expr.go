package mceval

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// expr is the Jinja expression inside a template's {{ }}, or a field
// named by choicesField, gold or goldLabelsField: the subset lm-eval's
// multiple-choice yaml files use. It is a field of the document, then any
// number of steps: .name (a field of a nested object: choices.text),
// [i] (an item of a list), and the string methods strip(), lstrip(),
// rstrip() and split(sep[, maxsplit]), which do what Python's do, so
// WinoGrande's sentence[:sentence.index("_")] is written
// sentence.split('_', 1)[0].
type expr struct {
	src   string
	field string
	steps []step
}

type step struct {
	field  string // .field
	index  int    // [index], when method and field are empty
	method string // strip, lstrip, rstrip, split
	sep    string // split's separator
	max    int    // split's maxsplit; -1 for all
}

// exprParser reads an expression left to right.
type exprParser struct {
	s   string
	pos int
}

func parseExpr(src string) (expr, error) {
	p := &exprParser{s: src}
	e := expr{src: strings.TrimSpace(src)}
	fail := func(why string) (expr, error) {
		return expr{}, fmt.Errorf("%q is not a field, .field, [index] or .strip()/.lstrip()/.rstrip()/.split(sep[, n]) of one: %s", e.src, why)
	}
	p.space()
	if e.field = p.ident(); e.field == "" {
		return fail("it does not start with a field name")
	}
	for {
		p.space()
		if p.pos == len(p.s) {
			return e, nil
		}
		switch p.s[p.pos] {
		case '.':
			p.pos++
			name := p.ident()
			if name == "" {
				return fail(fmt.Sprintf("a name must follow the '.' at %d", p.pos))
			}
			p.space()
			if !p.eat('(') {
				e.steps = append(e.steps, step{field: name})
				continue
			}
			st := step{method: name, max: -1}
			switch name {
			case "strip", "lstrip", "rstrip":
			case "split":
				p.space()
				sep, ok := p.quoted()
				if !ok || sep == "" {
					return fail("split takes a non-empty quoted separator")
				}
				st.sep = sep
				p.space()
				if p.eat(',') {
					p.space()
					n, ok := p.integer()
					if !ok {
						return fail("split's maxsplit must be an integer")
					}
					st.max = n
				}
			default:
				return fail(fmt.Sprintf("unknown method %s()", name))
			}
			p.space()
			if !p.eat(')') {
				return fail(fmt.Sprintf("%s( is not closed", name))
			}
			e.steps = append(e.steps, st)
		case '[':
			p.pos++
			p.space()
			n, ok := p.integer()
			p.space()
			if !ok || n < 0 || !p.eat(']') {
				return fail("an index is a non-negative integer in [ ]")
			}
			e.steps = append(e.steps, step{index: n})
		default:
			return fail(fmt.Sprintf("unexpected %q", p.s[p.pos:]))
		}
	}
}

func (p *exprParser) space() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t') {
		p.pos++
	}
}

func (p *exprParser) eat(c byte) bool {
	if p.pos < len(p.s) && p.s[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

func (p *exprParser) ident() string {
	start := p.pos
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || p.pos > start && '0' <= c && c <= '9' {
			p.pos++
			continue
		}
		break
	}
	return p.s[start:p.pos]
}

func (p *exprParser) integer() (int, bool) {
	start := p.pos
	for p.pos < len(p.s) && '0' <= p.s[p.pos] && p.s[p.pos] <= '9' {
		p.pos++
	}
	n, err := strconv.Atoi(p.s[start:p.pos])
	return n, err == nil
}

// quoted reads a '…' or "…" literal with no escapes.
func (p *exprParser) quoted() (string, bool) {
	if p.pos == len(p.s) || p.s[p.pos] != '\'' && p.s[p.pos] != '"' {
		return "", false
	}
	q := p.s[p.pos]
	end := strings.IndexByte(p.s[p.pos+1:], q)
	if end < 0 {
		return "", false
	}
	s := p.s[p.pos+1 : p.pos+1+end]
	p.pos += end + 2
	return s, !strings.Contains(s, `\`)
}

// eval returns the expression's value in d: a string, number, boolean,
// list or object.
func (e expr) eval(d Doc) (any, error) {
	v, ok := d[e.field]
	if !ok {
		return nil, fmt.Errorf("field %q is missing", e.field)
	}
	at := e.field // the path so far, for messages
	for _, st := range e.steps {
		switch {
		case st.method != "":
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("field %q is %s; %s() needs a string", at, kind(v), st.method)
			}
			v = st.apply(s)
			at += "." + st.method + "()"
		case st.field != "":
			m, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("field %q is %s, so it has no field %q", at, kind(v), st.field)
			}
			if v, ok = m[st.field]; !ok {
				return nil, fmt.Errorf("field %q is missing", at+"."+st.field)
			}
			at += "." + st.field
		default:
			l, ok := v.([]any)
			if !ok || st.index >= len(l) {
				return nil, fmt.Errorf("field %q has no item %d", at, st.index)
			}
			v = l[st.index]
			at += fmt.Sprintf("[%d]", st.index)
		}
	}
	return v, nil
}

// apply runs a string method as Python does.
func (st step) apply(s string) any {
	switch st.method {
	case "strip":
		return strings.TrimSpace(s)
	case "lstrip":
		return strings.TrimLeft(s, pySpace)
	case "rstrip":
		return strings.TrimRight(s, pySpace)
	}
	var parts []string
	if st.max < 0 {
		parts = strings.Split(s, st.sep)
	} else {
		parts = strings.SplitN(s, st.sep, st.max+1)
	}
	out := make([]any, len(parts))
	for i, p := range parts {
		out[i] = p
	}
	return out
}

// pySpace is the ASCII whitespace Python's str.strip removes by default.
const pySpace = " \t\n\r\v\f"

// str evaluates e as a string: a string as it is, a number or boolean as
// text (JSON numbers are float64; 3.0 prints as "3").
func (e expr) str(d Doc) (string, error) {
	v, err := e.eval(d)
	if err != nil {
		return "", err
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case float64, bool:
		return fmt.Sprint(v), nil
	}
	return "", fmt.Errorf("field %q is %s, want a string", e.src, kind(v))
}

// strings evaluates e as a non-empty list of strings.
func (e expr) strings(d Doc) ([]string, error) {
	v, err := e.eval(d)
	if err != nil {
		return nil, err
	}
	l, ok := v.([]any)
	if !ok || len(l) == 0 {
		return nil, fmt.Errorf("field %q is %s, want a non-empty list of strings", e.src, kind(v))
	}
	out := make([]string, len(l))
	for i, x := range l {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("field %q[%d] is %s, want a string", e.src, i, kind(x))
		}
		out[i] = s
	}
	return out, nil
}

// Fields returns the document fields a task's definition reads (the first
// name of every expression), sorted, so a reader can check a file's
// columns before reading items from it.
func (s Spec) Fields() ([]string, error) {
	seen := map[string]bool{}
	addExpr := func(src string) error {
		if src == "" {
			return nil
		}
		e, err := parseExpr(src)
		if err != nil {
			return err
		}
		seen[e.field] = true
		return nil
	}
	for _, src := range []string{s.ChoicesField, s.Gold, s.GoldLabelsField} {
		if err := addExpr(src); err != nil {
			return nil, err
		}
	}
	for _, tmpl := range append([]string{s.Text, s.Target}, s.Choices...) {
		t, err := parseTemplate(tmpl)
		if err != nil {
			return nil, err
		}
		for _, p := range t {
			if p.expr != nil {
				seen[p.expr.field] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(seen)), nil
}
