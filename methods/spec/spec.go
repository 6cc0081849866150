// Package spec is the registry of pruning methods as a recipe sees them:
// their names, their recipe fields with defaults and checks, and which are
// planned but not built. It depends on nothing but the IR, so the compiler
// can consult it without the planner or the executor; a method's planning
// and ops register beside its spec (package lrmc/methods).
package spec

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"lrmc/compiler/ir"
)

// Spec is a pruning method as a recipe selects it: prune.paradigm and
// prune.method.
type Spec struct {
	Paradigm string // "depth", "width", "sparse", "dynamic"
	Name     string // "shortgpt"
	// Planned methods are known but not built: vet rejects them with
	// "not built yet".
	Planned bool
	// Calibration says the method measures the model on calibration data
	// (so a run must have calibration).
	Calibration bool
	// Fields are the method's own recipe fields under prune, beside
	// paradigm, method and the paradigm's amount (depth: remove, ratio,
	// layers).
	Fields []Field
	// Check, if set, validates the resolved options as a whole (what CUE
	// constraints on single fields cannot say). report names the field.
	Check func(o ir.Options, report func(field, format string, args ...any))
	// RunCheck, if set, validates a resolved run of the method as a whole:
	// what its model cannot go through (a recovery, a task). report names
	// a field of the run ("recovery.method", "eval[0].task").
	RunCheck func(run ir.Run, report func(field, format string, args ...any))
	// CheckShape, if set, validates the resolved prune settings against
	// the model's shape. vet calls it with the shape read from the
	// checkpoint's header (or a synthetic model's fields), the method's
	// plan with the planner's, so a recipe that cannot be planned is
	// rejected by vet, with the same message, at the field's position.
	CheckShape func(p ir.Prune, s Shape, report func(field, format string, args ...any))
	// DefaultSamples and DefaultSeqLen, when not 0, are the calibration
	// windows a run of this method takes when the recipe gives none (the
	// method's reference defaults); 0 makes the field required. A default
	// seqLen is capped at the model's context by the method's plan, so
	// the compiler leaves calibration.seqLen 0 ("the method's default").
	DefaultSamples, DefaultSeqLen int
	// ModelForm, when set, says the pruned model is not a Llama model but
	// this form of its own (an output format of that name writes it):
	// the compiler rejects multiple-choice evaluation, recovery and every
	// other output format for such a run, with this method's name.
	ModelForm string
}

// Shape is what a check can know of a model without loading it.
type Shape struct {
	Blocks int // transformer blocks
	Dim    int // hidden size
}

// Key is "paradigm/name", the method's name in messages and registries.
func (s Spec) Key() string { return s.Paradigm + "/" + s.Name }

// Field is one recipe field of a method, under prune.
type Field struct {
	// Name is a CUE identifier: prune.<Name>.
	Name string
	// CUE constrains the value, as the schema writes it ("#Count & >=0",
	// "number & >0 & <1", "bool", "string", "[...#Count]"); it is checked
	// where the value is written, with file:line:col.
	CUE string
	// Default is the value when no layer writes the field; its Go type
	// (int, float64, bool, string, []int) is how the compiler decodes the
	// field. A nil Default makes the field optional, decoded by Kind.
	Default any
	// Kind is the Go type for a field without Default: "int", "float",
	// "bool", "string" or "[]int".
	Kind string
	// Doc says what the field means (one line).
	Doc string
}

// KindOf is the field's decoding: Kind, or the type of Default.
func (f Field) KindOf() string {
	switch f.Default.(type) {
	case int:
		return "int"
	case float64:
		return "float"
	case bool:
		return "bool"
	case string:
		return "string"
	case []int:
		return "[]int"
	}
	return f.Kind
}

var (
	mu    sync.RWMutex
	specs = map[string]Spec{}
)

