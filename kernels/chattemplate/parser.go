package chattemplate

import (
	"fmt"
	"strconv"
	"strings"
)

// SyntaxError is a template parse error at line:col (1-based, columns in
// runes) of the template source.
type SyntaxError struct {
	Line, Col int
	Msg       string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg) }

type parser struct {
	toks []token
	i    int
	// loops counts enclosing for-loop bodies, so that break and continue
	// elsewhere fail at parse time as in Jinja2.
	loops int
	// depth counts the parser's own recursion (nested expressions and
	// blocks), bounded by maxParseDepth.
	depth int
}

// maxParseDepth bounds nesting: the parser (and the evaluator after it)
// recurses once per level, and a few MB of "((((" would otherwise overflow
// the Go stack, which aborts the process. Jinja2 itself, on Python's
// default recursion limit, gives up below a hundred levels.
const maxParseDepth = 1000

// enter counts one level of nesting at the current token; the caller must
// call leave.
func (p *parser) enter() error {
	if p.depth >= maxParseDepth {
		return p.failAt(p.cur().pos, "nesting deeper than %d levels", maxParseDepth)
	}
	p.depth++
	return nil
}

func (p *parser) leave() { p.depth-- }

func parse(src string) ([]node, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	body, end, err := p.subparse()
	if err != nil {
		return nil, err
	}
	if end != "" {
		return nil, p.failAt(p.cur().pos, "unexpected '%s'", end)
	}
	return body, nil
}

func (p *parser) cur() token  { return p.toks[p.i] }
func (p *parser) peek() token { return p.toks[min(p.i+1, len(p.toks)-1)] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if p.i < len(p.toks)-1 {
		p.i++
	}
	return t
}

func (p *parser) failAt(at pos, format string, args ...any) error {
	return &SyntaxError{Line: at.line, Col: at.col, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) isOp(v string) bool   { t := p.cur(); return t.kind == tokOp && t.val == v }
func (p *parser) isName(v string) bool { t := p.cur(); return t.kind == tokName && t.val == v }

func (p *parser) expectOp(v string) (token, error) {
	if !p.isOp(v) {
		return token{}, p.failAt(p.cur().pos, "expected '%s', got %s", v, p.cur())
	}
	return p.next(), nil
}

func (p *parser) expectKind(k tokKind) (token, error) {
	if p.cur().kind != k {
		return token{}, p.failAt(p.cur().pos, "expected %s, got %s", k, p.cur())
	}
	return p.next(), nil
}

func (p *parser) expectName() (string, error) {
	t, err := p.expectKind(tokName)
	return t.val, err
}

// subparse parses nodes until EOF or a block tag whose keyword is not a
// statement start; that keyword (e.g. "endif", "else") is returned with
// the parser positioned just after it.
func (p *parser) subparse() ([]node, string, error) {
	if err := p.enter(); err != nil {
		return nil, "", err
	}
	defer p.leave()
	var body []node
	for {
		t := p.cur()
		switch t.kind {
		case tokEOF:
			return body, "", nil
		case tokData:
			p.next()
			body = append(body, &textNode{p: t.pos, text: t.val})
		case tokVarBegin:
			p.next()
			e, err := p.parseTuple(false)
			if err != nil {
				return nil, "", err
			}
			if _, err := p.expectKind(tokVarEnd); err != nil {
				return nil, "", err
			}
			body = append(body, &outputNode{p: t.pos, e: e})
		case tokBlockBegin:
			p.next()
			kw, err := p.expectName()
			if err != nil {
				return nil, "", err
			}
			n, err := p.statement(kw, t.pos)
			if err != nil {
				return nil, "", err
			}
			if n == nil {
				return body, kw, nil
			}
			body = append(body, n)
		default:
			return nil, "", p.failAt(t.pos, "unexpected %s", t)
		}
	}
}

// body parses until one of the given end keywords and returns which.
func (p *parser) body(start pos, stmt string, ends ...string) ([]node, string, error) {
	nodes, end, err := p.subparse()
	if err != nil {
		return nil, "", err
	}
	for _, e := range ends {
		if end == e {
			return nodes, end, nil
		}
	}
	if end == "" {
		return nil, "", p.failAt(p.cur().pos, "unexpected end of template: '%s' opened at %s needs '%s'", stmt, start, ends[len(ends)-1])
	}
	return nil, "", p.failAt(p.toks[p.i-1].pos, "unexpected '%s': expected %s", end, quoteList(ends))
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = "'" + s + "'"
	}
	return strings.Join(q, " or ")
}

