package compiler

import (
	"strconv"
	"strings"

	"cuelang.org/go/cue"

	"lrmc/compiler/ir"
)

// A layer is one place a field's value can come from: a run, the top level,
// or the schema's #Defaults. A resolver asks its layers in order and the
// first that sets a field wins; that is the deep merge, leaf by leaf. Lists
// are leaves, so they are replaced whole.
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
	// owner is the run named in messages about the merged result: the run
	// itself, or for an eval item the layer the whole list came from, so an
	// item inherited by every run is reported once.
	owner  string
	layers []layer
	// tok is where the model's tokenizer is (tokenizerOf), for checks of
	// data rendered with its chat template; "" before the model is known.
	tok string
}

// hit is a resolved field.
type hit struct {
	v    cue.Value // unified with the schema
	w    cue.Value // as written; zero for schema defaults
	pos  ir.Pos    // zero for schema defaults
	path string    // where it was written, for messages
	def  bool      // from #Defaults
}

// key is the Positions key of a resolved field.
func (r *resolver) key(field string) string {
	return ir.FieldPath(r.run, join(r.prefix, field))
}

// msgPath is the path of a field in messages about the merged result.
func (r *resolver) msgPath(field string) string {
	return ir.FieldPath(r.owner, join(r.prefix, field))
}

// join appends a dotted field (or an index, "[i]") to a path.
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

// fieldPath parses the compiler's own field paths ("eval[0].data.path");
// labels are plain identifiers, so this is not CUE's full path syntax.
func fieldPath(field string) cue.Path {
	var sels []cue.Selector
	for part := range strings.SplitSeq(field, ".") {
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
		h.w = l.user.LookupPath(p)
		h.pos = r.c.valuePos(h.w)
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
		r.missing(field, "field is required but not present")
	}
	return h, ok
}

// missingPos is where to report a field nobody set: its nearest written
// ancestor in the first layer that has one, else that layer's root.
func (r *resolver) missingPos(field string) ir.Pos {
	parts := strings.Split(field, ".")
	for n := len(parts) - 1; n > 0; n-- {
		anc := fieldPath(strings.Join(parts[:n], "."))
		for _, l := range r.layers {
			if !l.isDefault && l.sets(anc) {
				return r.c.valuePos(l.user.LookupPath(anc))
			}
		}
	}
	return r.layers[0].root
}

// Decoding. The schema's validation reports values of the wrong type or
// range, so a value that does not decode is usually reported already; the
// decoders report only what it let through, so no value silently becomes 0.

func (r *resolver) decoded(h hit, err error) bool {
	if err == nil {
		return true
	}
	if !r.c.cueErrorRelated(h.path) {
		r.c.errs.add(h.pos, h.path, "%v", err)
	}
	return false
}

func (r *resolver) str(h hit) (string, bool) {
	s, err := h.v.String()
	return s, r.decoded(h, err)
}

func (r *resolver) int(h hit) (int, bool) {
	n, err := h.v.Int64()
	return int(n), r.decoded(h, err)
}

func (r *resolver) float(h hit) (float64, bool) {
	f, err := h.v.Float64()
	return f, r.decoded(h, err)
}

func (r *resolver) bool(h hit) (bool, bool) {
	b, err := h.v.Bool()
	return b, r.decoded(h, err)
}

// list returns the items of a list, typed and as written (zero Values for a
// default list), so each item's position is known.
func (r *resolver) list(h hit) (items, written []cue.Value, ok bool) {
	it, err := h.v.List()
	if !r.decoded(h, err) {
		return nil, nil, false
	}
	for it.Next() {
		items = append(items, it.Value())
	}
	written = make([]cue.Value, len(items))
	if h.def {
		return items, written, true
	}
	wit, err := h.w.List()
	if !r.decoded(h, err) {
		return nil, nil, false
	}
	for i := 0; wit.Next() && i < len(written); i++ {
		written[i] = wit.Value()
	}
	return items, written, true
}

// item is the hit for item i of a list hit, recording its position.
func (r *resolver) item(h hit, field string, i int, v, w cue.Value) hit {
	ih := hit{v: v, w: w, path: h.path + "[" + strconv.Itoa(i) + "]", def: h.def}
	if w.Exists() {
		ih.pos = r.c.valuePos(w)
		r.c.positions[r.key(field+"["+strconv.Itoa(i)+"]")] = ih.pos
	}
	return ih
}

// check reports msg (from a registry) at h, where the value was written.
func (r *resolver) check(h hit, msg string) bool {
	if msg == "" {
		return true
	}
	r.c.errs.add(h.pos, h.path, "%s", msg)
	return false
}

// orPos is p when it names a line, else q.
func orPos(p, q ir.Pos) ir.Pos {
	if p.Line > 0 {
		return p
	}
	return q
}

func runPath(name string) string { return "runs." + strconv.Quote(name) }
