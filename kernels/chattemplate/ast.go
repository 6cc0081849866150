package chattemplate

// The AST mirrors the subset of Jinja2's node tree that chat templates use.
// Statements render output; expressions produce values.

type node interface{ at() pos }

type (
	textNode struct {
		p    pos
		text string
	}
	outputNode struct {
		p pos
		e expr
	}
	ifNode struct {
		p     pos
		conds []expr   // if and elif conditions
		bodys [][]node // one body per condition
		els   []node
	}
	forNode struct {
		p       pos
		targets []string // loop variable names (several when unpacking)
		iter    expr
		filter  expr // optional "if" clause
		body    []node
		els     []node
	}
	setNode struct {
		p       pos
		targets []string // names; several when unpacking
		attr    string   // non-empty for "set ns.attr = ..."
		value   expr
		body    []node // block set: {% set x %}...{% endset %}
	}
	macroNode struct {
		p        pos
		name     string
		params   []string
		defaults []expr // aligned with the tail of params
		body     []node
	}
	callBlockNode struct {
		p    pos
		call *callExpr
		body []node // becomes caller()
	}
	filterBlockNode struct {
		p       pos
		filters []*filterExpr // applied in order to the rendered body
		body    []node
	}
	// loopControlNode is {% break %} or {% continue %}.
	loopControlNode struct {
		p       pos
		isBreak bool
	}
	// scopeNode renders its body in place; it stands for HF's
	// {% generation %} marker, which only tracks assistant spans.
	scopeNode struct {
		p    pos
		body []node
	}
)

func (n *textNode) at() pos        { return n.p }
func (n *outputNode) at() pos      { return n.p }
func (n *ifNode) at() pos          { return n.p }
func (n *forNode) at() pos         { return n.p }
func (n *setNode) at() pos         { return n.p }
func (n *macroNode) at() pos       { return n.p }
func (n *callBlockNode) at() pos   { return n.p }
func (n *filterBlockNode) at() pos { return n.p }
func (n *loopControlNode) at() pos { return n.p }
func (n *scopeNode) at() pos       { return n.p }

type expr interface{ at() pos }

type (
	constExpr struct {
		p pos
		v any
	}
	nameExpr struct {
		p    pos
		name string
	}
	listExpr struct {
		p     pos
		items []expr
		tuple bool
	}
	dictExpr struct {
		p    pos
		keys []expr
		vals []expr
	}
	// getattrExpr is x.name: attribute first, then item (Jinja2 getattr).
	getattrExpr struct {
		p    pos
		obj  expr
		name string
	}
	// getitemExpr is x[key]: item first, then attribute (Jinja2 getitem).
	getitemExpr struct {
		p   pos
		obj expr
		key expr
	}
	sliceExpr struct {
		p                 pos
		obj               expr
		start, stop, step expr // nil when omitted
	}
	callExpr struct {
		p      pos
		fn     expr
		args   []expr
		kwargs []kwarg
	}
	filterExpr struct {
		p      pos
		obj    expr // nil inside a filter block
		name   string
		args   []expr
		kwargs []kwarg
	}
	testExpr struct {
		p      pos
		obj    expr
		name   string
		negate bool
		args   []expr
	}
	unaryExpr struct {
		p  pos
		op string // "not", "-", "+"
		x  expr
	}
	binaryExpr struct {
		p    pos
		op   string
		l, r expr
	}
	// compareExpr is a Python comparison chain: a < b <= c.
	compareExpr struct {
		p     pos
		first expr
		ops   []string // "==", "!=", "<", "<=", ">", ">=", "in", "notin"
		rest  []expr
	}
	concatExpr struct {
		p     pos
		parts []expr
	}
	condExpr struct {
		p              pos
		cond, yes, els expr // els may be nil: yields undefined
	}
)

type kwarg struct {
	name string
	val  expr
}

func (e *constExpr) at() pos   { return e.p }
func (e *nameExpr) at() pos    { return e.p }
func (e *listExpr) at() pos    { return e.p }
func (e *dictExpr) at() pos    { return e.p }
func (e *getattrExpr) at() pos { return e.p }
func (e *getitemExpr) at() pos { return e.p }
func (e *sliceExpr) at() pos   { return e.p }
func (e *callExpr) at() pos    { return e.p }
func (e *filterExpr) at() pos  { return e.p }
func (e *testExpr) at() pos    { return e.p }
func (e *unaryExpr) at() pos   { return e.p }
func (e *binaryExpr) at() pos  { return e.p }
func (e *compareExpr) at() pos { return e.p }
func (e *concatExpr) at() pos  { return e.p }
func (e *condExpr) at() pos    { return e.p }
