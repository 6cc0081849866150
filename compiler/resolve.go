package compiler

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue"

	"lrmc/compiler/ir"
)

// A layer is one place a field's value can come from: a run, the top level,
// or the schema's #Defaults. A resolver asks its layers in order and the
// first that sets a field wins; that is the deep merge, leaf by leaf.
type layer struct {
	user cue.Value // as written; tells whether a field is set, and where
	full cue.Value // unified with the schema: the value to decode
	// run and prefix name the layer's root in messages: a value is reported
	// where it was written, so a mistake inherited by many runs shows once.
	run    string
	prefix string
	// root is where the layer itself was written, for fields it lacks.
	root      ir.Pos
	isDefault bool
}

// A resolver resolves the fields of one run (or of the top level, run "",
// or of one eval item, prefix "eval[i]").
type resolver struct {
	c      *compiler
	run    string
	prefix string
	// owner is the run named in messages about missing fields: the run
	// itself, or for an eval item the layer the whole list came from, so an
	// item inherited by every run is reported once.
	owner  string
	layers []layer
}

// hit is a resolved field.
type hit struct {
	v    cue.Value
	pos  ir.Pos // zero for schema defaults
	path string // where it was written, for messages
	def  bool   // from #Defaults
}

// runName keeps run names usable as directory names.
var runName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func (c *compiler) resolve() *ir.Recipe {
	rec := &ir.Recipe{File: c.file, Dir: c.dir, Positions: c.positions}
	c.recordWritten(c.user, "")
	top := &resolver{c: c, layers: []layer{
		{user: c.user, full: c.full, root: ir.Pos{File: c.file}},
		{full: c.defaults, isDefault: true},
	}}

	dense, denseHit, denseOK := top.boolean("dense")
	rec.Dense = dense
	if dense {
		rec.DenseModel = top.model()
		rec.DenseEval = top.evals()
		if len(rec.DenseEval) == 0 && !top.has("eval") {
			c.errs.add(orPos(denseHit.pos, ir.Pos{File: c.file}), "dense",
				"the dense baseline needs eval at the top level; add eval or set dense: false")
		}
	}

	uruns := c.user.LookupPath(cue.ParsePath("runs"))
	if uruns.Exists() {
		if it, err := uruns.Fields(); err == nil {
			for it.Next() {
				name := it.Selector().Unquoted()
				if !runName.MatchString(name) {
					c.errs.add(c.labelPos(it.Value()), runPath(name),
						"run name must match %s (it names the run's output directory)", runName)
				}
				sel := cue.MakePath(cue.Str("runs"), cue.Str(name))
				r := &resolver{c: c, run: name, owner: name, layers: []layer{
					{user: it.Value(), full: c.full.LookupPath(sel), run: name, root: c.valuePos(it.Value())},
					top.layers[0],
					top.layers[1],
				}}
				rec.Runs = append(rec.Runs, r.runFields(name))
			}
		}
	}
	slices.SortFunc(rec.Runs, func(a, b ir.Run) int { return strings.Compare(a.Name, b.Name) })
	if len(rec.Runs) == 0 && !dense && denseOK {
		c.errs.add(orPos(denseHit.pos, ir.Pos{File: c.file}), "runs", "nothing to do: no runs, and dense is false")
	}

	rec.Output = top.output()
	return rec
}

func (r *resolver) runFields(name string) ir.Run {
	run := ir.Run{Name: name, Model: r.model()}
	var needsCalibration bool
	run.Prune, needsCalibration = r.prune()
	switch {
	case needsCalibration && !r.has("calibration"):
		r.c.errs.add(r.missingPos("calibration"), r.msgPath("calibration"),
			"field is required but not present: %s/%s measures the model on calibration data",
			run.Prune.Paradigm, run.Prune.Method)
	case r.has("calibration"):
		run.Calibration = r.calibration()
	}
	run.Eval = r.evals()
	return run
}

// key is the Positions key of a resolved field.
func (r *resolver) key(field string) string {
	return ir.FieldPath(r.run, join(r.prefix, field))
}

// msgPath is the path of a field in messages about the merged result.
func (r *resolver) msgPath(field string) string {
	return ir.FieldPath(r.owner, join(r.prefix, field))
}

func join(prefix, field string) string {
	switch {
	case prefix == "":
		return field
	case field == "":
		return prefix
	case strings.HasPrefix(field, "["):
		return prefix + field
	}
	return prefix + "." + field
}

