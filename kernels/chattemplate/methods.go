package chattemplate

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// args gives filters and methods Python-style access to positional and
// keyword arguments.
type args struct {
	fn  string
	pos []any
	kw  *dict
}

func newArgs(fn string, pos []any, kw *dict) *args { return &args{fn: fn, pos: pos, kw: kw} }

// get returns argument i (or keyword name), else def.
func (a *args) get(i int, name string, def any) any {
	if i >= 0 && i < len(a.pos) {
		return a.pos[i]
	}
	if a.kw != nil {
		if v, ok := a.kw.get(name); ok {
			return v
		}
	}
	return def
}

// atMost rejects surplus positional arguments.
func (a *args) atMost(n int) error {
	if len(a.pos) > n {
		return fmt.Errorf("%s takes at most %d argument(s) (%d given)", a.fn, n, len(a.pos))
	}
	return nil
}

func (a *args) str(i int, name string, def string) (string, error) {
	v := a.get(i, name, def)
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s: argument '%s' must be str, not %s", a.fn, name, typeName(v))
	}
	return s, nil
}

// optChars reads Python's optional "chars" argument of strip methods;
// ok is false for None (strip whitespace).
func (a *args) optChars(i int) (string, bool, error) {
	v := a.get(i, "chars", nil)
	switch x := v.(type) {
	case nil:
		return "", false, nil
	case string:
		return x, true, nil
	}
	return "", false, fmt.Errorf("%s arg must be None or str", a.fn)
}

func stripper(kind string) func(string, *args) (any, error) {
	return func(s string, a *args) (any, error) {
		chars, ok, err := a.optChars(0)
		if err != nil {
			return nil, err
		}
		cut := isPySpace
		if ok {
			cut = func(r rune) bool { return strings.ContainsRune(chars, r) }
		}
		switch kind {
		case "l":
			return strings.TrimLeftFunc(s, cut), nil
		case "r":
			return strings.TrimRightFunc(s, cut), nil
		}
		return strings.TrimFunc(s, cut), nil
	}
}

// pySplit is str.split / str.rsplit with Python's None-separator rule.
func pySplit(s string, a *args, fromRight bool) (any, error) {
	sepv := a.get(0, "sep", nil)
	maxv := a.get(1, "maxsplit", int64(-1))
	maxsplit, ok := toIndex(maxv)
	if !ok {
		return nil, fmt.Errorf("maxsplit must be an integer")
	}
	var parts []string
	switch sep := sepv.(type) {
	case nil:
		fields := strings.FieldsFunc(s, isPySpace)
		if maxsplit >= 0 && len(fields) > maxsplit+1 {
			// Re-split keeping the tail intact.
			if fromRight {
				rest := s
				var tail []string
				for range maxsplit {
					rest = strings.TrimRightFunc(rest, isPySpace)
					k := strings.LastIndexFunc(rest, isPySpace)
					tail = append([]string{rest[k+1:]}, tail...)
					rest = rest[:max(k, 0)]
				}
				fields = append([]string{strings.TrimRightFunc(rest, isPySpace)}, tail...)
			} else {
				rest := s
				fields = nil
				for range maxsplit {
					rest = strings.TrimLeftFunc(rest, isPySpace)
					k := strings.IndexFunc(rest, isPySpace)
					fields = append(fields, rest[:k])
					rest = rest[k:]
				}
				fields = append(fields, strings.TrimLeftFunc(rest, isPySpace))
			}
		}
		parts = fields
	case string:
		if sep == "" {
			return nil, errors.New("empty separator")
		}
		switch {
		case maxsplit < 0:
			parts = strings.Split(s, sep)
		case !fromRight:
			parts = strings.SplitN(s, sep, maxsplit+1)
		default:
			rest := s
			var tail []string
			for range maxsplit {
				k := strings.LastIndex(rest, sep)
				if k < 0 {
					break
				}
				tail = append([]string{rest[k+len(sep):]}, tail...)
				rest = rest[:k]
			}
			parts = append([]string{rest}, tail...)
		}
	default:
		return nil, fmt.Errorf("must be str or None, not %s", typeName(sepv))
	}
	out := make([]any, len(parts))
	for i, p := range parts {
		out[i] = p
	}
	return out, nil
}

func affixMatch(s string, a *args, has func(string, string) bool) (any, error) {
	switch x := a.get(0, "prefix", nil).(type) {
	case string:
		return has(s, x), nil
	case tuple:
		for _, e := range x {
			p, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("tuple for startswith/endswith must only contain str, not %s", typeName(e))
			}
			if has(s, p) {
				return true, nil
			}
		}
		return false, nil
	default:
		return nil, fmt.Errorf("%s first arg must be str or a tuple of str, not %s", a.fn, typeName(x))
	}
}

func pyTitle(s string) string {
	var b strings.Builder
	prevCased := false
	for _, r := range s {
		if prevCased {
			b.WriteRune(unicode.ToLower(r))
		} else {
			b.WriteRune(unicode.ToTitle(r))
		}
		prevCased = unicode.IsLetter(r)
	}
	return b.String()
}

