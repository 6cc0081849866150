package chattemplate

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// Template values model Python objects as Jinja2 sees them:
//
//	nil        None
//	undefined  jinja2.Undefined (carries the message of the failed lookup)
//	bool, int64, float64, string
//	[]any      list
//	tuple      tuple
//	*dict      dict (insertion-ordered, as Python's)
//	*namespace jinja2's namespace()
//	callable   functions, bound methods and macros
//	*loopInfo  the loop variable

type undefined struct{ hint string }

func (u undefined) message() string {
	if u.hint == "" {
		return "value is undefined"
	}
	return u.hint
}

type tuple []any

// dict is an insertion-ordered mapping; keys are hashable scalars.
type dict struct {
	keys []any
	vals map[any]any
}

func newDict() *dict { return &dict{vals: map[any]any{}} }

func (d *dict) get(k any) (any, bool) {
	if !storableKey(k) {
		return nil, false // also keeps slices (tuples) out of the Go map
	}
	v, ok := d.vals[hashKey(k)]
	return v, ok
}

func (d *dict) set(k any, v any) {
	k = hashKey(k)
	if _, ok := d.vals[k]; !ok {
		d.keys = append(d.keys, k)
	}
	d.vals[k] = v
}

func (d *dict) len() int { return len(d.keys) }

// hashKey folds values that Python hashes alike: True == 1 == 1.0.
func hashKey(k any) any {
	switch v := k.(type) {
	case bool:
		if v {
			return int64(1)
		}
		return int64(0)
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<62 {
			return int64(v)
		}
	}
	return k
}

type namespace struct{ attrs *dict }

// dictView is what dict.items(), .keys() and .values() return: iterable,
// sized, printed as e.g. "dict_keys(['a'])", not subscriptable.
type dictView struct {
	kind  string
	items []any
}

// callable is a function value; kwargs is nil when none were passed.
type callable func(args []any, kwargs *dict) (any, error)

type loopInfo struct {
	items  []any
	index0 int
}

func isUndefined(v any) bool { _, ok := v.(undefined); return ok }

func truthy(v any) bool {
	switch x := v.(type) {
	case nil, undefined:
		return false
	case bool:
		return x
	case int64:
		return x != 0
	case float64:
		return x != 0
	case string:
		return x != ""
	case []any:
		return len(x) > 0
	case tuple:
		return len(x) > 0
	case *dict:
		return x.len() > 0
	case *dictView:
		return len(x.items) > 0
	}
	return true
}

// typeName is Python's type name, as used in Jinja2's messages.
func typeName(v any) string {
	switch x := v.(type) {
	case nil:
		return "NoneType"
	case undefined:
		return "Undefined"
	case bool:
		return "bool"
	case int64:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []any:
		return "list"
	case tuple:
		return "tuple"
	case *dict:
		return "dict"
	case *namespace:
		return "Namespace"
	case *dictView:
		return x.kind
	case callable:
		return "function"
	case *loopInfo:
		return "LoopContext"
	}
	return fmt.Sprintf("%T", v)
}

// toStr is Python's str() on a template value; undefined prints empty.
func toStr(v any) string {
	switch x := v.(type) {
	case undefined:
		return ""
	case string:
		return x
	}
	return repr(v)
}

// repr is Python's repr().
func repr(v any) string {
	var b strings.Builder
	w := reprWriter{b: &b}
	w.write(v)
	return b.String()
}

// reprWriter writes a repr. A namespace can hold itself ({% set ns.x =
// (ns,) %}), and shared values can nest exponentially ({% set ns.x =
// (ns.x, ns.x) %} in a loop), so it writes "{...}" for a dict it is
// already inside, as Python does, and stops once past maxStringBytes: the
// render's size checks then refuse the string.
type reprWriter struct {
	b    *strings.Builder
	open []*dict // the dicts being written, outermost first
}