func (p *parser) endTag() error {
	_, err := p.expectKind(tokBlockEnd)
	return err
}

// statement parses a block tag after its keyword; nil means the keyword
// ends an enclosing block.
func (p *parser) statement(kw string, at pos) (node, error) {
	switch kw {
	case "if":
		return p.parseIf(at)
	case "for":
		return p.parseFor(at)
	case "set":
		return p.parseSet(at)
	case "macro":
		return p.parseMacro(at)
	case "call":
		return p.parseCallBlock(at)
	case "filter":
		return p.parseFilterBlock(at)
	case "break", "continue":
		if p.loops == 0 {
			return nil, p.failAt(at, "'%s' outside of a loop", kw)
		}
		return &loopControlNode{p: at, isBreak: kw == "break"}, p.endTag()
	case "generation":
		if err := p.endTag(); err != nil {
			return nil, err
		}
		body, _, err := p.body(at, kw, "endgeneration")
		if err != nil {
			return nil, err
		}
		return &scopeNode{p: at, body: body}, p.endTag()
	case "elif", "else", "endif", "endfor", "endset", "endmacro", "endcall", "endfilter", "endgeneration":
		return nil, nil
	case "include", "import", "from", "extends", "block", "with", "autoescape", "do":
		return nil, p.failAt(at, "'%s' is not supported in chat templates", kw)
	}
	return nil, p.failAt(at, "unknown tag '%s'", kw)
}

func (p *parser) parseIf(at pos) (node, error) {
	n := &ifNode{p: at}
	for {
		cond, err := p.parseTuple(false)
		if err != nil {
			return nil, err
		}
		if err := p.endTag(); err != nil {
			return nil, err
		}
		body, end, err := p.body(at, "if", "elif", "else", "endif")
		if err != nil {
			return nil, err
		}
		n.conds = append(n.conds, cond)
		n.bodys = append(n.bodys, body)
		switch end {
		case "elif":
			continue
		case "else":
			if err := p.endTag(); err != nil {
				return nil, err
			}
			if n.els, _, err = p.body(at, "if", "endif"); err != nil {
				return nil, err
			}
		}
		return n, p.endTag()
	}
}

func (p *parser) parseTargets() ([]string, error) {
	var names []string
	paren := false
	if p.isOp("(") {
		p.next()
		paren = true
	}
	for {
		name, err := p.expectName()
		if err != nil {
			return nil, err
		}
		names = append(names, name)
		if !p.isOp(",") {
			break
		}
		p.next()
		if paren && p.isOp(")") {
			break
		}
	}
	if paren {
		if _, err := p.expectOp(")"); err != nil {
			return nil, err
		}
	}
	return names, nil
}

func (p *parser) parseFor(at pos) (node, error) {
	targets, err := p.parseTargets()
	if err != nil {
		return nil, err
	}
	if !p.isName("in") {
		return nil, p.failAt(p.cur().pos, "expected 'in', got %s", p.cur())
	}
	p.next()
	n := &forNode{p: at, targets: targets}
	// The iterable may not use a bare conditional expression: "if"
	// starts the loop filter.
	if n.iter, err = p.parseTupleNoCond(); err != nil {
		return nil, err
	}
	if p.isName("if") {
		p.next()
		if n.filter, err = p.parseExpr(); err != nil {
			return nil, err
		}
	}
	if p.isName("recursive") {
		return nil, p.failAt(p.cur().pos, "recursive loops are not supported")
	}
	if err := p.endTag(); err != nil {
		return nil, err
	}
	p.loops++
	body, end, err := p.body(at, "for", "else", "endfor")
	p.loops--
	if err != nil {
		return nil, err
	}
	n.body = body
	if end == "else" {
		if err := p.endTag(); err != nil {
			return nil, err
		}
		if n.els, _, err = p.body(at, "for", "endfor"); err != nil {
			return nil, err
		}
	}
	return n, p.endTag()
}

