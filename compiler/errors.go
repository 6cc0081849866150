package compiler

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"lrmc/compiler/ir"
)

// Error is one problem in a recipe, at the position of the value it is about.
type Error struct {
	Pos  ir.Pos
	Path string // field path, e.g. `runs."x".prune.method`; empty for file-level problems
	Msg  string
}

// Error formats as "file:line:col: path: message".
func (e *Error) Error() string {
	var b strings.Builder
	if e.Pos.Line > 0 {
		b.WriteString(e.Pos.String())
	} else {
		b.WriteString(e.Pos.File)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors are all the problems found in a recipe, sorted by position.
type Errors []*Error

// Error prints one line per error.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find a single *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sortDedup orders errors by file, line, column, path and message, and drops
// repeats: a value inherited by several runs is checked once per run but is
// wrong in one place.
func (es Errors) sortDedup() Errors {
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(
			cmp.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Col, b.Pos.Col),
			cmp.Compare(a.Path, b.Path),
			cmp.Compare(a.Msg, b.Msg),
		)
	})
	return slices.CompactFunc(es, func(a, b *Error) bool { return *a == *b })
}

// errorList collects errors while a recipe is compiled.
type errorList struct{ errs Errors }

func (l *errorList) add(pos ir.Pos, path, format string, args ...any) {
	l.errs = append(l.errs, &Error{Pos: pos, Path: path, Msg: fmt.Sprintf(format, args...)})
}