func (w *reprWriter) write(v any) {
	b := w.b
	if b.Len() > maxStringBytes {
		return
	}
	switch x := v.(type) {
	case nil:
		b.WriteString("None")
	case undefined:
		// Only reachable inside containers; Jinja2 would show the object.
		b.WriteString("Undefined")
	case bool:
		if x {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case float64:
		b.WriteString(formatFloat(x))
	case string:
		writeStrRepr(b, x)
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			w.write(e)
		}
		b.WriteByte(']')
	case tuple:
		b.WriteByte('(')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			w.write(e)
		}
		if len(x) == 1 {
			b.WriteByte(',')
		}
		b.WriteByte(')')
	case *dict:
		if slices.Contains(w.open, x) {
			b.WriteString("{...}")
			return
		}
		w.open = append(w.open, x)
		defer func() { w.open = w.open[:len(w.open)-1] }()
		b.WriteByte('{')
		for i, k := range x.keys {
			if i > 0 {
				b.WriteString(", ")
			}
			w.write(k)
			b.WriteString(": ")
			w.write(x.vals[k])
		}
		b.WriteByte('}')
	case *dictView:
		b.WriteString(x.kind)
		b.WriteByte('(')
		w.write(x.items)
		b.WriteByte(')')
	case *namespace:
		b.WriteString("<Namespace ")
		w.write(x.attrs)
		b.WriteByte('>')
	case callable:
		b.WriteString("<function>")
	case *loopInfo:
		fmt.Fprintf(b, "<LoopContext %d/%d>", x.index0+1, len(x.items))
	default:
		fmt.Fprintf(b, "%v", x)
	}
}

// formatFloat matches Python's float repr: shortest round-trip digits,
// fixed notation for exponents in [-4, 16), else scientific.
func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	s := strconv.FormatFloat(f, 'e', -1, 64)
	mant, expStr, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(expStr)
	if exp < -4 || exp >= 16 {
		sign := "+"
		if exp < 0 {
			sign = "-"
			exp = -exp
		}
		return fmt.Sprintf("%se%s%02d", mant, sign, exp)
	}
	s = strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

// writeStrRepr quotes like Python: single quotes unless the text has a
// single quote and no double quote; non-printable runes are escaped.
func writeStrRepr(b *strings.Builder, s string) {
	q := byte('\'')
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		q = '"'
	}
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == rune(q) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(b, `\x%02x`, r)
		case !unicode.IsPrint(r) && r != ' ':
			switch {
			case r <= 0xff:
				fmt.Fprintf(b, `\x%02x`, r)
			case r <= 0xffff:
				fmt.Fprintf(b, `\u%04x`, r)
			default:
				fmt.Fprintf(b, `\U%08x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
}

// fromGo converts caller-supplied Go data into template values. Maps with
// string keys are ordered by key, since Go maps have no order; pass
// json.RawMessage to keep a JSON object's own key order.
func fromGo(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, int64, float64, string, *dict, tuple, callable:
		return x, nil
	case int:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case float32:
		return float64(x), nil
	case json.RawMessage:
		return ParseJSON(x)
	case json.Number:
		return numberFromJSON(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, err := fromGo(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = c
		}
		return out, nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		d := newDict()
		for _, k := range keys {
			c, err := fromGo(x[k])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			d.set(k, c)
		}
		return d, nil
	}
	return fromReflect(reflect.ValueOf(v))
}

func fromReflect(rv reflect.Value) (any, error) {
	switch rv.Kind() {
	case reflect.Bool:
		return rv.Bool(), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int64(rv.Uint()), nil
	case reflect.Float32, reflect.Float64:
		return rv.Float(), nil
	case reflect.String:
		return rv.String(), nil
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			c, err := fromGo(rv.Index(i).Interface())
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = c
		}
		return out, nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map key type %s: only string keys are supported", rv.Type().Key())
		}
		m := make(map[string]any, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			m[it.Key().String()] = it.Value().Interface()
		}
		return fromGo(m)
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil, nil
		}
		return fromGo(rv.Elem().Interface())
	}
	return nil, fmt.Errorf("unsupported Go type %s", rv.Type())
}
