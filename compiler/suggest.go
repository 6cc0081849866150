package compiler

import (
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue"

	"lrmc/compiler/ir"
)

// A field the closed schema does not allow is usually a misspelling of one
// it does. The error names the nearest allowed field ("did you mean
// seqLen?"), and the field it stands for is remembered, so the checks that
// would report that field as missing stay quiet: one mistake, one error.

// notAllowed reports the field at sels (CUE selectors, as written), with
// the allowed field nearest to it at that position, if one is near.
func (c *compiler) notAllowed(pos ir.Pos, sels []string) {
	path := formatPath(sels)
	if c.reportedUnknown == nil {
		c.reportedUnknown = map[string]bool{}
	}
	if c.reportedUnknown[path] {
		return
	}
	c.reportedUnknown[path] = true
	msg := "field not allowed"
	name := unquote(sels[len(sels)-1])
	if s := nearest(name, c.allowedAt(sels[:len(sels)-1])); s != "" {
		msg += "; did you mean " + s + "?"
		meant := append(slices.Clone(sels[:len(sels)-1]), s)
		c.misspelt = append(c.misspelt, formatPath(meant))
	}
	c.errs.add(pos, path, "%s", msg)
}

// allowedAt lists the field names the schema allows in the struct at sels,
// following patterns (a run's name, a list's items) where the path does.
func (c *compiler) allowedAt(sels []string) []string {
	v := c.recipe
	for _, s := range sels {
		// Schema fields are optional; their selectors say so.
		next := v.LookupPath(cue.MakePath(cue.Str(unquote(s)).Optional()))
		if !next.Exists() {
			next = v.LookupPath(cuePath([]string{s}))
		}
		if !next.Exists() {
			next = v.LookupPath(cue.MakePath(cue.AnyString))
		}
		if !next.Exists() {
			next = v.LookupPath(cue.MakePath(cue.AnyIndex))
		}
		if !next.Exists() {
			return nil
		}
		v = next
	}
	it, err := v.Fields(cue.Optional(true))
	if err != nil {
		return nil
	}
	var names []string
	for it.Next() {
		if sel := it.Selector(); sel.IsString() {
			names = append(names, sel.Unquoted())
		}
	}
	return names
}

// nearest returns the name in allowed closest to name by edit distance
// (case folded, so "seqlen" finds "seqLen"), when it is close enough to be
// a misspelling: at most a third of the name's length, and at least one
// edit allowed. Ties go to the name first in sorted order.
func nearest(name string, allowed []string) string {
	best, bestD := "", len(name)/3
	bestD = max(bestD, 1)
	bestD++ // the bound is inclusive
	for _, a := range slices.Sorted(slices.Values(allowed)) {
		if d := editDistance(strings.ToLower(name), strings.ToLower(a)); d < bestD {
			best, bestD = a, d
		}
	}
	return best
}

// editDistance is Levenshtein's distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// misspeltAs reports whether a field reported as not allowed was, by its
// suggestion, meant to be field (or one of its ancestors) in any written
// layer: then field is not missing, only misspelt, and saying it is
// missing would repeat the one mistake.
func (r *resolver) misspeltAs(fields ...string) bool {
	for _, l := range r.layers {
		if l.isDefault {
			continue
		}
		for _, f := range fields {
			p := ir.FieldPath(l.run, join(l.prefix, f))
			for _, m := range r.c.misspelt {
				if within(p, m) {
					return true
				}
			}
		}
	}
	return false
}

// missing reports that field is required but set in no layer, unless a
// misspelling of it was reported.
func (r *resolver) missing(field, format string, args ...any) {
	if r.misspeltAs(field) {
		return
	}
	r.c.errs.add(r.missingPos(field), r.msgPath(field), format, args...)
}

func unquote(sel string) string {
	if s, err := strconv.Unquote(sel); err == nil {
		return s
	}
	return sel
}