func (p *parser) parseSet(at pos) (node, error) {
	n := &setNode{p: at}
	if p.cur().kind == tokName && p.peek().kind == tokOp && p.peek().val == "." {
		n.targets = []string{p.next().val}
		p.next()
		attr, err := p.expectName()
		if err != nil {
			return nil, err
		}
		n.attr = attr
	} else {
		targets, err := p.parseTargets()
		if err != nil {
			return nil, err
		}
		n.targets = targets
	}
	if p.isOp("=") {
		p.next()
		v, err := p.parseTuple(false)
		if err != nil {
			return nil, err
		}
		n.value = v
		return n, p.endTag()
	}
	if n.attr != "" || len(n.targets) != 1 {
		return nil, p.failAt(p.cur().pos, "expected '=', got %s", p.cur())
	}
	var filters []*filterExpr
	for p.isOp("|") {
		f, err := p.parseFilter(nil)
		if err != nil {
			return nil, err
		}
		filters = append(filters, f)
	}
	if err := p.endTag(); err != nil {
		return nil, err
	}
	body, _, err := p.body(at, "set", "endset")
	if err != nil {
		return nil, err
	}
	n.body = body
	if len(filters) > 0 {
		n.body = []node{&filterBlockNode{p: at, filters: filters, body: body}}
	}
	return n, p.endTag()
}

func (p *parser) parseSignature() ([]string, []expr, error) {
	var params []string
	var defaults []expr
	if _, err := p.expectOp("("); err != nil {
		return nil, nil, err
	}
	for !p.isOp(")") {
		if len(params) > 0 {
			if _, err := p.expectOp(","); err != nil {
				return nil, nil, err
			}
			if p.isOp(")") {
				break
			}
		}
		name, err := p.expectName()
		if err != nil {
			return nil, nil, err
		}
		params = append(params, name)
		if p.isOp("=") {
			p.next()
			d, err := p.parseExpr()
			if err != nil {
				return nil, nil, err
			}
			defaults = append(defaults, d)
		} else if len(defaults) > 0 {
			return nil, nil, p.failAt(p.cur().pos, "non-default argument '%s' follows default argument", name)
		}
	}
	p.next()
	return params, defaults, nil
}

func (p *parser) parseMacro(at pos) (node, error) {
	name, err := p.expectName()
	if err != nil {
		return nil, err
	}
	params, defaults, err := p.parseSignature()
	if err != nil {
		return nil, err
	}
	if err := p.endTag(); err != nil {
		return nil, err
	}
	outer := p.loops
	p.loops = 0 // a macro body is not inside the caller's loop
	body, _, err := p.body(at, "macro", "endmacro")
	p.loops = outer
	if err != nil {
		return nil, err
	}
	return &macroNode{p: at, name: name, params: params, defaults: defaults, body: body}, p.endTag()
}

func (p *parser) parseCallBlock(at pos) (node, error) {
	if p.isOp("(") {
		return nil, p.failAt(p.cur().pos, "call blocks with caller arguments are not supported")
	}
	e, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	call, ok := e.(*callExpr)
	if !ok {
		return nil, p.failAt(at, "expected a call after 'call'")
	}
	if err := p.endTag(); err != nil {
		return nil, err
	}
	body, _, err := p.body(at, "call", "endcall")
	if err != nil {
		return nil, err
	}
	return &callBlockNode{p: at, call: call, body: body}, p.endTag()
}

func (p *parser) parseFilterBlock(at pos) (node, error) {
	var filters []*filterExpr
	for {
		f, err := p.parseFilterBody(nil, p.cur().pos)
		if err != nil {
			return nil, err
		}
		filters = append(filters, f)
		if !p.isOp("|") {
			break
		}
		p.next()
	}
	if err := p.endTag(); err != nil {
		return nil, err
	}
	body, _, err := p.body(at, "filter", "endfilter")
	if err != nil {
		return nil, err
	}
	return &filterBlockNode{p: at, filters: filters, body: body}, p.endTag()
}

// Expressions, following jinja2/parser.py's precedence levels.

// parseTuple parses "a, b" as a tuple and a single expression as itself.
func (p *parser) parseTuple(explicitParens bool) (expr, error) {
	return p.tupleOf(explicitParens, p.parseExpr)
}

func (p *parser) parseTupleNoCond() (expr, error) {
	return p.tupleOf(false, p.parseOr)
}

func (p *parser) tupleOf(explicitParens bool, item func() (expr, error)) (expr, error) {
	at := p.cur().pos
	var items []expr
	isTuple := false
	for {
		if len(items) > 0 {
			if !p.isOp(",") {
				break
			}
			p.next()
			isTuple = true
		}
		if p.tupleEnds(explicitParens) {
			break
		}
		e, err := item()
		if err != nil {
			return nil, err
		}
		items = append(items, e)
	}
	if !isTuple {
		if len(items) == 1 {
			return items[0], nil
		}
		if !explicitParens {
			return nil, p.failAt(p.cur().pos, "expected an expression, got %s", p.cur())
		}
	}
	return &listExpr{p: at, items: items, tuple: true}, nil
}

