// Package ir is the typed form of a recipe: what the compiler produces from
// CUE and what the planner consumes. It has no dependency on CUE, so the
// planner stays a pure function of these values.
//
// Every run is fully resolved: top-level defaults are merged into it and the
// schema's defaults are filled in, so two runs that share a field carry equal
// values and the planner can merge their nodes by content key.
package ir

import "fmt"

// Recipe is one compiled recipe file.
type Recipe struct {
	// File is the recipe's path as given; Dir is the directory that relative
	// paths inside the recipe are resolved against (absolute).
	File string
	Dir  string

	// Dense asks for the unpruned model to be evaluated as a baseline row.
	Dense bool
	// DenseModel, DenseEval are the top-level model and evaluation used for the
	// dense baseline row.
	DenseModel Model
	DenseEval  []Eval

	// Runs are sorted by name.
	Runs []Run

	Output Output

	// Positions maps a field path (see FieldPath) to where its value was
	// written, for runs' resolved fields: a value inherited from the top level
	// points at the top-level field.
	Positions map[string]Pos
}

// Run is one pipeline of a sweep: model → calibration → prune → evaluate → export.
type Run struct {
	Name        string
	Model       Model
	Calibration Calibration
	Prune       Prune
	Eval        []Eval
}

// Model names a checkpoint. Path is absolute after compilation.
type Model struct {
	Path string
	// Tokenizer is an absolute path, or empty to find it beside the model.
	Tokenizer string
	// Format is "auto" (detected from the file), or an explicit format name.
	Format string
}

// Data is a dataset on disk and how to read and split it.
type Data struct {
	Path string
	// Format is "text" (documents separated by blank lines), "jsonl" (one
	// object per line, text in Field).
	Format string
	// Field is the JSON field holding the text for jsonl data.
	Field string
	// Split selects the fraction [From, To) of the documents, so calibration
	// and evaluation can draw disjoint parts of one file.
	Split Split
}

// Split is a half-open range of document fractions.
type Split struct {
	From float64
	To   float64
}

// Calibration is the distribution the pruning method measures the model on.
type Calibration struct {
	Data    Data
	Samples int
	SeqLen  int
	Seed    int64
}

// Prune selects a pruning method and its parameters. Paradigm and Method
// are validated against the registry of built methods by the compiler.
type Prune struct {
	Paradigm string // "depth", "width", "dynamic", or "none"
	Method   string // e.g. "shortgpt"
	// Depth pruning: exactly one of Remove, Ratio, Layers is set.
	Remove int
	Ratio  float64
	Layers []int
}

// Eval is one evaluation task.
type Eval struct {
	Task    string // "perplexity"
	Data    Data
	Samples int // number of windows; 0 means all
	SeqLen  int
}

// Output says where artifacts go; nothing here changes a node's key.
type Output struct {
	Dir     string // absolute
	Formats []string
}

// Pos is where a value was written in a recipe file.
type Pos struct {
	File      string
	Line, Col int
}

func (p Pos) String() string {
	if p.File == "" {
		return "-"
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// FieldPath names a field of a run for error messages and the Positions
// map: `runs."name".prune.remove`. An empty run names a top-level field.
func FieldPath(run, field string) string {
	if run == "" {
		return field
	}
	return fmt.Sprintf("runs.%q.%s", run, field)
}

// Where returns "file:line:col: path" for a field path, so plan-time checks
// (those that need the model) report like the compiler does. Fields without
// a recorded position (schema defaults) fall back to the recipe file.
func (r *Recipe) Where(path string) string {
	if p, ok := r.Positions[path]; ok {
		return p.String() + ": " + path
	}
	return r.File + ": " + path
}
