package chattemplate

import (
	"errors"
	"fmt"
	"strings"
)

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
			case string, []any, tuple, *dict, undefined:
				return true
			}
			return false
		}),
		"iterable": isType(func(v any) bool { _, err := iterate(v); return err == nil }),
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
