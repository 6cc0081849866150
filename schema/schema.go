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
)

// Source returns the schema's CUE text.
func Source() []byte { return append([]byte(nil), source...) }

// Schema is the compiled schema in one cue.Context.
type Schema struct {
	Recipe   cue.Value // #Recipe
	Defaults cue.Value // #Defaults
}

// Compile builds the schema in ctx. A cue.Context is not safe for concurrent
// use, so each caller compiles into its own.
func Compile(ctx *cue.Context) (*Schema, error) {
	v := ctx.CompileBytes(source, cue.Filename(Filename))
	if err := v.Err(); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	s := &Schema{Recipe: v.LookupPath(RecipePath), Defaults: v.LookupPath(DefaultsPath)}
	if err := s.Defaults.Validate(cue.Concrete(true), cue.Final()); err != nil {
		return nil, fmt.Errorf("schema: #Defaults: %w", err)
	}
	return s, nil
}
