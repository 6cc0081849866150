package chattemplate

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Python semantics of the operators, lookups and iteration that Jinja2
// delegates to the host language.

// iterate lists the items a for loop visits: dicts yield keys, strings
// characters, undefined nothing.
func iterate(v any) ([]any, error) {
	switch x := v.(type) {
	case undefined:
		return nil, nil
	case []any:
		return x, nil
	case tuple:
		return x, nil
	case *dict:
		return append([]any(nil), x.keys...), nil
	case string:
		out := make([]any, 0, len(x))
		for _, r := range x {
			out = append(out, string(r))
		}
		return out, nil
	case *loopInfo:
		return x.items, nil
	case *dictView:
		return x.items, nil
	}
	return nil, fmt.Errorf("'%s' object is not iterable", typeName(v))
}

func asSequence(v any) ([]any, bool) {
	switch x := v.(type) {
	case []any:
		return x, true
	case tuple:
		return x, true
	}
	return nil, false
}

// hashable reports whether Python could use v as a dict key. Only the
// scalar kinds can be stored in a dict here; tuples and undefined hash
// in Python but never match a stored key.
func hashable(v any) bool {
	switch x := v.(type) {
	case nil, bool, int64, float64, string, undefined:
		return true
	case tuple:
		for _, e := range x {
			if !hashable(e) {
				return false
			}
		}
		return true
	}
	return false
}

// storableKey reports whether v can be a key of a dict value.
func storableKey(v any) bool {
	switch v.(type) {
	case nil, bool, int64, float64, string:
		return true
	}
	return false
}

// objectTypeRepr follows jinja2.utils.object_type_repr, used in hints.
func objectTypeRepr(v any) string {
	switch v.(type) {
	case nil:
		return "None"
	case *namespace:
		return "jinja2.utils.Namespace object"
	}
	return typeName(v) + " object"
}

func missingAttr(obj any, name string) undefined {
	return undefined{hint: fmt.Sprintf("'%s' has no attribute '%s'", objectTypeRepr(obj), name)}
}

// unsafeMethods are mutators that Hugging Face's ImmutableSandboxedEnvironment
// refuses to expose.
var unsafeMethods = map[string]map[string]bool{
	"list": {"append": true, "clear": true, "extend": true, "insert": true, "pop": true, "remove": true, "reverse": true, "sort": true},
	"dict": {"clear": true, "pop": true, "popitem": true, "setdefault": true, "update": true},
}

// getattr is Jinja2's obj.name: attributes (methods) first, then items.
func getattr(obj any, name string) (any, error) {
	if u, ok := obj.(undefined); ok {
		return nil, errors.New(u.message())
	}
	if strings.HasPrefix(name, "_") {
		return undefined{hint: fmt.Sprintf("access to attribute '%s' of '%s' object is unsafe.", name, typeName(obj))}, nil
	}
	if unsafeMethods[typeName(obj)][name] {
		return undefined{hint: fmt.Sprintf("access to attribute '%s' of '%s' object is unsafe.", name, typeName(obj))}, nil
	}
	if m := method(obj, name); m != nil {
		return m, nil
	}
	switch x := obj.(type) {
	case *dict:
		if v, ok := x.get(name); ok {
			return v, nil
		}
	case *namespace:
		if v, ok := x.attrs.get(name); ok {
			return v, nil
		}
	case *loopInfo:
		if v, ok := x.attr(name); ok {
			return v, nil
		}
	}
	return missingAttr(obj, name), nil
}

// getitem is Jinja2's obj[key]: items first, then attributes.
func getitem(obj any, key any) (any, error) {
	if u, ok := obj.(undefined); ok {
		return nil, errors.New(u.message())
	}
	switch x := obj.(type) {
	case *dict:
		if !hashable(key) {
			return nil, fmt.Errorf("unhashable type: '%s'", typeName(key))
		}
		if v, ok := x.get(key); ok {
			return v, nil
		}
	case []any, tuple, string:
		if i, ok := toIndex(key); ok {
			n := seqLen(x)
			if i < 0 {
				i += n
			}
			if i >= 0 && i < n {
				return seqAt(x, i), nil
			}
			return undefined{hint: fmt.Sprintf("'%s' has no element %s", objectTypeRepr(obj), repr(key))}, nil
		}
	}
	if s, ok := key.(string); ok {
		return getattr(obj, s)
	}
	return undefined{hint: fmt.Sprintf("'%s' has no element %s", objectTypeRepr(obj), repr(key))}, nil
}

