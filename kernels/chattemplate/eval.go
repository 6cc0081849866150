package chattemplate

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// frame is one variable scope. Jinja2 gives each for-loop iteration and
// each macro call a fresh scope; if-blocks share their parent's.
type frame struct {
	vars   map[string]any
	parent *frame
}

func newFrame(parent *frame) *frame { return &frame{vars: map[string]any{}, parent: parent} }

func (f *frame) lookup(name string) (any, bool) {
	for ; f != nil; f = f.parent {
		if v, ok := f.vars[name]; ok {
			return v, true
		}
	}
	return nil, false
}

// errLoopControl carries {% break %} and {% continue %} to the loop.
type errLoopControl struct{ isBreak bool }

func (e *errLoopControl) Error() string { return "break or continue outside of a loop" }

// evalError marks a failure at a template position. Errors raised by
// raise_exception() keep their own text.
type evalError struct {
	p   pos
	msg string
}

func (e *evalError) Error() string { return fmt.Sprintf("%s: %s", e.p, e.msg) }

// evaluator renders one template once; it counts what the render costs
// against its limits.
type evaluator struct {
	lim   Limits
	iters int // loop iterations so far
	depth int // macro and caller() calls in progress
}

// write appends s to out unless out would outgrow the output limit.
func (ev *evaluator) write(out *strings.Builder, p pos, s string) error {
	if out.Len()+len(s) > ev.lim.Output {
		return &evalError{p: p, msg: fmt.Sprintf("output larger than %s", sizeText(ev.lim.Output))}
	}
	out.WriteString(s)
	return nil
}

// checkValue fails when v is a string over the output limit: operators and
// filters (~, +, replace, join, …) can each multiply a string's size, so a
// chain of them is stopped at the first step past the limit.
func (ev *evaluator) checkValue(p pos, v any, err error) (any, error) {
	if s, ok := v.(string); ok && err == nil && len(s) > ev.lim.Output {
		return nil, &evalError{p: p, msg: fmt.Sprintf("value larger than %s", sizeText(ev.lim.Output))}
	}
	return v, err
}

// repeatBytes is about how many bytes seq * n (or n * seq) builds, so that
// it can be refused before it is built; 0 when the operands are not a
// sequence and a count, or when binary refuses the repetition itself (over
// maxRepeat items).
func repeatBytes(l, r any) int64 {
	seq, cnt := l, r
	if _, ok := number(l); ok {
		seq, cnt = r, l
	}
	c, ok := cnt.(int64)
	if !ok || c <= 0 {
		return 0
	}
	if n := int64(seqLen(seq)); n > 0 && c > maxRepeat/n {
		return 0
	}
	var each int64
	switch x := seq.(type) {
	case string:
		each = int64(len(x))
	case []any:
		each = 16 * int64(len(x)) // an interface value per item
	case tuple:
		each = 16 * int64(len(x))
	}
	return each * c // at most 16·maxRepeat bytes: no overflow
}

// enter counts a macro or caller() call; the caller must call leave.
func (ev *evaluator) enter() error {
	if ev.depth >= ev.lim.Depth {
		return fmt.Errorf("macro recursion deeper than %d calls", ev.lim.Depth)
	}
	ev.depth++
	return nil
}

func (ev *evaluator) leave() { ev.depth-- }

// iterate counts n loop iterations at p.
func (ev *evaluator) iterate(p pos, n int) error {
	if err := ev.canIterate(p, n); err != nil {
		return err
	}
	ev.iters += n
	return nil
}

// canIterate fails when n more iterations would pass the limit.
func (ev *evaluator) canIterate(p pos, n int) error {
	if n > ev.lim.Iterations-ev.iters {
		return &evalError{p: p, msg: fmt.Sprintf("loop limit of %d iterations exceeded", ev.lim.Iterations)}
	}
	return nil
}

func errAt(p pos, err error) error {
	var ee *evalError
	var ex *ExceptionError
	var lc *errLoopControl
	if errors.As(err, &ex) {
		if ex.Line == 0 {
			ex.Line, ex.Col = p.line, p.col
		}
		return err
	}
	if errors.As(err, &ee) || errors.As(err, &lc) {
		return err
	}
	return &evalError{p: p, msg: err.Error()}
}

func (ev *evaluator) render(out *strings.Builder, nodes []node, f *frame) error {
	for _, n := range nodes {
		if err := ev.exec(out, n, f); err != nil {
			return err
		}
	}
	return nil
}