func (p *parser) tupleEnds(explicitParens bool) bool {
	t := p.cur()
	switch t.kind {
	case tokVarEnd, tokBlockEnd, tokEOF:
		return true
	case tokName:
		return t.val == "in" || t.val == "if"
	case tokOp:
		return explicitParens && t.val == ")"
	}
	return false
}

func (p *parser) parseExpr() (expr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	at := p.cur().pos
	e, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	for p.isName("if") {
		p.next()
		cond, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		c := &condExpr{p: at, cond: cond, yes: e}
		if p.isName("else") {
			p.next()
			if c.els, err = p.parseExpr(); err != nil {
				return nil, err
			}
		}
		e = c
	}
	return e, nil
}

func (p *parser) parseOr() (expr, error) {
	return p.binaryLevel([]string{"or"}, p.parseAnd)
}

func (p *parser) parseAnd() (expr, error) {
	return p.binaryLevel([]string{"and"}, p.parseNot)
}

func (p *parser) binaryLevel(ops []string, operand func() (expr, error)) (expr, error) {
	l, err := operand()
	if err != nil {
		return nil, err
	}
	for {
		t := p.cur()
		op := ""
		for _, o := range ops {
			if (t.kind == tokOp || t.kind == tokName) && t.val == o {
				op = o
			}
		}
		if op == "" {
			return l, nil
		}
		p.next()
		r, err := operand()
		if err != nil {
			return nil, err
		}
		l = &binaryExpr{p: t.pos, op: op, l: l, r: r}
	}
}

func (p *parser) parseNot() (expr, error) {
	if p.isName("not") {
		if err := p.enter(); err != nil {
			return nil, err
		}
		defer p.leave()
		t := p.next()
		x, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		return &unaryExpr{p: t.pos, op: "not", x: x}, nil
	}
	return p.parseCompare()
}

func (p *parser) parseCompare() (expr, error) {
	at := p.cur().pos
	first, err := p.parseMath1()
	if err != nil {
		return nil, err
	}
	c := &compareExpr{p: at, first: first}
	for {
		t := p.cur()
		var op string
		switch {
		case t.kind == tokOp && (t.val == "==" || t.val == "!=" || t.val == "<" || t.val == "<=" || t.val == ">" || t.val == ">="):
			op = t.val
			p.next()
		case p.isName("in"):
			op = "in"
			p.next()
		case p.isName("not") && p.peek().kind == tokName && p.peek().val == "in":
			op = "notin"
			p.next()
			p.next()
		}
		if op == "" {
			break
		}
		r, err := p.parseMath1()
		if err != nil {
			return nil, err
		}
		c.ops = append(c.ops, op)
		c.rest = append(c.rest, r)
	}
	if len(c.ops) == 0 {
		return first, nil
	}
	return c, nil
}

func (p *parser) parseMath1() (expr, error) {
	return p.binaryLevel([]string{"+", "-"}, p.parseConcat)
}

func (p *parser) parseConcat() (expr, error) {
	at := p.cur().pos
	first, err := p.parseMath2()
	if err != nil {
		return nil, err
	}
	parts := []expr{first}
	for p.isOp("~") {
		p.next()
		e, err := p.parseMath2()
		if err != nil {
			return nil, err
		}
		parts = append(parts, e)
	}
	if len(parts) == 1 {
		return first, nil
	}
	return &concatExpr{p: at, parts: parts}, nil
}

func (p *parser) parseMath2() (expr, error) {
	return p.binaryLevel([]string{"*", "/", "//", "%"}, p.parsePow)
}

func (p *parser) parsePow() (expr, error) {
	return p.binaryLevel([]string{"**"}, func() (expr, error) { return p.parseUnary(true) })
}

func (p *parser) parseUnary(withFilter bool) (expr, error) {
	t := p.cur()
	var e expr
	var err error
	if p.isOp("-") || p.isOp("+") {
		if err := p.enter(); err != nil {
			return nil, err
		}
		defer p.leave()
		p.next()
		x, err := p.parseUnary(false)
		if err != nil {
			return nil, err
		}
		e = &unaryExpr{p: t.pos, op: t.val, x: x}
	} else {
		if e, err = p.parsePrimary(); err != nil {
			return nil, err
		}
	}
	if e, err = p.parsePostfix(e); err != nil {
		return nil, err
	}
	if withFilter {
		return p.parseFilterExpr(e)
	}
	return e, nil
}