func fieldPath(field string) cue.Path {
	var sels []cue.Selector
	for _, part := range strings.Split(field, ".") {
		name, idx, _ := strings.Cut(part, "[")
		sels = append(sels, cue.Str(name))
		for idx != "" {
			n, rest, _ := strings.Cut(idx, "]")
			i, _ := strconv.Atoi(n)
			sels = append(sels, cue.Index(i))
			idx = strings.TrimPrefix(rest, "[")
		}
	}
	return cue.MakePath(sels...)
}

// sets reports whether layer l sets field (defaults set what they list).
func (l layer) sets(p cue.Path) bool {
	if l.isDefault {
		return l.full.LookupPath(p).Exists()
	}
	return l.user.Exists() && l.user.LookupPath(p).Exists()
}

// layerOf returns the index of the first layer setting any of fields, or -1.
// Only written layers count when userOnly is set.
func (r *resolver) layerOf(userOnly bool, fields ...string) int {
	for i, l := range r.layers {
		if userOnly && l.isDefault {
			continue
		}
		for _, f := range fields {
			if l.sets(fieldPath(f)) {
				return i
			}
		}
	}
	return -1
}

// has reports whether the user wrote field in any layer.
func (r *resolver) has(field string) bool { return r.layerOf(true, field) >= 0 }

// from resolves field in layer i and records its position.
func (r *resolver) from(i int, field string) (hit, bool) {
	l := r.layers[i]
	p := fieldPath(field)
	if !l.sets(p) {
		return hit{}, false
	}
	h := hit{v: l.full.LookupPath(p), path: ir.FieldPath(l.run, join(l.prefix, field)), def: l.isDefault}
	if !l.isDefault {
		h.pos = r.c.valuePos(l.user.LookupPath(p))
		r.c.positions[r.key(field)] = h.pos
	}
	return h, true
}

// get resolves field from the first layer that sets it.
func (r *resolver) get(field string) (hit, bool) {
	if i := r.layerOf(false, field); i >= 0 {
		return r.from(i, field)
	}
	return hit{}, false
}

// need is get for a field that must be set once the layers are merged.
func (r *resolver) need(field string) (hit, bool) {
	h, ok := r.get(field)
	if !ok {
		r.c.errs.add(r.missingPos(field), r.msgPath(field), "field is required but not present")
	}
	return h, ok
}

// missingPos is where to report a field nobody set: its nearest written
// ancestor in the first layer that has one, else that layer's root.
func (r *resolver) missingPos(field string) ir.Pos {
	parts := strings.Split(field, ".")
	for n := len(parts) - 1; n > 0; n-- {
		anc := strings.Join(parts[:n], ".")
		for _, l := range r.layers {
			if !l.isDefault && l.sets(fieldPath(anc)) {
				return r.c.valuePos(l.user.LookupPath(fieldPath(anc)))
			}
		}
	}
	return r.layers[0].root
}

// orPos is p when it names a line, else q.
func orPos(p, q ir.Pos) ir.Pos {
	if p.Line > 0 {
		return p
	}
	return q
}

func runPath(name string) string { return "runs." + strconv.Quote(name) }

// Decoding. A value that does not decode was already reported by the
// schema's validation, so the decoders only say whether they succeeded.

func (h hit) str() (string, bool) {
	s, err := h.v.String()
	return s, err == nil
}

func (h hit) int() (int64, bool) {
	n, err := h.v.Int64()
	return n, err == nil
}

func (h hit) float() (float64, bool) {
	f, err := h.v.Float64()
	return f, err == nil
}

// list returns the items of a list value with the values as written, for
// their positions.
func (r *resolver) list(h hit, field string) (items []cue.Value, written []cue.Value, ok bool) {
	it, err := h.v.List()
	if err != nil {
		return nil, nil, false
	}
	for it.Next() {
		items = append(items, it.Value())
	}
	if h.def {
		return items, make([]cue.Value, len(items)), true
	}
	l := r.layers[r.layerOf(false, field)]
	uit, err := l.user.LookupPath(fieldPath(field)).List()
	if err != nil {
		return nil, nil, false
	}
	for uit.Next() {
		written = append(written, uit.Value())
	}
	if len(written) != len(items) {
		return nil, nil, false
	}
	return items, written, true
}

func (r *resolver) boolean(field string) (bool, hit, bool) {
	h, ok := r.get(field)
	if !ok {
		return false, h, false
	}
	b, err := h.v.Bool()
	return b, h, err == nil
}

// check reports msg (from a registry) at h, where the value was written.
func (r *resolver) check(h hit, msg string) bool {
	if msg == "" {
		return true
	}
	r.c.errs.add(h.pos, h.path, "%s", msg)
	return false
}

