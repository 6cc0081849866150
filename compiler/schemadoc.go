package compiler

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/format"

	"lrmc/methods/spec"
	"lrmc/schema"
)

// FieldDoc is one recipe field as `lrmc schema` describes it.
type FieldDoc struct {
	Path    string // "calibration.data.split.from"; "<name>" stands for a key the user chooses
	Type    string // the schema's constraint as written, #Count shown as int
	Default string // "" when the field has none (or the compiler derives it; the doc says how)
	Doc     string
}

// SchemaFields lists every field a recipe may write, in the schema's
// order, read from the embedded schema itself: types and docs from
// #Recipe (with the registered methods' prune fields and their docs from
// their specs), defaults from #Defaults. Nothing here is a copy to keep in
// step: a field added to the schema is listed by the next build.
func SchemaFields() ([]FieldDoc, error) {
	ctx := cuecontext.New()
	s, err := schema.Compile(ctx, spec.CUE())
	if err != nil {
		return nil, err
	}
	base, err := schema.Compile(ctx)
	if err != nil {
		return nil, err
	}
	w := &docWalker{s: s, base: base.Recipe, root: ctx.CompileBytes(schema.Source(), cue.Filename(schema.Filename))}
	w.walk(nil, s.Recipe)
	return w.out, nil
}

// WriteSchema writes SchemaFields as text: one line per field (path, type
// and default), then its doc indented.
func WriteSchema(out io.Writer) error {
	fields, err := SchemaFields()
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "Recipe fields, from lrmc's embedded schema. <name> is a name you choose; a run's")
	fmt.Fprintln(out, "model, calibration, eval, prune and recovery take the same fields as the top level's.")
	for _, f := range fields {
		fmt.Fprintf(out, "\n%s: %s", f.Path, f.Type)
		if f.Default != "" {
			fmt.Fprintf(out, " (default %s)", f.Default)
		}
		fmt.Fprintln(out)
		for line := range strings.SplitSeq(strings.TrimRight(f.Doc, "\n"), "\n") {
			if line != "" {
				fmt.Fprintf(out, "    %s\n", line)
			}
		}
	}
	return nil
}

type docWalker struct {
	s    *schema.Schema
	root cue.Value // the schema's source, for the docs of its definitions
	// base is #Recipe without the methods' fields: a field both declare
	// (prune.ratio) is typed as the schema writes it.
	base cue.Value
	out  []FieldDoc
}

// walk lists the fields of the struct v, at path.
func (w *docWalker) walk(path []string, v cue.Value) {
	it, err := v.Fields(cue.Optional(true))
	if err != nil {
		return
	}
	for it.Next() {
		sel := it.Selector()
		if !sel.IsString() {
			continue
		}
		name := sel.Unquoted()
		f := it.Value()
		here := append(slices.Clone(path), name)
		d := FieldDoc{Path: strings.Join(here, "."), Type: typeOf(f), Doc: w.docOf(f), Default: w.defaultOf(here)}
		if b := w.baseAt(here); b.Exists() {
			d.Type = typeOf(b)
		}
		if len(path) == 1 && path[0] == "prune" {
			w.methodField(&d, name)
		}
		switch pattern := f.LookupPath(cue.MakePath(cue.AnyString)); {
		case strings.Join(here, ".") == "eval":
			// Declared as _ (see #Evals): the items are #Eval.
			d.Type = "map of #Eval by name, or list of #Eval"
			d.Doc = evalsDoc
			w.out = append(w.out, d)
			w.walk(append(here, "<name>"), w.s.EvalMap.LookupPath(cue.MakePath(cue.AnyString)))
		case name == "runs" && len(path) == 0:
			d.Type = "map of #Run by name"
			w.out = append(w.out, d)
		case pattern.Exists():
			d.Type = "map by name"
			w.out = append(w.out, d)
			w.walk(append(here, "<name>"), pattern)
		case f.IncompleteKind() == cue.StructKind && d.Type != "_":
			d.Type = "struct"
			w.out = append(w.out, d)
			w.walk(here, f)
		default:
			w.out = append(w.out, d)
		}
	}
}

// baseAt is the field at path in the base #Recipe, if it is there.
func (w *docWalker) baseAt(path []string) cue.Value {
	sels := make([]cue.Selector, len(path))
	for i, p := range path {
		if p == "<name>" {
			return cue.Value{}
		}
		sels[i] = cue.Str(p).Optional()
	}
	return w.base.LookupPath(cue.MakePath(sels...))
}