func toIndex(v any) (int, bool) {
	switch x := v.(type) {
	case int64:
		return int(x), true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func seqLen(v any) int {
	switch x := v.(type) {
	case []any:
		return len(x)
	case tuple:
		return len(x)
	case string:
		return len([]rune(x))
	}
	return 0
}

func seqAt(v any, i int) any {
	switch x := v.(type) {
	case []any:
		return x[i]
	case tuple:
		return x[i]
	case string:
		return string([]rune(x)[i])
	}
	return nil
}

// slice implements Python's seq[start:stop:step], negative steps included.
func slice(obj, start, stop, step any) (any, error) {
	if u, ok := obj.(undefined); ok {
		return nil, errors.New(u.message())
	}
	var items []any
	var runes []rune
	switch x := obj.(type) {
	case []any:
		items = x
	case tuple:
		items = x
	case string:
		runes = []rune(x)
	default:
		return nil, fmt.Errorf("'%s' object is not subscriptable", typeName(obj))
	}
	n := len(items)
	if runes != nil {
		n = len(runes)
	}
	bound := func(v any, name string) (int, bool, error) {
		if v == nil {
			return 0, false, nil
		}
		i, ok := toIndex(v)
		if !ok {
			return 0, false, fmt.Errorf("slice indices must be integers or None, not %s (%s)", typeName(v), name)
		}
		return i, true, nil
	}
	st := 1
	if s, ok, err := bound(step, "step"); err != nil {
		return nil, err
	} else if ok {
		if s == 0 {
			return nil, errors.New("slice step cannot be zero")
		}
		st = s
	}
	// Resolve bounds the way PySlice_AdjustIndices does.
	lo, hi := 0, n
	if st < 0 {
		lo, hi = n-1, -1
	}
	adjust := func(i int) int {
		if i < 0 {
			i += n
			if i < 0 {
				if st < 0 {
					return -1
				}
				return 0
			}
		} else if i >= n {
			if st < 0 {
				return n - 1
			}
			return n
		}
		return i
	}
	if s, ok, err := bound(start, "start"); err != nil {
		return nil, err
	} else if ok {
		lo = adjust(s)
	}
	if s, ok, err := bound(stop, "stop"); err != nil {
		return nil, err
	} else if ok {
		hi = adjust(s)
	}
	var idx []int
	for i := lo; (st > 0 && i < hi) || (st < 0 && i > hi); i += st {
		idx = append(idx, i)
	}
	if runes != nil {
		out := make([]rune, len(idx))
		for k, i := range idx {
			out[k] = runes[i]
		}
		return string(out), nil
	}
	out := make([]any, len(idx))
	for k, i := range idx {
		out[k] = items[i]
	}
	if _, ok := obj.(tuple); ok {
		return tuple(out), nil
	}
	return out, nil
}

func call(fn any, args []any, kw *dict) (any, error) {
	switch f := fn.(type) {
	case callable:
		return f(args, kw)
	case undefined:
		return nil, errors.New(f.message())
	}
	return nil, fmt.Errorf("'%s' object is not callable", typeName(fn))
}

// number widens bool to int, as Python arithmetic does.
func number(v any) (any, bool) {
	switch x := v.(type) {
	case bool:
		if x {
			return int64(1), true
		}
		return int64(0), true
	case int64, float64:
		return x, true
	}
	return nil, false
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case float64:
		return x
	}
	return 0
}

func unary(op string, x any) (any, error) {
	if u, ok := x.(undefined); ok {
		return nil, errors.New(u.message())
	}
	n, ok := number(x)
	if !ok {
		return nil, fmt.Errorf("bad operand type for unary %s: '%s'", op, typeName(x))
	}
	if op == "+" {
		return n, nil
	}
	if i, ok := n.(int64); ok {
		return -i, nil
	}
	return -n.(float64), nil
}

func binary(op string, l, r any) (any, error) {
	if s, ok := l.(string); ok && op == "%" {
		// str % x happens in Python before undefined could object.
		return percentFormat(s, r)
	}
	for _, v := range []any{l, r} {
		if u, ok := v.(undefined); ok {
			return nil, errors.New(u.message())
		}
	}
	ln, lok := number(l)
	rn, rok := number(r)
	if lok && rok {
		return arith(op, ln, rn)
	}
	switch op {
	case "+":
		switch x := l.(type) {
		case string:
			if y, ok := r.(string); ok {
				return x + y, nil
			}
			return nil, fmt.Errorf("can only concatenate str (not \"%s\") to str", typeName(r))
		case []any:
			if y, ok := r.([]any); ok {
				return append(append([]any{}, x...), y...), nil
			}
			return nil, fmt.Errorf("can only concatenate list (not \"%s\") to list", typeName(r))
		case tuple:
			if y, ok := r.(tuple); ok {
				return append(append(tuple{}, x...), y...), nil
			}
			return nil, fmt.Errorf("can only concatenate tuple (not \"%s\") to tuple", typeName(r))
		}
	case "*":
		seq, cnt := l, r
		if _, ok := number(l); ok {
			seq, cnt = r, l
		}
		if c, ok := toIndex(cnt); ok {
			c = max(c, 0)
			if n := seqLen(seq); n > 0 && c > maxRepeat/n {
				return nil, fmt.Errorf("repetition result over %d items", maxRepeat)
			}
			switch x := seq.(type) {
			case string:
				return strings.Repeat(x, c), nil
			case []any:
				out := []any{}
				for range c {
					out = append(out, x...)
				}
				return out, nil
			case tuple:
				out := tuple{}
				for range c {
					out = append(out, x...)
				}
				return out, nil
			}
		}
	case "%":
		if s, ok := l.(string); ok {
			return percentFormat(s, r)
		}
	}
	return nil, fmt.Errorf("unsupported operand type(s) for %s: '%s' and '%s'", op, typeName(l), typeName(r))
}

// errIntOverflow reports a result Python would hold as a big integer;
// templates never need those, so failing beats a wrong value.
var errIntOverflow = errors.New("integer result does not fit in 64 bits")

func mulInt(a, b int64) (int64, error) {
	if a == 0 || b == 0 {
		return 0, nil
	}
	r := a * b
	if r/b != a || (a == -1 && b == math.MinInt64) || (b == -1 && a == math.MinInt64) {
		return 0, errIntOverflow
	}
	return r, nil
}

// intPow is exponentiation by squaring, so huge exponents fail fast.
func intPow(base, exp int64) (any, error) {
	result := int64(1)
	for exp > 0 {
		var err error
		if exp&1 == 1 {
			if result, err = mulInt(result, base); err != nil {
				return nil, err
			}
		}
		exp >>= 1
		if exp > 0 {
			if base, err = mulInt(base, base); err != nil {
				return nil, err
			}
		}
	}
	return result, nil
}

// maxRepeat bounds str * n and list * n; Python would exhaust memory.
const maxRepeat = 1 << 24

func arith(op string, l, r any) (any, error) {
	li, lInt := l.(int64)
	ri, rInt := r.(int64)
	if lInt && rInt {
		switch op {
		case "+":
			if r := li + ri; (r > li) == (ri > 0) {
				return r, nil
			}
			return nil, errIntOverflow
		case "-":
			if r := li - ri; (r < li) == (ri > 0) {
				return r, nil
			}
			return nil, errIntOverflow
		case "*":
			return mulInt(li, ri)
		case "/":
			if ri == 0 {
				return nil, errors.New("division by zero")
			}
			return float64(li) / float64(ri), nil
		case "//", "%":
			if ri == 0 {
				return nil, errors.New("integer division or modulo by zero")
			}
			q, m := li/ri, li%ri
			if m != 0 && (m < 0) != (ri < 0) {
				q--
				m += ri
			}
			if op == "//" {
				return q, nil
			}
			return m, nil
		case "**":
			if ri < 0 {
				return math.Pow(float64(li), float64(ri)), nil
			}
			return intPow(li, ri)
		}
	}
	lf, rf := toFloat(l), toFloat(r)
	switch op {
	case "+":
		return lf + rf, nil
	case "-":
		return lf - rf, nil
	case "*":
		return lf * rf, nil
	case "/":
		if rf == 0 {
			return nil, errors.New("float division by zero")
		}
		return lf / rf, nil
	case "//", "%":
		if rf == 0 {
			return nil, errors.New("float floor division by zero")
		}
		m := math.Mod(lf, rf)
		if m != 0 && (m < 0) != (rf < 0) {
			m += rf
		}
		if op == "%" {
			return m, nil
		}
		return math.Floor((lf - m) / rf), nil
	case "**":
		return math.Pow(lf, rf), nil
	}
	return nil, fmt.Errorf("unknown operator %s", op)
}

// equal is Python ==, with Jinja2's rule that undefined equals only
// undefined.
func equal(a, b any) bool {
	if an, ok := number(a); ok {
		if bn, ok := number(b); ok {
			ai, aInt := an.(int64)
			bi, bInt := bn.(int64)
			if aInt && bInt {
				return ai == bi
			}
			return toFloat(an) == toFloat(bn)
		}
		return false
	}
	switch x := a.(type) {
	case nil:
		return b == nil
	case undefined:
		return isUndefined(b)
	case string:
		y, ok := b.(string)
		return ok && x == y
	case []any:
		y, ok := b.([]any)
		return ok && equalSeq(x, y)
	case tuple:
		y, ok := b.(tuple)
		return ok && equalSeq(x, y)
	case *dict:
		y, ok := b.(*dict)
		if !ok || x.len() != y.len() {
			return false
		}
		for _, k := range x.keys {
			yv, ok := y.get(k)
			if !ok || !equal(x.vals[k], yv) {
				return false
			}
		}
		return true
	case *namespace:
		return a == b
	}
	return false
}

func equalSeq(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	// The same sequence: Python's comparisons treat identical elements as
	// equal, and this keeps shared structures from being walked again and
	// again (their size doubles per level of sharing).
	if len(a) > 0 && &a[0] == &b[0] {
		return true
	}
	for i := range a {
		if !equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// order is Python's ordering for numbers, strings and sequences.
func order(a, b any, op string) (int, error) {
	for _, v := range []any{a, b} {
		if u, ok := v.(undefined); ok {
			return 0, errors.New(u.message())
		}
	}
	if an, ok := number(a); ok {
		if bn, ok := number(b); ok {
			ai, aInt := an.(int64)
			bi, bInt := bn.(int64)
			if aInt && bInt {
				return cmpOrdered(ai, bi), nil
			}
			return cmpOrdered(toFloat(an), toFloat(bn)), nil
		}
	}
	switch x := a.(type) {
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y), nil
		}
	case []any, tuple:
		xs, _ := asSequence(x)
		ys, ok := asSequence(b)
		if ok && typeName(a) == typeName(b) {
			for i := 0; i < len(xs) && i < len(ys); i++ {
				if equal(xs[i], ys[i]) {
					continue
				}
				return order(xs[i], ys[i], op)
			}
			return cmpOrdered(len(xs), len(ys)), nil
		}
	}
	return 0, fmt.Errorf("'%s' not supported between instances of '%s' and '%s'", op, typeName(a), typeName(b))
}

func cmpOrdered[T int | int64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func compare(op string, l, r any) (bool, error) {
	switch op {
	case "==":
		return equal(l, r), nil
	case "!=":
		return !equal(l, r), nil
	case "in":
		return in(l, r)
	case "notin":
		ok, err := in(l, r)
		return !ok, err
	}
	c, err := order(l, r, op)
	if err != nil {
		return false, err
	}
	switch op {
	case "<":
		return c < 0, nil
	case "<=":
		return c <= 0, nil
	case ">":
		return c > 0, nil
	}
	return c >= 0, nil
}

func in(item, container any) (bool, error) {
	switch c := container.(type) {
	case string:
		s, ok := item.(string)
		if !ok {
			return false, fmt.Errorf("'in <string>' requires string as left operand, not %s", typeName(item))
		}
		return strings.Contains(c, s), nil
	case *dict:
		if !hashable(item) {
			return false, fmt.Errorf("unhashable type: '%s'", typeName(item))
		}
		return hasKey(c, item), nil
	case undefined:
		return false, nil
	}
	items, err := iterate(container)
	if err != nil {
		return false, fmt.Errorf("argument of type '%s' is not iterable", typeName(container))
	}
	for _, x := range items {
		if equal(x, item) {
			return true, nil
		}
	}
	return false, nil
}

// sortValues sorts in place with Python's ordering.
func sortValues(vs []any) error {
	var err error
	sort.SliceStable(vs, func(i, j int) bool {
		c, e := order(vs[i], vs[j], "<")
		if e != nil && err == nil {
			err = e
		}
		return c < 0
	})
	return err
}

// percentFormat implements the printf-style "fmt % args" for the
// conversions s, r, d, i, f, x, o, c and %%, with flags, width and
// precision.
func percentFormat(format string, arg any) (string, error) {
	args := []any{arg}
	if t, ok := arg.(tuple); ok {
		args = t
	}
	var b strings.Builder
	next := 0
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		i++
		j := i
		for j < len(format) && strings.IndexByte("-+ #0", format[j]) >= 0 {
			j++
		}
		flags := format[i:j]
		k := j
		for k < len(format) && (format[k] >= '0' && format[k] <= '9' || format[k] == '.') {
			k++
		}
		if k >= len(format) {
			return "", errors.New("incomplete format")
		}
		spec, verb := format[j:k], format[k]
		i = k
		if verb == '%' {
			b.WriteByte('%')
			continue
		}
		if next >= len(args) {
			return "", errors.New("not enough arguments for format string")
		}
		a := args[next]
		next++
		var s string
		switch verb {
		case 's':
			s = fmt.Sprintf("%"+flags+spec+"s", toStr(a))
		case 'r':
			s = fmt.Sprintf("%"+flags+spec+"s", repr(a))
		case 'd', 'i', 'x', 'X', 'o', 'c':
			n, ok := number(a)
			if !ok {
				return "", fmt.Errorf("%%%c format: a real number is required, not %s", verb, typeName(a))
			}
			iv := int64(toFloat(n))
			if v, ok := n.(int64); ok {
				iv = v
			}
			gv := verb
			if gv == 'i' {
				gv = 'd'
			}
			s = fmt.Sprintf("%"+flags+spec+string(gv), iv)
		case 'f', 'F', 'e', 'E', 'g', 'G':
			n, ok := number(a)
			if !ok {
				return "", fmt.Errorf("must be real number, not %s", typeName(a))
			}
			if !strings.Contains(spec, ".") {
				spec += ".6"
			}
			s = fmt.Sprintf("%"+flags+spec+string(verb), toFloat(n))
		default:
			return "", fmt.Errorf("unsupported format character '%c' (0x%x)", verb, verb)
		}
		b.WriteString(s)
	}
	// Python only objects to unused arguments when the argument is not a
	// mapping or other non-tuple sequence.
	switch arg.(type) {
	case *dict, []any, undefined, string:
		if next == 0 {
			if _, isStr := arg.(string); !isStr {
				return b.String(), nil
			}
		}
	}
	if next < len(args) {
		return "", errors.New("not all arguments converted during string formatting")
	}
	return b.String(), nil
}

func (l *loopInfo) attr(name string) (any, bool) {
	n := len(l.items)
	switch name {
	case "index":
		return int64(l.index0 + 1), true
	case "index0":
		return int64(l.index0), true
	case "revindex":
		return int64(n - l.index0), true
	case "revindex0":
		return int64(n - l.index0 - 1), true
	case "first":
		return l.index0 == 0, true
	case "last":
		return l.index0 == n-1, true
	case "length":
		return int64(n), true
	case "depth": // only recursive loops nest; those are not supported
		return int64(1), true
	case "depth0":
		return int64(0), true
	case "previtem":
		if l.index0 == 0 {
			return undefined{hint: "there is no previous item"}, true
		}
		return l.items[l.index0-1], true
	case "nextitem":
		if l.index0 == n-1 {
			return undefined{hint: "there is no next item"}, true
		}
		return l.items[l.index0+1], true
	case "cycle":
		return callable(func(args []any, _ *dict) (any, error) {
			if len(args) == 0 {
				return nil, errors.New("no items for cycling given")
			}
			return args[l.index0%len(args)], nil
		}), true
	}
	return nil, false
}