func (ev *evaluator) exec(out *strings.Builder, n node, f *frame) error {
	switch n := n.(type) {
	case *textNode:
		return ev.write(out, n.p, n.text)
	case *outputNode:
		v, err := ev.eval(n.e, f)
		if err != nil {
			return err
		}
		return ev.write(out, n.p, toStr(v))
	case *ifNode:
		for i, c := range n.conds {
			v, err := ev.eval(c, f)
			if err != nil {
				return err
			}
			if truthy(v) {
				return ev.render(out, n.bodys[i], f)
			}
		}
		return ev.render(out, n.els, f)
	case *forNode:
		return ev.execFor(out, n, f)
	case *setNode:
		return ev.execSet(n, f)
	case *macroNode:
		f.vars[n.name] = ev.macro(n, f)
	case *callBlockNode:
		body := n.body
		caller := callable(func(args []any, kw *dict) (any, error) {
			if err := ev.enter(); err != nil {
				return nil, err
			}
			defer ev.leave()
			var b strings.Builder
			err := ev.render(&b, body, newFrame(f))
			return b.String(), err
		})
		call := *n.call
		call.kwargs = append(append([]kwarg(nil), call.kwargs...), kwarg{"caller", &constExpr{p: n.p, v: caller}})
		v, err := ev.eval(&call, f)
		if err != nil {
			return err
		}
		return ev.write(out, n.p, toStr(v))
	case *filterBlockNode:
		var b strings.Builder
		if err := ev.render(&b, n.body, f); err != nil {
			return err
		}
		var v any = b.String()
		for _, flt := range n.filters {
			var err error
			if v, err = ev.applyFilter(flt, v, f); err != nil {
				return err
			}
		}
		return ev.write(out, n.p, toStr(v))
	case *loopControlNode:
		return &errLoopControl{isBreak: n.isBreak}
	case *scopeNode:
		return ev.render(out, n.body, f)
	default:
		return fmt.Errorf("chattemplate: unknown node %T", n)
	}
	return nil
}

func (ev *evaluator) execFor(out *strings.Builder, n *forNode, f *frame) error {
	it, err := ev.eval(n.iter, f)
	if err != nil {
		return err
	}
	// A string becomes a list of its characters: count them first, so a
	// huge one fails before the list is built.
	if s, ok := it.(string); ok {
		if err := ev.canIterate(n.p, utf8.RuneCountInString(s)); err != nil {
			return err
		}
	}
	all, err := iterate(it)
	if err != nil {
		return errAt(n.iter.at(), err)
	}
	items := all
	if n.filter != nil {
		// Loop counters see only the items that pass the filter.
		items = nil
		if err := ev.iterate(n.p, len(all)); err != nil {
			return err
		}
		for _, item := range all {
			sc := newFrame(f)
			if err := bindTargets(sc, n.targets, item, n.p); err != nil {
				return err
			}
			ok, err := ev.eval(n.filter, sc)
			if err != nil {
				return err
			}
			if truthy(ok) {
				items = append(items, item)
			}
		}
	}
	for i, item := range items {
		if err := ev.iterate(n.p, 1); err != nil {
			return err
		}
		sc := newFrame(f)
		sc.vars["loop"] = &loopInfo{items: items, index0: i}
		if err := bindTargets(sc, n.targets, item, n.p); err != nil {
			return err
		}
		if err := ev.render(out, n.body, sc); err != nil {
			var lc *errLoopControl
			if errors.As(err, &lc) {
				if lc.isBreak {
					break
				}
				continue
			}
			return err
		}
	}
	if len(items) == 0 {
		return ev.render(out, n.els, f)
	}
	return nil
}

// bindTargets assigns a loop or set target, unpacking when there are
// several names.
func bindTargets(f *frame, targets []string, v any, p pos) error {
	if len(targets) == 1 {
		f.vars[targets[0]] = v
		return nil
	}
	parts, err := iterate(v)
	if err != nil {
		return errAt(p, fmt.Errorf("cannot unpack %s", typeName(v)))
	}
	if len(parts) != len(targets) {
		return &evalError{p: p, msg: fmt.Sprintf("cannot unpack %d values into %d names", len(parts), len(targets))}
	}
	for i, t := range targets {
		f.vars[t] = parts[i]
	}
	return nil
}

func (ev *evaluator) execSet(n *setNode, f *frame) error {
	var v any
	if n.value != nil {
		var err error
		if v, err = ev.eval(n.value, f); err != nil {
			return err
		}
	} else {
		var b strings.Builder
		if err := ev.render(&b, n.body, f); err != nil {
			return err
		}
		v = b.String()
	}
	if n.attr != "" {
		obj, _ := f.lookup(n.targets[0])
		ns, ok := obj.(*namespace)
		if !ok {
			return &evalError{p: n.p, msg: "cannot assign attribute on non-namespace object"}
		}
		ns.attrs.set(n.attr, v)
		return nil
	}
	return bindTargets(f, n.targets, v, n.p)
}

