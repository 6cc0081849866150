package chattemplate

import (
	"errors"
	"fmt"
	"math"
	"strconv"
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
		return strings.Replace(s, old, repl, n), nil
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
	"items": func(d *dict, a *args) (any, error) { return dictItems(d), nil },
	"keys":  func(d *dict, a *args) (any, error) { return append([]any{}, d.keys...), nil },
	"values": func(d *dict, a *args) (any, error) {
		out := make([]any, 0, d.len())
		for _, k := range d.keys {
			out = append(out, d.vals[k])
		}
		return out, nil
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

// Filters follow jinja2/filters.py; tojson is Hugging Face's.
var filters map[string]func(v any, a *args) (any, error)

func init() {
	filters = map[string]func(v any, a *args) (any, error){
		"tojson":     filterToJSON,
		"trim":       filterTrim,
		"length":     filterLength,
		"count":      filterLength,
		"default":    filterDefault,
		"d":          filterDefault,
		"join":       filterJoin,
		"upper":      strFilter(strings.ToUpper),
		"lower":      strFilter(strings.ToLower),
		"title":      strFilter(jinjaTitle),
		"capitalize": strFilter(pyCapitalize),
		"string":     func(v any, a *args) (any, error) { return toStr(v), nil },
		"safe":       func(v any, a *args) (any, error) { return v, nil },
		"replace":    filterReplace,
		"items":      filterItems,
		"list":       func(v any, a *args) (any, error) { return listOf(v) },
		"first":      filterFirst,
		"last":       filterLast,
		"reverse":    filterReverse,
		"int":        filterInt,
		"float":      filterFloat,
		"abs":        filterAbs,
		"indent":     filterIndent,
		"map":        filterMap,
		"select":     selectFilter(false, false),
		"reject":     selectFilter(true, false),
		"selectattr": selectFilter(false, true),
		"rejectattr": selectFilter(true, true),
		"unique":     filterUnique,
		"sort":       filterSort,
		"dictsort":   filterDictsort,
		"sum":        filterSum,
		"min":        minMax(-1),
		"max":        minMax(1),
		"batch":      filterBatch,
		"wordcount":  func(v any, a *args) (any, error) { return int64(len(strings.FieldsFunc(toStr(v), isPySpace))), nil },
		"center":     filterCenter,
		"round":      filterRound,
	}
}

func filterToJSON(v any, a *args) (any, error) {
	o := jsonOptions{itemSep: ", ", keySep: ": "}
	ascii := a.get(1, "ensure_ascii", false)
	o.ensureASCII = truthy(ascii)
	switch ind := a.get(0, "indent", nil).(type) {
	case nil:
	case int64:
		o.hasIndent, o.indent, o.itemSep = true, strings.Repeat(" ", int(max(ind, 0))), ","
	case string:
		o.hasIndent, o.indent, o.itemSep = true, ind, ","
	default:
		return nil, fmt.Errorf("tojson: indent must be an int or str, not %s", typeName(ind))
	}
	if seps := a.get(2, "separators", nil); seps != nil {
		s, ok := asSequence(seps)
		if !ok || len(s) != 2 {
			return nil, errors.New("tojson: separators must be a pair of strings")
		}
		is, ok1 := s[0].(string)
		ks, ok2 := s[1].(string)
		if !ok1 || !ok2 {
			return nil, errors.New("tojson: separators must be a pair of strings")
		}
		o.itemSep, o.keySep = is, ks
	}
	o.sortKeys = truthy(a.get(3, "sort_keys", false))
	return toJSON(v, o)
}

func filterTrim(v any, a *args) (any, error) {
	chars, ok, err := a.optChars(0)
	if err != nil {
		return nil, err
	}
	s := toStr(v)
	if ok {
		return strings.Trim(s, chars), nil
	}
	return strings.TrimFunc(s, isPySpace), nil
}

func filterLength(v any, a *args) (any, error) {
	switch x := v.(type) {
	case undefined:
		return int64(0), nil
	case string:
		return int64(len([]rune(x))), nil
	case []any:
		return int64(len(x)), nil
	case tuple:
		return int64(len(x)), nil
	case *dict:
		return int64(x.len()), nil
	case *loopInfo:
		return int64(len(x.items)), nil
	}
	return nil, fmt.Errorf("object of type '%s' has no len()", typeName(v))
}

func filterDefault(v any, a *args) (any, error) {
	def := a.get(0, "default_value", "")
	if isUndefined(v) || (truthy(a.get(1, "boolean", false)) && !truthy(v)) {
		return def, nil
	}
	return v, nil
}

func filterJoin(v any, a *args) (any, error) {
	sep, err := a.str(0, "d", "")
	if err != nil {
		return nil, err
	}
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	attr := a.get(1, "attribute", nil)
	parts := make([]string, len(items))
	for i, it := range items {
		if attr != nil {
			if it, err = attrPath(it, attr); err != nil {
				return nil, err
			}
		}
		parts[i] = toStr(it)
	}
	return strings.Join(parts, sep), nil
}

func strFilter(f func(string) string) func(any, *args) (any, error) {
	return func(v any, a *args) (any, error) { return f(toStr(v)), nil }
}

func filterReplace(v any, a *args) (any, error) {
	old, err := a.str(0, "old", "")
	if err != nil {
		return nil, err
	}
	repl, err := a.str(1, "new", "")
	if err != nil {
		return nil, err
	}
	n, _ := toIndex(a.get(2, "count", int64(-1)))
	return strings.Replace(toStr(v), old, repl, n), nil
}

func filterItems(v any, a *args) (any, error) {
	switch x := v.(type) {
	case undefined:
		return []any{}, nil
	case *dict:
		return dictItems(x), nil
	}
	return nil, fmt.Errorf("can only get item pairs from a mapping, not %s", typeName(v))
}

func listOf(v any) ([]any, error) {
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	return append([]any{}, items...), nil
}

func filterFirst(v any, a *args) (any, error) {
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return undefined{hint: "No first item, sequence was empty."}, nil
	}
	return items[0], nil
}

func filterLast(v any, a *args) (any, error) {
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return undefined{hint: "No last item, sequence was empty."}, nil
	}
	return items[len(items)-1], nil
}