// Register adds a method. Registering a name twice, a field whose name is
// not an identifier, or two methods declaring one field name with
// different constraints is a programming error: it panics at start-up.
func Register(s Spec) {
	mu.Lock()
	defer mu.Unlock()
	if s.Paradigm == "" || s.Name == "" {
		panic("spec: a method needs a paradigm and a name")
	}
	if _, dup := specs[s.Key()]; dup {
		panic("spec: method registered twice: " + s.Key())
	}
	for _, f := range s.Fields {
		switch {
		case !identifier(f.Name):
			panic(fmt.Sprintf("spec: %s: field %q is not an identifier", s.Key(), f.Name))
		case f.CUE == "":
			panic(fmt.Sprintf("spec: %s: field %q has no CUE constraint", s.Key(), f.Name))
		case !slices.Contains([]string{"int", "float", "bool", "string", "[]int"}, f.KindOf()):
			panic(fmt.Sprintf("spec: %s: field %q has no kind (set Default or Kind)", s.Key(), f.Name))
		case slices.Contains(reserved, f.Name):
			panic(fmt.Sprintf("spec: %s: field %q is the paradigm's own", s.Key(), f.Name))
		}
		for _, o := range specs {
			for _, g := range o.Fields {
				if g.Name == f.Name && (g.CUE != f.CUE || g.KindOf() != f.KindOf()) {
					panic(fmt.Sprintf("spec: %s declares field %q as %s, %s as %s", s.Key(), f.Name, f.CUE, o.Key(), g.CUE))
				}
			}
		}
	}
	specs[s.Key()] = s
}

// Unregister removes a method; tests that register one of their own
// remove it when done, so other tests see the real registry.
func Unregister(key string) {
	mu.Lock()
	defer mu.Unlock()
	delete(specs, key)
}

// reserved are #Prune's tags.
var reserved = []string{"paradigm", "method"}

// Base are #Prune's fields beside the tags: depth's amount (read by the
// compiler for paradigm depth). A method of another paradigm may declare
// one of them as its own field (a width method's ratio), with a
// constraint that unifies with the schema's.
var Base = []string{"remove", "ratio", "layers"}

func identifier(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		ok := r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || i > 0 && '0' <= r && r <= '9'
		if !ok {
			return false
		}
	}
	return true
}

// Lookup returns the method paradigm/name.
func Lookup(paradigm, name string) (Spec, bool) {
	mu.RLock()
	defer mu.RUnlock()
	s, ok := specs[paradigm+"/"+name]
	return s, ok
}

// All returns every registered method, by paradigm (the study's order:
// depth, width, sparse, dynamic, then others) and name.
func All() []Spec {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]Spec, 0, len(specs))
	for _, s := range specs {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Spec) int {
		if d := paradigmRank(a.Paradigm) - paradigmRank(b.Paradigm); d != 0 {
			return d
		}
		return strings.Compare(a.Key(), b.Key())
	})
	return out
}

// Keys returns the keys of the built (planned false) or planned methods,
// sorted.
func Keys(planned bool) []string {
	var out []string
	for _, s := range All() {
		if s.Planned == planned {
			out = append(out, s.Key())
		}
	}
	return out
}

// Paradigms returns the paradigms of every registered method, in All's
// order.
func Paradigms() []string {
	var out []string
	for _, s := range All() {
		if !slices.Contains(out, s.Paradigm) {
			out = append(out, s.Paradigm)
		}
	}
	return out
}

func paradigmRank(p string) int {
	if i := slices.Index(paradigmOrder, p); i >= 0 {
		return i
	}
	return len(paradigmOrder)
}

// paradigmOrder is the order paradigms are listed in messages: the study's.
var paradigmOrder = []string{"depth", "width", "sparse", "dynamic"}

// Fields returns every field any method declares, by name, and the
// methods declaring each (sorted keys).
func Fields() (fields map[string]Field, owners map[string][]string) {
	fields, owners = map[string]Field{}, map[string][]string{}
	for _, s := range All() {
		for _, f := range s.Fields {
			fields[f.Name] = f
			owners[f.Name] = append(owners[f.Name], s.Key())
		}
	}
	return fields, owners
}

// CUE returns the declarations that extend the schema's #Prune with every
// method's fields, each optional and constrained where it is written.
func CUE() string {
	fields, _ := Fields()
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString("\n// Fields of the registered pruning methods (lrmc/methods/spec).\n#Prune: {\n")
	for _, n := range names {
		fmt.Fprintf(&b, "\t%s?: %s\n", n, fields[n].CUE)
	}
	b.WriteString("}\n")
	return b.String()
}
