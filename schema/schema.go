// Package schema holds the CUE definition of a recipe (#Recipe) and the
// defaults the compiler fills in (#Defaults), embedded so the binary needs no
// files beside it.
package schema

import (
	_ "embed"
	"fmt"

	"cuelang.org/go/cue"
)

//go:embed schema.cue
var source []byte

// Filename is the name positions inside the schema carry, so error reporting
// can tell the schema's positions from the user's.
const Filename = "lrmc/schema/schema.cue"

// Paths of the definitions inside the schema.
var (
	RecipePath   = cue.ParsePath("#Recipe")
	DefaultsPath = cue.ParsePath("#Defaults")
	EvalMapPath  = cue.ParsePath("#EvalMap")
	EvalListPath = cue.ParsePath("#EvalList")
	TasksPath    = cue.ParsePath("#Tasks")
)

// Source returns the schema's CUE text.
func Source() []byte { return append([]byte(nil), source...) }

// Schema is the compiled schema in one cue.Context.
type Schema struct {
	Recipe   cue.Value // #Recipe
	Defaults cue.Value // #Defaults
	// EvalMap and EvalList are the shapes of eval: by name, or a list.
	EvalMap, EvalList cue.Value
	// Tasks are the built-in multiple-choice tasks (#Tasks).
	Tasks cue.Value
}

// Compile builds the schema in ctx, with extra declarations appended (the
// registered methods' fields extend #Prune this way: CUE unifies two
// declarations of one definition, and the result stays closed). A
// cue.Context is not safe for concurrent use, so each caller compiles
// into its own.
func Compile(ctx *cue.Context, extra ...string) (*Schema, error) {
	src := Source()
	for _, e := range extra {
		src = append(append(src, '\n'), e...)
	}
	v := ctx.CompileBytes(src, cue.Filename(Filename))
	if err := v.Err(); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	s := &Schema{
		Recipe: v.LookupPath(RecipePath), Defaults: v.LookupPath(DefaultsPath),
		EvalMap: v.LookupPath(EvalMapPath), EvalList: v.LookupPath(EvalListPath),
		Tasks: v.LookupPath(TasksPath),
	}
	if err := s.Defaults.Validate(cue.Concrete(true), cue.Final()); err != nil {
		return nil, fmt.Errorf("schema: #Defaults: %w", err)
	}
	return s, nil
}

// For returns #Recipe with the shape of every eval that user writes
// settled by the kind written: #EvalList for a list, else #EvalMap (the
// form documented first, so a scalar is reported as not a map). #Recipe
// declares eval as _ because a disjunction, left to CUE, reports a mistake
// inside one eval item as a conflict between list and struct, and hides
// the recipe's other errors.
func (s *Schema) For(user cue.Value) cue.Value {
	recipe := s.Recipe
	settle := func(p cue.Path) {
		v := user.LookupPath(p)
		switch {
		case !v.Exists():
		case v.IncompleteKind() == cue.ListKind:
			recipe = recipe.FillPath(p, s.EvalList)
		default:
			recipe = recipe.FillPath(p, s.EvalMap)
		}
	}
	settle(cue.ParsePath("eval"))
	if runs := user.LookupPath(cue.ParsePath("runs")); runs.IncompleteKind() == cue.StructKind {
		if it, err := runs.Fields(); err == nil {
			for it.Next() {
				settle(cue.MakePath(cue.Str("runs"), it.Selector(), cue.Str("eval")))
			}
		}
	}
	return recipe
}
