package chattemplate

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
)

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
		"wordcount":  filterWordcount,
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
		if ind > maxJSONIndent {
			return nil, fmt.Errorf("tojson: indent %d is more than the limit of %d", ind, maxJSONIndent)
		}
		o.hasIndent, o.indent, o.itemSep = true, strings.Repeat(" ", int(max(ind, 0))), ","
	case string:
		if len(ind) > maxJSONIndent {
			return nil, fmt.Errorf("tojson: indent of %d characters is more than the limit of %d", len(ind), maxJSONIndent)
		}
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
	case *dictView:
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
	return replaceBounded(toStr(v), old, repl, n)
}

// replaceBounded is strings.Replace, refusing a result over maxStringBytes
// before building it: replacing "" (every gap) or a short string by a long
// one multiplies the size.
func replaceBounded(s, old, repl string, n int) (string, error) {
	if len(repl) > len(old) {
		k := int64(strings.Count(s, old))
		if n >= 0 {
			k = min(k, int64(n))
		}
		if size := int64(len(s)) + k*int64(len(repl)-len(old)); size > maxStringBytes {
			return "", tooLarge("replace's result", size)
		}
	}
	return strings.Replace(s, old, repl, n), nil
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

// filterWordcount counts runs of Python's \w (letters, digits, "_").
func filterWordcount(v any, a *args) (any, error) {
	n, inWord := int64(0), false
	for _, r := range toStr(v) {
		w := r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)
		if w && !inWord {
			n++
		}
		inWord = w
	}
	return n, nil
}

func filterInt(v any, a *args) (any, error) {
	def := a.get(0, "default", int64(0))
	switch x := v.(type) {
	case undefined:
		return nil, errors.New(x.message())
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
	case undefined:
		return nil, errors.New(x.message())
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
		if w > maxStringBytes {
			return nil, tooLarge("indent's width", w)
		}
		width = strings.Repeat(" ", int(max(w, 0)))
	case string:
		width = w
	}
	first := truthy(a.get(1, "first", false))
	blank := truthy(a.get(2, "blank", false))
	s := toStr(v)
	if size := int64(len(s)) + int64(strings.Count(s, "\n")+1)*int64(len(width)); size > maxStringBytes {
		return nil, tooLarge("indent's result", size)
	}
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
	if w > maxStringBytes {
		return nil, tooLarge("center's result", int64(w))
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