// file resolves a path field against the recipe's directory and checks that
// it exists, reporting where it was written.
func (r *resolver) file(h hit, wantFile bool) (string, bool) {
	s, ok := h.str()
	if !ok {
		return "", false
	}
	if s == "" {
		r.c.errs.add(h.pos, h.path, "empty path")
		return "", false
	}
	p := s
	if !filepath.IsAbs(p) {
		p = filepath.Join(r.c.dir, p)
	}
	p = filepath.Clean(p)
	st, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r.c.errs.add(h.pos, h.path, "no such file: %s", p)
	case err != nil:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		r.c.errs.add(h.pos, h.path, "cannot read %s: %v", p, err)
	case wantFile && st.IsDir():
		r.c.errs.add(h.pos, h.path, "%s is a directory, not a file", p)
	}
	return p, true
}

func (r *resolver) model() ir.Model {
	var m ir.Model
	if h, ok := r.need("model.path"); ok {
		// A model may be a directory (Hugging Face layout).
		m.Path, _ = r.file(h, false)
	}
	if h, ok := r.get("model.tokenizer"); ok {
		m.Tokenizer, _ = r.file(h, false)
	}
	if h, ok := r.get("model.format"); ok {
		if s, ok := h.str(); ok && r.check(h, modelFormats.check(s)) {
			m.Format = s
		}
	}
	return m
}

// amounts are the depth-pruning fields of which exactly one is set. They
// merge as one: a run that sets ratio replaces a top-level remove.
var amounts = []string{"prune.remove", "prune.ratio", "prune.layers"}

// prune resolves the method and its parameters, and says whether the
// method needs calibration data.
func (r *resolver) prune() (ir.Prune, bool) {
	var p ir.Prune
	ph, ok := r.need("prune.paradigm")
	if !ok {
		return p, false
	}
	if p.Paradigm, ok = ph.str(); !ok {
		return p, false
	}
	if !slices.Contains(paradigms, p.Paradigm) {
		r.c.errs.add(ph.pos, ph.path, "unknown paradigm %q; paradigms: %s", p.Paradigm, strings.Join(paradigms, ", "))
		return p, false
	}
	if p.Paradigm == "none" {
		for _, f := range append([]string{"prune.method"}, amounts...) {
			if h, ok := r.get(f); ok {
				r.c.errs.add(h.pos, h.path, "paradigm none prunes nothing and takes no %s", strings.TrimPrefix(f, "prune."))
			}
		}
		return p, false
	}
	if mh, ok := r.need("prune.method"); ok {
		if s, ok := mh.str(); ok && r.check(mh, checkMethod(p.Paradigm, s)) {
			p.Method = s
		}
	}
	if p.Paradigm == "depth" {
		r.depthAmount(&p)
	}
	return p, true
}

// depthAmount resolves the one of remove, ratio, layers that is set, taking
// the whole group from the most specific layer that sets any of it.
func (r *resolver) depthAmount(p *ir.Prune) {
	i := r.layerOf(true, amounts...)
	if i < 0 {
		// A misspelt "remov" is reported by the schema; this would repeat it.
		if !r.c.cueErrorUnder(r.msgPath("prune"), "prune") {
			r.c.errs.add(r.missingPos("prune.remove"), r.msgPath("prune"),
				"depth pruning needs one of remove (blocks), ratio (fraction of blocks) or layers (block indices)")
		}
		return
	}
	var set []string
	for _, f := range amounts {
		h, ok := r.from(i, f)
		if !ok {
			continue
		}
		name := strings.TrimPrefix(f, "prune.")
		if len(set) > 0 {
			r.c.errs.add(h.pos, h.path, "%s conflicts with %s: depth pruning takes exactly one of remove, ratio, layers", name, set[0])
			continue
		}
		set = append(set, name)
		switch name {
		case "remove":
			n, _ := h.int()
			p.Remove = int(n)
		case "ratio":
			p.Ratio, _ = h.float()
		case "layers":
			items, written, ok := r.list(h, f)
			if !ok {
				continue
			}
			for j, v := range items {
				n, err := v.Int64()
				if err != nil {
					continue
				}
				p.Layers = append(p.Layers, int(n))
				if written[j].Exists() {
					r.c.positions[r.key(fmt.Sprintf("%s[%d]", f, j))] = r.c.valuePos(written[j])
				}
			}
		}
	}
}

func (r *resolver) calibration() ir.Calibration {
	var cal ir.Calibration
	cal.Data = r.data("calibration.data")
	if h, ok := r.need("calibration.samples"); ok {
		n, _ := h.int()
		cal.Samples = int(n)
	}
	if h, ok := r.need("calibration.seqLen"); ok {
		n, _ := h.int()
		cal.SeqLen = int(n)
	}
	if h, ok := r.get("calibration.seed"); ok {
		cal.Seed, _ = h.int()
	}
	return cal
}