func filterReverse(v any, a *args) (any, error) {
	if s, ok := v.(string); ok {
		r := []rune(s)
		for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
			r[i], r[j] = r[j], r[i]
		}
		return string(r), nil
	}
	items, err := listOf(v)
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(items)-1; i < j; i, j = i+1, j-1 {
		items[i], items[j] = items[j], items[i]
	}
	return items, nil
}

func filterInt(v any, a *args) (any, error) {
	def := a.get(0, "default", int64(0))
	switch x := v.(type) {
	case bool, int64:
		n, _ := number(x)
		return n, nil
	case float64:
		return int64(x), nil
	case string:
		s := strings.TrimFunc(x, isPySpace)
		if i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64); err == nil {
			return i, nil
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return int64(f), nil
		}
	}
	return def, nil
}

func filterFloat(v any, a *args) (any, error) {
	def := a.get(0, "default", 0.0)
	switch x := v.(type) {
	case bool, int64, float64:
		n, _ := number(x)
		return toFloat(n), nil
	case string:
		if f, err := strconv.ParseFloat(strings.TrimFunc(x, isPySpace), 64); err == nil {
			return f, nil
		}
	}
	return def, nil
}

func filterAbs(v any, a *args) (any, error) {
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return -x, nil
		}
		return x, nil
	case float64:
		return math.Abs(x), nil
	case bool:
		n, _ := number(x)
		return n, nil
	}
	return nil, fmt.Errorf("bad operand type for abs(): '%s'", typeName(v))
}

func filterRound(v any, a *args) (any, error) {
	n, ok := number(v)
	if !ok {
		return nil, fmt.Errorf("round: %s is not a number", typeName(v))
	}
	prec, _ := toIndex(a.get(0, "precision", int64(0)))
	method, err := a.str(1, "method", "common")
	if err != nil {
		return nil, err
	}
	if method == "common" {
		// Python's round(): exact decimal value, ties to even, which
		// strconv's correctly rounded formatting also implements.
		if prec >= 0 {
			r, _ := strconv.ParseFloat(strconv.FormatFloat(toFloat(n), 'f', prec, 64), 64)
			return r, nil
		}
		p := math.Pow10(-prec)
		return math.RoundToEven(toFloat(n)/p) * p, nil
	}
	f := toFloat(n) * math.Pow10(prec)
	switch method {
	case "ceil":
		f = math.Ceil(f)
	case "floor":
		f = math.Floor(f)
	default:
		return nil, errors.New("method must be 'common', 'ceil' or 'floor'")
	}
	return f / math.Pow10(prec), nil
}