func (ev *evaluator) macro(n *macroNode, def *frame) callable {
	return func(args []any, kw *dict) (any, error) {
		if err := ev.enter(); err != nil {
			return nil, err
		}
		defer ev.leave()
		sc := newFrame(def)
		if len(args) > len(n.params) {
			return nil, fmt.Errorf("macro '%s' takes not more than %d argument(s)", n.name, len(n.params))
		}
		firstDefault := len(n.params) - len(n.defaults)
		for i, name := range n.params {
			switch {
			case i < len(args):
				sc.vars[name] = args[i]
			case kw != nil && hasKey(kw, name):
				sc.vars[name], _ = kw.get(name)
			case i >= firstDefault:
				d, err := ev.eval(n.defaults[i-firstDefault], sc)
				if err != nil {
					return nil, err
				}
				sc.vars[name] = d
			default:
				sc.vars[name] = undefined{hint: fmt.Sprintf("parameter '%s' was not provided", name)}
			}
		}
		if kw != nil {
			if c, ok := kw.get("caller"); ok {
				sc.vars["caller"] = c
			}
			for _, k := range kw.keys {
				if k == "caller" {
					continue
				}
				if !contains(n.params, k) {
					return nil, fmt.Errorf("macro '%s' takes no keyword argument '%v'", n.name, k)
				}
			}
		}
		var b strings.Builder
		if err := ev.render(&b, n.body, sc); err != nil {
			return nil, err
		}
		return b.String(), nil
	}
}

func hasKey(d *dict, k any) bool { _, ok := d.get(k); return ok }

func contains(ss []string, k any) bool {
	for _, s := range ss {
		if s == k {
			return true
		}
	}
	return false
}