// jinjaTitle is Jinja2's do_title, which differs from str.title: words
// start only after whitespace, "-", "(", "{", "[" or "<" (so "they're"
// stays "They're").
func jinjaTitle(s string) string {
	var b strings.Builder
	start := true
	for _, r := range s {
		switch {
		case isPySpace(r) || strings.ContainsRune("-({[<", r):
			b.WriteRune(r)
			start = true
		case start:
			b.WriteRune(unicode.ToUpper(r))
			start = false
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

func pyCapitalize(s string) string {
	r := []rune(s)
	if len(r) == 0 {
		return s
	}
	return string(unicode.ToTitle(r[0])) + strings.ToLower(string(r[1:]))
}

var strMethods = map[string]func(s string, a *args) (any, error){
	"startswith": func(s string, a *args) (any, error) { return affixMatch(s, a, strings.HasPrefix) },
	"endswith":   func(s string, a *args) (any, error) { return affixMatch(s, a, strings.HasSuffix) },
	"strip":      stripper(""),
	"lstrip":     stripper("l"),
	"rstrip":     stripper("r"),
	"split":      func(s string, a *args) (any, error) { return pySplit(s, a, false) },
	"rsplit":     func(s string, a *args) (any, error) { return pySplit(s, a, true) },
	"upper":      func(s string, a *args) (any, error) { return strings.ToUpper(s), nil },
	"lower":      func(s string, a *args) (any, error) { return strings.ToLower(s), nil },
	"title":      func(s string, a *args) (any, error) { return pyTitle(s), nil },
	"capitalize": func(s string, a *args) (any, error) { return pyCapitalize(s), nil },
	"replace": func(s string, a *args) (any, error) {
		old, err := a.str(0, "old", "")
		if err != nil {
			return nil, err
		}
		repl, err := a.str(1, "new", "")
		if err != nil {
			return nil, err
		}
		n, _ := toIndex(a.get(2, "count", int64(-1)))
		return replaceBounded(s, old, repl, n)
	},
	"find": func(s string, a *args) (any, error) {
		sub, err := a.str(0, "sub", "")
		if err != nil {
			return nil, err
		}
		k := strings.Index(s, sub)
		if k < 0 {
			return int64(-1), nil
		}
		return int64(len([]rune(s[:k]))), nil
	},
	"count": func(s string, a *args) (any, error) {
		sub, err := a.str(0, "sub", "")
		if err != nil {
			return nil, err
		}
		return int64(strings.Count(s, sub)), nil
	},
	"join": func(s string, a *args) (any, error) {
		items, err := iterate(a.get(0, "iterable", nil))
		if err != nil {
			return nil, err
		}
		parts := make([]string, len(items))
		for i, it := range items {
			str, ok := it.(string)
			if !ok {
				return nil, fmt.Errorf("sequence item %d: expected str instance, %s found", i, typeName(it))
			}
			parts[i] = str
		}
		return strings.Join(parts, s), nil
	},
	"splitlines": func(s string, a *args) (any, error) {
		lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
		if len(lines) > 0 && lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		out := make([]any, len(lines))
		for i, l := range lines {
			out[i] = l
		}
		return out, nil
	},
	"isdigit": func(s string, a *args) (any, error) {
		return s != "" && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsDigit(r) }) < 0, nil
	},
	"isspace": func(s string, a *args) (any, error) {
		return s != "" && strings.IndexFunc(s, func(r rune) bool { return !isPySpace(r) }) < 0, nil
	},
	"isalpha": func(s string, a *args) (any, error) {
		return s != "" && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsLetter(r) }) < 0, nil
	},
	"removeprefix": func(s string, a *args) (any, error) {
		p, err := a.str(0, "prefix", "")
		return strings.TrimPrefix(s, p), err
	},
	"removesuffix": func(s string, a *args) (any, error) {
		p, err := a.str(0, "suffix", "")
		return strings.TrimSuffix(s, p), err
	},
}

var dictMethods = map[string]func(d *dict, a *args) (any, error){
	"items": func(d *dict, a *args) (any, error) { return &dictView{"dict_items", dictItems(d)}, nil },
	"keys": func(d *dict, a *args) (any, error) {
		return &dictView{"dict_keys", append([]any{}, d.keys...)}, nil
	},
	"values": func(d *dict, a *args) (any, error) {
		out := make([]any, 0, d.len())
		for _, k := range d.keys {
			out = append(out, d.vals[k])
		}
		return &dictView{"dict_values", out}, nil
	},
	"get": func(d *dict, a *args) (any, error) {
		k := a.get(0, "key", nil)
		if v, ok := d.get(k); ok && hashable(k) {
			return v, nil
		}
		return a.get(1, "default", nil), nil
	},
	"copy": func(d *dict, a *args) (any, error) {
		c := newDict()
		for _, k := range d.keys {
			c.set(k, d.vals[k])
		}
		return c, nil
	},
}

func dictItems(d *dict) []any {
	out := make([]any, 0, d.len())
	for _, k := range d.keys {
		out = append(out, tuple{k, d.vals[k]})
	}
	return out
}

var seqMethods = map[string]func(items []any, a *args) (any, error){
	"index": func(items []any, a *args) (any, error) {
		x := a.get(0, "value", nil)
		for i, it := range items {
			if equal(it, x) {
				return int64(i), nil
			}
		}
		return nil, fmt.Errorf("%s is not in list", repr(x))
	},
	"count": func(items []any, a *args) (any, error) {
		x := a.get(0, "value", nil)
		n := int64(0)
		for _, it := range items {
			if equal(it, x) {
				n++
			}
		}
		return n, nil
	},
}

// method returns obj.name as a bound method, or nil.
func method(obj any, name string) any {
	switch x := obj.(type) {
	case string:
		if m, ok := strMethods[name]; ok {
			return callable(func(pos []any, kw *dict) (any, error) { return m(x, newArgs("str."+name, pos, kw)) })
		}
	case *dict:
		if m, ok := dictMethods[name]; ok {
			return callable(func(pos []any, kw *dict) (any, error) { return m(x, newArgs("dict."+name, pos, kw)) })
		}
	case []any, tuple:
		items, _ := asSequence(x)
		if m, ok := seqMethods[name]; ok {
			return callable(func(pos []any, kw *dict) (any, error) { return m(items, newArgs(typeName(x)+"."+name, pos, kw)) })
		}
	}
	return nil
}