func filterIndent(v any, a *args) (any, error) {
	width := "    "
	switch w := a.get(0, "width", int64(4)).(type) {
	case int64:
		width = strings.Repeat(" ", int(max(w, 0)))
	case string:
		width = w
	}
	first := truthy(a.get(1, "first", false))
	blank := truthy(a.get(2, "blank", false))
	s := toStr(v)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if i == 0 && !first {
			continue
		}
		if l == "" && !blank {
			continue
		}
		lines[i] = width + l
	}
	return strings.Join(lines, "\n"), nil
}

func filterCenter(v any, a *args) (any, error) {
	w, _ := toIndex(a.get(0, "width", int64(80)))
	s := toStr(v)
	n := len([]rune(s))
	if w <= n {
		return s, nil
	}
	total := w - n
	// CPython's str.center: left = pad/2 + (pad & width & 1).
	left := total/2 + (total & w & 1)
	return strings.Repeat(" ", left) + s + strings.Repeat(" ", total-left), nil
}

// attrPath resolves "a.b.0" as Jinja2's make_attrgetter does.
func attrPath(v any, attr any) (any, error) {
	s, ok := attr.(string)
	if !ok {
		return getitem(v, attr)
	}
	for _, part := range strings.Split(s, ".") {
		var key any = part
		if i, err := strconv.ParseInt(part, 10, 64); err == nil {
			key = i
		}
		var err error
		if v, err = getitem(v, key); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func filterMap(v any, a *args) (any, error) {
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(items))
	if attr := a.get(-1, "attribute", nil); attr != nil {
		def := a.get(-1, "default", nil)
		for _, it := range items {
			x, err := attrPath(it, attr)
			if err != nil {
				return nil, err
			}
			if isUndefined(x) && def != nil {
				x = def
			}
			out = append(out, x)
		}
		return out, nil
	}
	name, err := a.str(0, "name", "")
	if err != nil {
		return nil, err
	}
	f, ok := filters[name]
	if !ok {
		return nil, fmt.Errorf("no filter named '%s'", name)
	}
	rest := newArgs("filter "+name, a.pos[1:], a.kw)
	for _, it := range items {
		x, err := f(it, rest)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

// selectFilter builds select/reject (test on the item) and
// selectattr/rejectattr (test on an attribute of the item).
func selectFilter(reject, byAttr bool) func(any, *args) (any, error) {
	return func(v any, a *args) (any, error) {
		items, err := iterate(v)
		if err != nil {
			return nil, err
		}
		rest := a.pos
		var attr any
		if byAttr {
			if len(rest) == 0 {
				return nil, errors.New("missing parameter for attribute name")
			}
			attr, rest = rest[0], rest[1:]
		}
		test := func(x any) (bool, error) { return truthy(x), nil }
		if len(rest) > 0 {
			name, ok := rest[0].(string)
			if !ok {
				return nil, errors.New("test name must be a string")
			}
			t, ok := tests[name]
			if !ok {
				return nil, fmt.Errorf("no test named '%s'", name)
			}
			targs := rest[1:]
			test = func(x any) (bool, error) { return t(x, targs) }
		}
		out := []any{}
		for _, it := range items {
			x := it
			if byAttr {
				if x, err = attrPath(it, attr); err != nil {
					return nil, err
				}
			}
			ok, err := test(x)
			if err != nil {
				return nil, err
			}
			if ok != reject {
				out = append(out, it)
			}
		}
		return out, nil
	}
}

func filterUnique(v any, a *args) (any, error) {
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	var out []any
	for _, it := range items {
		dup := false
		for _, o := range out {
			if equal(foldCase(o), foldCase(it)) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, it)
		}
	}
	return out, nil
}

func foldCase(v any) any {
	if s, ok := v.(string); ok {
		return strings.ToLower(s)
	}
	return v
}

func filterSort(v any, a *args) (any, error) {
	items, err := listOf(v)
	if err != nil {
		return nil, err
	}
	reverse := truthy(a.get(0, "reverse", false))
	caseSensitive := truthy(a.get(1, "case_sensitive", false))
	attr := a.get(2, "attribute", nil)
	keys := make([]any, len(items))
	for i, it := range items {
		k := it
		if attr != nil {
			if k, err = attrPath(it, attr); err != nil {
				return nil, err
			}
		}
		if !caseSensitive {
			k = foldCase(k)
		}
		keys[i] = k
	}
	idx := make([]any, len(items))
	for i := range idx {
		idx[i] = tuple{keys[i], int64(i)}
	}
	var sortErr error
	sortStable(idx, func(x, y any) bool {
		c, err := order(x.(tuple)[0], y.(tuple)[0], "<")
		if err != nil && sortErr == nil {
			sortErr = err
		}
		if reverse {
			return c > 0
		}
		return c < 0
	})
	if sortErr != nil {
		return nil, sortErr
	}
	out := make([]any, len(items))
	for i, t := range idx {
		out[i] = items[t.(tuple)[1].(int64)]
	}
	return out, nil
}

func sortStable(vs []any, less func(a, b any) bool) {
	// Insertion sort keeps this dependency-free and stable; template
	// lists are short.
	for i := 1; i < len(vs); i++ {
		for j := i; j > 0 && less(vs[j], vs[j-1]); j-- {
			vs[j], vs[j-1] = vs[j-1], vs[j]
		}
	}
}

func filterDictsort(v any, a *args) (any, error) {
	d, ok := v.(*dict)
	if !ok {
		return nil, fmt.Errorf("dictsort: %s is not a mapping", typeName(v))
	}
	items := dictItems(d)
	caseSensitive := truthy(a.get(0, "case_sensitive", false))
	pos := 0
	if by, _ := a.str(1, "by", "key"); by == "value" {
		pos = 1
	}
	reverse := truthy(a.get(2, "reverse", false))
	var sortErr error
	sortStable(items, func(x, y any) bool {
		kx, ky := x.(tuple)[pos], y.(tuple)[pos]
		if !caseSensitive {
			kx, ky = foldCase(kx), foldCase(ky)
		}
		c, err := order(kx, ky, "<")
		if err != nil && sortErr == nil {
			sortErr = err
		}
		if reverse {
			return c > 0
		}
		return c < 0
	})
	return items, sortErr
}

func filterSum(v any, a *args) (any, error) {
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	attr := a.get(-1, "attribute", nil)
	var total any = a.get(1, "start", int64(0))
	for _, it := range items {
		if attr != nil {
			if it, err = attrPath(it, attr); err != nil {
				return nil, err
			}
		}
		if total, err = binary("+", total, it); err != nil {
			return nil, err
		}
	}
	return total, nil
}

func minMax(sign int) func(any, *args) (any, error) {
	return func(v any, a *args) (any, error) {
		items, err := iterate(v)
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			return undefined{hint: "No aggregated item, sequence was empty."}, nil
		}
		caseSensitive := truthy(a.get(0, "case_sensitive", false))
		attr := a.get(1, "attribute", nil)
		key := func(x any) (any, error) {
			if attr != nil {
				var err error
				if x, err = attrPath(x, attr); err != nil {
					return nil, err
				}
			}
			if !caseSensitive {
				x = foldCase(x)
			}
			return x, nil
		}
		best := items[0]
		bk, err := key(best)
		if err != nil {
			return nil, err
		}
		for _, it := range items[1:] {
			k, err := key(it)
			if err != nil {
				return nil, err
			}
			c, err := order(k, bk, "<")
			if err != nil {
				return nil, err
			}
			if c*sign > 0 {
				best, bk = it, k
			}
		}
		return best, nil
	}
}

func filterBatch(v any, a *args) (any, error) {
	items, err := iterate(v)
	if err != nil {
		return nil, err
	}
	n, ok := toIndex(a.get(0, "linecount", nil))
	if !ok || n <= 0 {
		return nil, errors.New("batch: linecount must be a positive integer")
	}
	fill := a.get(1, "fill_with", nil)
	var out []any
	for i := 0; i < len(items); i += n {
		row := append([]any{}, items[i:min(i+n, len(items))]...)
		if fill != nil {
			for len(row) < n {
				row = append(row, fill)
			}
		}
		out = append(out, row)
	}
	return out, nil
}

// Tests follow jinja2/tests.py.
var tests map[string]func(v any, args []any) (bool, error)

func init() {
	isType := func(pred func(any) bool) func(any, []any) (bool, error) {
		return func(v any, _ []any) (bool, error) { return pred(v), nil }
	}
	cmpTest := func(op string) func(any, []any) (bool, error) {
		return func(v any, args []any) (bool, error) {
			if len(args) != 1 {
				return false, fmt.Errorf("test '%s' takes one argument", op)
			}
			return compare(op, v, args[0])
		}
	}
	tests = map[string]func(v any, args []any) (bool, error){
		"defined":   isType(func(v any) bool { return !isUndefined(v) }),
		"undefined": isType(isUndefined),
		"none":      isType(func(v any) bool { return v == nil }),
		"string":    isType(func(v any) bool { _, ok := v.(string); return ok }),
		"mapping":   isType(func(v any) bool { _, ok := v.(*dict); return ok }),
		"boolean":   isType(func(v any) bool { _, ok := v.(bool); return ok }),
		"true":      isType(func(v any) bool { b, ok := v.(bool); return ok && b }),
		"false":     isType(func(v any) bool { b, ok := v.(bool); return ok && !b }),
		"integer":   isType(func(v any) bool { _, ok := v.(int64); return ok }),
		"float":     isType(func(v any) bool { _, ok := v.(float64); return ok }),
		"number":    isType(func(v any) bool { _, ok := number(v); return ok }),
		"callable":  isType(func(v any) bool { _, ok := v.(callable); return ok }),
		"sequence": isType(func(v any) bool {
			switch v.(type) {
			case string, []any, tuple, *dict:
				return true
			}
			return false
		}),
		"iterable": isType(func(v any) bool { _, err := iterate(v); return err == nil && !isUndefined(v) }),
		"lower":    isType(func(v any) bool { s := toStr(v); return strings.ToLower(s) == s }),
		"upper":    isType(func(v any) bool { s := toStr(v); return strings.ToUpper(s) == s }),
		"odd": func(v any, _ []any) (bool, error) {
			m, err := binary("%", v, int64(2))
			return err == nil && equal(m, int64(1)), err
		},
		"even": func(v any, _ []any) (bool, error) {
			m, err := binary("%", v, int64(2))
			return err == nil && equal(m, int64(0)), err
		},
		"divisibleby": func(v any, args []any) (bool, error) {
			if len(args) != 1 {
				return false, errors.New("test 'divisibleby' takes one argument")
			}
			m, err := binary("%", v, args[0])
			return err == nil && equal(m, int64(0)), err
		},
		"sameas": func(v any, args []any) (bool, error) {
			if len(args) != 1 {
				return false, errors.New("test 'sameas' takes one argument")
			}
			if hashable(v) {
				return equal(v, args[0]) && typeName(v) == typeName(args[0]), nil
			}
			return v == args[0], nil
		},
		"in": func(v any, args []any) (bool, error) {
			if len(args) != 1 {
				return false, errors.New("test 'in' takes one argument")
			}
			return in(v, args[0])
		},
		"eq": cmpTest("=="), "equalto": cmpTest("=="), "==": cmpTest("=="),
		"ne": cmpTest("!="), "!=": cmpTest("!="),
		"lt": cmpTest("<"), "lessthan": cmpTest("<"), "<": cmpTest("<"),
		"le": cmpTest("<="), "<=": cmpTest("<="),
		"gt": cmpTest(">"), "greaterthan": cmpTest(">"), ">": cmpTest(">"),
		"ge": cmpTest(">="), ">=": cmpTest(">="),
	}
}