func (ev *evaluator) evalAll(es []expr, f *frame) ([]any, error) {
	out := make([]any, len(es))
	for i, e := range es {
		v, err := ev.eval(e, f)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func (ev *evaluator) evalKwargs(kws []kwarg, f *frame) (*dict, error) {
	if len(kws) == 0 {
		return nil, nil
	}
	d := newDict()
	for _, k := range kws {
		v, err := ev.eval(k.val, f)
		if err != nil {
			return nil, err
		}
		d.set(k.name, v)
	}
	return d, nil
}

func (ev *evaluator) eval(e expr, f *frame) (any, error) {
	switch e := e.(type) {
	case *constExpr:
		return e.v, nil
	case *nameExpr:
		if v, ok := f.lookup(e.name); ok {
			return v, nil
		}
		return undefined{hint: fmt.Sprintf("'%s' is undefined", e.name)}, nil
	case *listExpr:
		items, err := ev.evalAll(e.items, f)
		if err != nil {
			return nil, err
		}
		if e.tuple {
			return tuple(items), nil
		}
		if items == nil {
			items = []any{}
		}
		return items, nil
	case *dictExpr:
		d := newDict()
		for i := range e.keys {
			k, err := ev.eval(e.keys[i], f)
			if err != nil {
				return nil, err
			}
			if !storableKey(k) {
				msg := fmt.Sprintf("unhashable type: '%s'", typeName(k))
				if hashable(k) {
					msg = fmt.Sprintf("dict keys of type %s are not supported", typeName(k))
				}
				return nil, &evalError{p: e.keys[i].at(), msg: msg}
			}
			v, err := ev.eval(e.vals[i], f)
			if err != nil {
				return nil, err
			}
			d.set(k, v)
		}
		return d, nil
	case *getattrExpr:
		obj, err := ev.eval(e.obj, f)
		if err != nil {
			return nil, err
		}
		v, err := getattr(obj, e.name)
		return v, errAtOrNil(e.p, err)
	case *getitemExpr:
		obj, err := ev.eval(e.obj, f)
		if err != nil {
			return nil, err
		}
		k, err := ev.eval(e.key, f)
		if err != nil {
			return nil, err
		}
		v, err := getitem(obj, k)
		return v, errAtOrNil(e.p, err)
	case *sliceExpr:
		obj, err := ev.eval(e.obj, f)
		if err != nil {
			return nil, err
		}
		var bounds [3]any
		for i, b := range []expr{e.start, e.stop, e.step} {
			if b != nil {
				if bounds[i], err = ev.eval(b, f); err != nil {
					return nil, err
				}
			}
		}
		v, err := slice(obj, bounds[0], bounds[1], bounds[2])
		return v, errAtOrNil(e.p, err)
	case *callExpr:
		fn, err := ev.eval(e.fn, f)
		if err != nil {
			return nil, err
		}
		args, err := ev.evalAll(e.args, f)
		if err != nil {
			return nil, err
		}
		kw, err := ev.evalKwargs(e.kwargs, f)
		if err != nil {
			return nil, err
		}
		v, err := call(fn, args, kw)
		return ev.checkValue(e.p, v, errAtOrNil(e.p, err))
	case *filterExpr:
		v, err := ev.eval(e.obj, f)
		if err != nil {
			return nil, err
		}
		v, err = ev.applyFilter(e, v, f)
		return ev.checkValue(e.p, v, err)
	case *testExpr:
		return ev.applyTest(e, f)
	case *unaryExpr:
		x, err := ev.eval(e.x, f)
		if err != nil {
			return nil, err
		}
		if e.op == "not" {
			return !truthy(x), nil
		}
		v, err := unary(e.op, x)
		return v, errAtOrNil(e.p, err)
	case *binaryExpr:
		l, err := ev.eval(e.l, f)
		if err != nil {
			return nil, err
		}
		// and/or short-circuit and yield an operand, as in Python.
		switch e.op {
		case "and":
			if !truthy(l) {
				return l, nil
			}
			return ev.eval(e.r, f)
		case "or":
			if truthy(l) {
				return l, nil
			}
			return ev.eval(e.r, f)
		}
		r, err := ev.eval(e.r, f)
		if err != nil {
			return nil, err
		}
		if e.op == "*" && repeatBytes(l, r) > int64(ev.lim.Output) {
			return nil, &evalError{p: e.p, msg: fmt.Sprintf("value larger than %s", sizeText(ev.lim.Output))}
		}
		v, err := binary(e.op, l, r)
		return ev.checkValue(e.p, v, errAtOrNil(e.p, err))
	case *compareExpr:
		l, err := ev.eval(e.first, f)
		if err != nil {
			return nil, err
		}
		for i, op := range e.ops {
			r, err := ev.eval(e.rest[i], f)
			if err != nil {
				return nil, err
			}
			ok, err := compare(op, l, r)
			if err != nil {
				return nil, errAt(e.rest[i].at(), err)
			}
			if !ok {
				return false, nil
			}
			l = r
		}
		return true, nil
	case *concatExpr:
		var b strings.Builder
		for _, p := range e.parts {
			v, err := ev.eval(p, f)
			if err != nil {
				return nil, err
			}
			b.WriteString(toStr(v))
			if b.Len() > ev.lim.Output {
				return ev.checkValue(e.p, b.String(), nil)
			}
		}
		return b.String(), nil
	case *condExpr:
		c, err := ev.eval(e.cond, f)
		if err != nil {
			return nil, err
		}
		if truthy(c) {
			return ev.eval(e.yes, f)
		}
		if e.els == nil {
			return undefined{hint: "the inline if-expression on line " + fmt.Sprint(e.p.line) + " evaluated to false and no else section was defined."}, nil
		}
		return ev.eval(e.els, f)
	}
	return nil, fmt.Errorf("chattemplate: unknown expression %T", e)
}

func errAtOrNil(p pos, err error) error {
	if err == nil {
		return nil
	}
	return errAt(p, err)
}

func (ev *evaluator) applyFilter(e *filterExpr, v any, f *frame) (any, error) {
	fn, ok := filters[e.name]
	if !ok {
		return nil, &evalError{p: e.p, msg: fmt.Sprintf("no filter named '%s'", e.name)}
	}
	args, err := ev.evalAll(e.args, f)
	if err != nil {
		return nil, err
	}
	kw, err := ev.evalKwargs(e.kwargs, f)
	if err != nil {
		return nil, err
	}
	out, err := fn(v, newArgs("filter "+e.name, args, kw))
	return out, errAtOrNil(e.p, err)
}

func (ev *evaluator) applyTest(e *testExpr, f *frame) (any, error) {
	fn, ok := tests[e.name]
	if !ok {
		return nil, &evalError{p: e.p, msg: fmt.Sprintf("no test named '%s'", e.name)}
	}
	v, err := ev.eval(e.obj, f)
	if err != nil {
		return nil, err
	}
	args, err := ev.evalAll(e.args, f)
	if err != nil {
		return nil, err
	}
	ok, err = fn(v, args)
	if err != nil {
		return nil, errAt(e.p, err)
	}
	return ok != e.negate, nil
}