// evalsDoc says how eval is written; #Recipe declares it as _, so its
// own doc is #Evals'.
const evalsDoc = `The evaluations, by name: {ppl: {task: "perplexity", ...}, piqa: {task: "piqa", ...}}.
Each name is a column of the results (and names samples/<name>.jsonl). A list is
accepted too; its items are named by their name field, else by their task.`

// methodField adds a registered method's own prune field's doc, its
// default per method and the methods that take it.
func (w *docWalker) methodField(d *FieldDoc, name string) {
	fields, owners := spec.Fields()
	f, ok := fields[name]
	if !ok || slices.Contains(spec.Base, name) {
		return
	}
	var defs []string
	for _, key := range owners[name] {
		paradigm, method, _ := strings.Cut(key, "/")
		s, _ := spec.Lookup(paradigm, method)
		for _, g := range s.Fields {
			if g.Name == name && g.Default != nil {
				def := fmt.Sprint(g.Default)
				if str, ok := g.Default.(string); ok {
					def = fmt.Sprintf("%q", str) // as CUE writes the other defaults
				}
				defs = append(defs, def+" for "+key)
			}
		}
	}
	d.Default = strings.Join(defs, ", ")
	d.Doc = f.Doc + "\nMethods: " + strings.Join(owners[name], ", ") + "."
}

// typeOf is a field's constraint as the schema writes it, with #Count,
// the schema's bounded int, written int.
func typeOf(v cue.Value) string {
	fld, ok := v.Source().(*ast.Field)
	if !ok {
		return v.IncompleteKind().String()
	}
	b, err := format.Node(fld.Value)
	if err != nil {
		return v.IncompleteKind().String()
	}
	t := strings.ReplaceAll(string(b), "#Count", "int")
	if strings.HasPrefix(t, "{") {
		return "struct"
	}
	return t
}

// docOf is the comment written above a field and beside it; for a field
// without one whose type is a definition (synthetic?: #Synthetic), the
// definition's.
func (w *docWalker) docOf(v cue.Value) string {
	var b strings.Builder
	fld, ok := v.Source().(*ast.Field)
	if !ok {
		return ""
	}
	for _, c := range ast.Comments(fld) {
		b.WriteString(c.Text())
	}
	if id, ok := fld.Value.(*ast.Ident); ok && b.Len() == 0 && strings.HasPrefix(id.Name, "#") {
		for _, c := range w.root.LookupPath(cue.MakePath(cue.Def(id.Name))).Doc() {
			b.WriteString(c.Text())
		}
	}
	return b.String()
}

// defaultOf is the default #Defaults gives the field at path, "" for none.
// Evaluations' items take #Defaults.eval; recovery's fields that belong to
// a method or a loss take #Defaults.recoveryMethod or recoveryLoss.
func (w *docWalker) defaultOf(path []string) string {
	lookup := func(p ...string) string {
		sels := make([]cue.Selector, len(p))
		for i, s := range p {
			sels[i] = cue.Str(s)
		}
		v := w.s.Defaults.LookupPath(cue.MakePath(sels...))
		if !v.Exists() || !v.IsConcrete() || v.IncompleteKind() == cue.StructKind {
			return ""
		}
		return fmt.Sprint(v)
	}
	switch {
	case path[0] == "eval" && len(path) > 2:
		return lookup(append([]string{"eval"}, path[2:]...)...)
	case path[0] == "recovery" && len(path) > 1 && path[1] == "data":
		if len(path) == 2 {
			return "the run's calibration data"
		}
		if path[2] == "split" {
			return "the calibration's"
		}
		return lookup(append([]string{"calibration"}, path[1:]...)...)
	case path[0] == "recovery" && len(path) == 2:
		var defs []string
		if d := lookup(path...); d != "" {
			defs = append(defs, d)
		}
		for _, group := range []string{"recoveryMethod", "recoveryLoss"} {
			for _, tag := range []string{"lora", "full", "lm", "kd"} {
				if d := lookup(group, tag, path[1]); d != "" {
					defs = append(defs, d+" for "+tag)
				}
			}
		}
		return strings.Join(defs, ", ")
	}
	return lookup(path...)
}