func (r *resolver) data(field string) ir.Data {
	var d ir.Data
	if h, ok := r.need(field + ".path"); ok {
		d.Path, _ = r.file(h, true)
	}
	if h, ok := r.get(field + ".format"); ok {
		if s, ok := h.str(); ok && r.check(h, dataFormats.check(s)) {
			d.Format = s
		}
	}
	if fh, ok := r.get(field + ".field"); ok {
		switch {
		case d.Format == "jsonl":
			d.Field, _ = fh.str()
		case d.Format != "" && !fh.def:
			r.c.errs.add(fh.pos, fh.path, "field names the JSON field of jsonl data; format is %q", d.Format)
		}
	}
	fh, fok := r.get(field + ".split.from")
	th, tok := r.get(field + ".split.to")
	if fok && tok {
		from, fok := fh.float()
		to, tok := th.float()
		if fok && tok {
			d.Split = ir.Split{From: from, To: to}
			if from >= to {
				// Report at whichever bound was written closer to the run.
				at := th
				if th.def || (!fh.def && r.layerOf(true, field+".split.from") < r.layerOf(true, field+".split.to")) {
					at = fh
				}
				r.c.errs.add(at.pos, at.path, "empty split: from %v is not below to %v", from, to)
			}
		}
	}
	return d
}

// evals resolves the eval list, taken whole from the first layer that
// writes one; each item's unset fields come from #Defaults.eval.
func (r *resolver) evals() []ir.Eval {
	i := r.layerOf(true, "eval")
	if i < 0 {
		return nil
	}
	h, _ := r.from(i, "eval")
	items, written, ok := r.list(h, "eval")
	if !ok {
		return nil
	}
	l := r.layers[i]
	out := make([]ir.Eval, 0, len(items))
	for j := range items {
		idx := fmt.Sprintf("eval[%d]", j)
		ir := &resolver{c: r.c, run: r.run, owner: l.run, prefix: join(r.prefix, idx), layers: []layer{
			{user: written[j], full: items[j], run: l.run, prefix: join(l.prefix, idx), root: r.c.valuePos(written[j])},
			{full: r.c.defaults.LookupPath(cue.ParsePath("eval")), isDefault: true},
		}}
		out = append(out, ir.eval())
	}
	return out
}

func (r *resolver) eval() ir.Eval {
	var e ir.Eval
	if h, ok := r.need("task"); ok {
		if s, ok := h.str(); ok && r.check(h, evalTasks.check(s)) {
			e.Task = s
		}
	}
	e.Data = r.data("data")
	if h, ok := r.get("samples"); ok {
		n, _ := h.int()
		e.Samples = int(n)
	}
	if h, ok := r.need("seqLen"); ok {
		n, _ := h.int()
		e.SeqLen = int(n)
	}
	return e
}

func (r *resolver) output() ir.Output {
	var o ir.Output
	if h, ok := r.get("output.dir"); ok {
		if s, ok := h.str(); ok {
			if !filepath.IsAbs(s) {
				s = filepath.Join(r.c.dir, s)
			}
			o.Dir = filepath.Clean(s)
		}
	}
	if h, ok := r.get("output.formats"); ok {
		items, written, ok := r.list(h, "output.formats")
		if !ok {
			return o
		}
		o.Formats = []string{}
		for j, v := range items {
			s, err := v.String()
			if err != nil {
				continue
			}
			ih := hit{v: v, path: fmt.Sprintf("%s[%d]", h.path, j), def: h.def}
			if written[j].Exists() {
				ih.pos = r.c.valuePos(written[j])
				r.c.positions[r.key(fmt.Sprintf("output.formats[%d]", j))] = ih.pos
			}
			if r.check(ih, outputFormats.check(s)) {
				o.Formats = append(o.Formats, s)
			}
		}
	}
	return o
}

// recordWritten records the position of every field written at the top
// level (runs record their resolved fields as they are merged).
func (c *compiler) recordWritten(v cue.Value, path string) {
	switch v.IncompleteKind() {
	case cue.StructKind:
		it, err := v.Fields()
		if err != nil {
			return
		}
		for it.Next() {
			name := it.Selector().Unquoted()
			if path == "" && name == "runs" {
				continue
			}
			p := join(path, name)
			c.positions[p] = c.valuePos(it.Value())
			c.recordWritten(it.Value(), p)
		}
	case cue.ListKind:
		it, err := v.List()
		if err != nil {
			return
		}
		for i := 0; it.Next(); i++ {
			p := fmt.Sprintf("%s[%d]", path, i)
			c.positions[p] = c.valuePos(it.Value())
			c.recordWritten(it.Value(), p)
		}
	}
}