func (p *parser) parsePrimary() (expr, error) {
	t := p.cur()
	switch t.kind {
	case tokName:
		p.next()
		switch t.val {
		case "true", "True":
			return &constExpr{p: t.pos, v: true}, nil
		case "false", "False":
			return &constExpr{p: t.pos, v: false}, nil
		case "none", "None":
			return &constExpr{p: t.pos, v: nil}, nil
		}
		return &nameExpr{p: t.pos, name: t.val}, nil
	case tokString:
		// Adjacent literals concatenate, as in Python.
		var b strings.Builder
		for p.cur().kind == tokString {
			b.WriteString(p.next().val)
		}
		return &constExpr{p: t.pos, v: b.String()}, nil
	case tokInt:
		p.next()
		v, err := strconv.ParseInt(t.val, 10, 64)
		if err != nil {
			return nil, p.failAt(t.pos, "integer literal %s out of range", t.val)
		}
		return &constExpr{p: t.pos, v: v}, nil
	case tokFloat:
		p.next()
		v, err := strconv.ParseFloat(t.val, 64)
		if err != nil {
			return nil, p.failAt(t.pos, "bad float literal %s", t.val)
		}
		return &constExpr{p: t.pos, v: v}, nil
	case tokOp:
		switch t.val {
		case "(":
			p.next()
			e, err := p.parseTuple(true)
			if err != nil {
				return nil, err
			}
			if _, err := p.expectOp(")"); err != nil {
				return nil, err
			}
			return e, nil
		case "[":
			p.next()
			items, err := p.exprList("]")
			if err != nil {
				return nil, err
			}
			return &listExpr{p: t.pos, items: items}, nil
		case "{":
			p.next()
			d := &dictExpr{p: t.pos}
			for !p.isOp("}") {
				if len(d.keys) > 0 {
					if _, err := p.expectOp(","); err != nil {
						return nil, err
					}
					if p.isOp("}") {
						break
					}
				}
				k, err := p.parseExpr()
				if err != nil {
					return nil, err
				}
				if _, err := p.expectOp(":"); err != nil {
					return nil, err
				}
				v, err := p.parseExpr()
				if err != nil {
					return nil, err
				}
				d.keys = append(d.keys, k)
				d.vals = append(d.vals, v)
			}
			p.next()
			return d, nil
		}
	}
	return nil, p.failAt(t.pos, "unexpected %s", t)
}

// exprList parses comma-separated expressions up to the closing op.
func (p *parser) exprList(closing string) ([]expr, error) {
	var items []expr
	for !p.isOp(closing) {
		if len(items) > 0 {
			if _, err := p.expectOp(","); err != nil {
				return nil, err
			}
			if p.isOp(closing) {
				break
			}
		}
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		items = append(items, e)
	}
	p.next()
	return items, nil
}

func (p *parser) parsePostfix(e expr) (expr, error) {
	for {
		t := p.cur()
		var err error
		switch {
		case p.isOp("."):
			p.next()
			a := p.next()
			switch a.kind {
			case tokName:
				e = &getattrExpr{p: t.pos, obj: e, name: a.val}
			case tokInt:
				n, _ := strconv.ParseInt(a.val, 10, 64)
				e = &getitemExpr{p: t.pos, obj: e, key: &constExpr{p: a.pos, v: n}}
			default:
				return nil, p.failAt(a.pos, "expected name or number after '.', got %s", a)
			}
		case p.isOp("["):
			p.next()
			if e, err = p.parseSubscript(e, t.pos); err != nil {
				return nil, err
			}
		case p.isOp("("):
			if e, err = p.parseCall(e); err != nil {
				return nil, err
			}
		default:
			return e, nil
		}
	}
}

func (p *parser) parseSubscript(obj expr, at pos) (expr, error) {
	var parts [3]expr
	idx := 0
	isSlice := false
	for !p.isOp("]") {
		if p.isOp(":") {
			p.next()
			idx++
			isSlice = true
			if idx > 2 {
				return nil, p.failAt(p.cur().pos, "too many ':' in subscript")
			}
			continue
		}
		if parts[idx] != nil {
			return nil, p.failAt(p.cur().pos, "expected ']', got %s", p.cur())
		}
		e, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		parts[idx] = e
	}
	p.next()
	if !isSlice {
		if parts[0] == nil {
			return nil, p.failAt(at, "empty subscript")
		}
		return &getitemExpr{p: at, obj: obj, key: parts[0]}, nil
	}
	return &sliceExpr{p: at, obj: obj, start: parts[0], stop: parts[1], step: parts[2]}, nil
}

func (p *parser) parseArgs() ([]expr, []kwarg, error) {
	if _, err := p.expectOp("("); err != nil {
		return nil, nil, err
	}
	var args []expr
	var kwargs []kwarg
	for !p.isOp(")") {
		if len(args)+len(kwargs) > 0 {
			if _, err := p.expectOp(","); err != nil {
				return nil, nil, err
			}
			if p.isOp(")") {
				break
			}
		}
		if p.cur().kind == tokName && p.peek().kind == tokOp && p.peek().val == "=" {
			name := p.next().val
			p.next()
			v, err := p.parseExpr()
			if err != nil {
				return nil, nil, err
			}
			kwargs = append(kwargs, kwarg{name, v})
			continue
		}
		if len(kwargs) > 0 {
			return nil, nil, p.failAt(p.cur().pos, "positional argument follows keyword argument")
		}
		v, err := p.parseExpr()
		if err != nil {
			return nil, nil, err
		}
		args = append(args, v)
	}
	p.next()
	return args, kwargs, nil
}

func (p *parser) parseCall(fn expr) (expr, error) {
	at := fn.at()
	args, kwargs, err := p.parseArgs()
	if err != nil {
		return nil, err
	}
	return &callExpr{p: at, fn: fn, args: args, kwargs: kwargs}, nil
}

func (p *parser) parseFilterExpr(e expr) (expr, error) {
	for {
		var err error
		switch {
		case p.isOp("|"):
			if e, err = p.parseFilter(e); err != nil {
				return nil, err
			}
		case p.isName("is"):
			if e, err = p.parseTest(e); err != nil {
				return nil, err
			}
		case p.isOp("("):
			if e, err = p.parseCall(e); err != nil {
				return nil, err
			}
		default:
			return e, nil
		}
	}
}

func (p *parser) parseFilter(obj expr) (*filterExpr, error) {
	at := p.next().pos // "|"
	return p.parseFilterBody(obj, at)
}

func (p *parser) parseFilterBody(obj expr, at pos) (*filterExpr, error) {
	name, err := p.dottedName()
	if err != nil {
		return nil, err
	}
	if _, ok := filters[name]; !ok {
		// Jinja2 rejects unknown filters when compiling, not rendering.
		return nil, p.failAt(at, "no filter named '%s'", name)
	}
	f := &filterExpr{p: at, obj: obj, name: name}
	if p.isOp("(") {
		if f.args, f.kwargs, err = p.parseArgs(); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func (p *parser) dottedName() (string, error) {
	name, err := p.expectName()
	if err != nil {
		return "", err
	}
	for p.isOp(".") {
		p.next()
		part, err := p.expectName()
		if err != nil {
			return "", err
		}
		name += "." + part
	}
	return name, nil
}

// parseTest follows Jinja2: "x is name", "x is not name", "x is name(args)"
// or "x is name arg" where arg is a single primary (so "x is defined if y"
// reads "if" as the argument, as Jinja2 does).
func (p *parser) parseTest(obj expr) (expr, error) {
	at := p.next().pos // "is"
	t := &testExpr{p: at, obj: obj}
	if p.isName("not") {
		p.next()
		t.negate = true
	}
	name, err := p.dottedName()
	if err != nil {
		return nil, err
	}
	if _, ok := tests[name]; !ok {
		return nil, p.failAt(at, "no test named '%s'", name)
	}
	t.name = name
	c := p.cur()
	switch {
	case p.isOp("("):
		args, kwargs, err := p.parseArgs()
		if err != nil {
			return nil, err
		}
		if len(kwargs) > 0 {
			return nil, p.failAt(c.pos, "keyword arguments to tests are not supported")
		}
		t.args = args
	case c.kind == tokName || c.kind == tokString || c.kind == tokInt || c.kind == tokFloat ||
		(c.kind == tokOp && (c.val == "[" || c.val == "{")):
		if c.kind == tokName && (c.val == "else" || c.val == "or" || c.val == "and") {
			break
		}
		if c.kind == tokName && c.val == "is" {
			return nil, p.failAt(c.pos, "you cannot chain multiple tests with is")
		}
		arg, err := p.parsePrimary()
		if err != nil {
			return nil, err
		}
		if arg, err = p.parsePostfix(arg); err != nil {
			return nil, err
		}
		t.args = []expr{arg}
	}
	return t, nil
}
