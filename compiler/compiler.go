// Package compiler turns a CUE recipe into the typed IR the planner consumes.
//
// A recipe is unified with the schema's #Recipe and validated (concrete and
// final), which checks every field where it is written. The top level's
// model, calibration, eval, prune and recovery are then deep-merged into each
// run, the schema's #Defaults fill what is still unset, and what the schema
// cannot see is checked in Go: required fields after the merge, fields that
// constrain one another, names against the registry, and files on disk.
// Every problem is reported, one line each, at the position of the value it
// is about.
package compiler

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"time"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"

	"lrmc/compiler/ir"
	"lrmc/methods/spec"
	"lrmc/schema"
)

// Bounds on one recipe's evaluation. Real recipes compile in milliseconds
// and allocate about 1 MiB, but CUE is a language: a comprehension over
// list.Range(0, 1e8, 1) in a few lines takes many minutes and gigabytes
// (with these bounds `lrmc vet` stops it after 1 GiB, in seconds), and
// cue.Context has no way to interrupt an evaluation (cuelang.org/go v0.17.1
// takes no context.Context and exposes no step or memory limit).
var (
	// evalTimeout bounds the wall time of loading and evaluating a recipe.
	evalTimeout = 60 * time.Second
	// evalMaxHeap bounds how much the process heap may grow meanwhile.
	evalMaxHeap uint64 = 1 << 30
	// evalPoll is how often the heap is sampled.
	evalPoll = 50 * time.Millisecond
)

// Compile loads the recipe at path, with the other files of its CUE package
// in the same directory, and returns it resolved. On failure the error is an
// Errors listing every problem found.
//
// Evaluation runs on its own goroutine, watched against evalTimeout and
// evalMaxHeap. When it passes one, Compile returns an error at once, but
// the goroutine cannot be stopped: it runs on, holding its memory, until
// CUE finishes or the process exits. The lrmc commands exit on that error,
// so this costs nothing there; a long-lived caller pays for the abandoned
// evaluation until it ends.
func Compile(path string) (*ir.Recipe, error) {
	type result struct {
		r   *ir.Recipe
		err error
	}
	done := make(chan result, 1) // buffered: an abandoned evaluation does not block
	base := heapBytes()
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- result{err: Errors{{Pos: ir.Pos{File: path}, Msg: fmt.Sprintf("internal error evaluating the recipe: %v", p)}}}
			}
		}()
		r, err := compile(path)
		done <- result{r, err}
	}()
	deadline := time.NewTimer(evalTimeout)
	defer deadline.Stop()
	poll := time.NewTicker(evalPoll)
	defer poll.Stop()
	for {
		select {
		case res := <-done:
			return res.r, res.err
		case <-deadline.C:
			return nil, Errors{{Pos: ir.Pos{File: path},
				Msg: fmt.Sprintf("recipe evaluation exceeded %s (a comprehension or recursion too large?)", evalTimeout)}}
		case <-poll.C:
			if heap := heapBytes(); heap > base && heap-base > evalMaxHeap {
				return nil, Errors{{Pos: ir.Pos{File: path},
					Msg: fmt.Sprintf("recipe evaluation exceeded %d MiB of memory (a comprehension or recursion too large?)", evalMaxHeap>>20)}}
			}
		}
	}
}

// heapObjects is the runtime metric that equals MemStats.HeapAlloc.
const heapObjects = "/memory/classes/heap/objects:bytes"

// heapBytes returns the bytes of heap objects (MemStats.HeapAlloc), read
// through runtime/metrics: runtime.ReadMemStats stops the world and
// flushes every P's span cache, which cost a fully cached apply 3% of its
// CPU time for the one reading before the evaluation.
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: heapObjects}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0 // not in this runtime: the bound is off, the timeout holds
	}
	return s[0].Value.Uint64()
}

// compile is Compile without the bounds.
func compile(path string) (*ir.Recipe, error) {
	c, err := newCompiler(path)
	if err != nil {
		return nil, err
	}
	r := c.compile()
	if len(c.errs.errs) > 0 {
		return nil, c.errs.errs.sortDedup()
	}
	return r, nil
}

// Vet checks the recipe at path without keeping the result.
func Vet(path string) error {
	_, err := Compile(path)
	return err
}

// compiler holds the state of one compilation. It owns its cue.Context,
// which is not safe for concurrent use.
type compiler struct {
	file string // as the user gave it, for messages
	abs  string
	dir  string // absolute directory of the recipe

	ctx      *cue.Context
	schema   *schema.Schema
	user     cue.Value // the recipe as written
	full     cue.Value // the recipe unified with #Recipe
	defaults cue.Value // #Defaults

	positions map[string]ir.Pos
	errs      errorList
	// tasks are the names eval's task may take; taskDefs define the
	// multiple-choice ones (built in and the recipe's own).
	tasks    registry
	taskDefs map[string]ir.TaskDef
	// genDefs define the generation tasks; chatPos is where each
	// evaluation (by its Positions key) turned chat on.
	genDefs map[string]genDef
	chatPos map[string]chatAt
	// cuePaths are the field paths of the schema's errors, so checks in Go
	// can stay quiet about what follows from them.
	cuePaths []string
	// recipe is #Recipe with eval's shape settled (schema.For), where
	// the fields allowed at a position are looked up.
	recipe cue.Value
	// reportedUnknown holds the paths of fields reported as not allowed;
	// misspelt the paths their suggestions stand for (suggest.go).
	reportedUnknown map[string]bool
	misspelt        []string
}

func newCompiler(path string) (*compiler, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, Errors{{Pos: ir.Pos{File: path}, Msg: err.Error()}}
	}
	ctx := cuecontext.New()
	s, err := schema.Compile(ctx, spec.CUE())
	if err != nil {
		// The schema is embedded and tested, so this is a bug in lrmc.
		return nil, err
	}
	return &compiler{
		file:      path,
		abs:       abs,
		dir:       filepath.Dir(abs),
		ctx:       ctx,
		schema:    s,
		defaults:  s.Defaults,
		positions: map[string]ir.Pos{},
	}, nil
}

func (c *compiler) compile() *ir.Recipe {
	user, ok := c.load()
	if !ok {
		return nil
	}
	c.user = user
	recipe := c.schema.For(user)
	c.recipe = recipe
	c.full = recipe.Unify(user)
	if err := c.full.Validate(cue.Concrete(true), cue.Final()); err != nil {
		c.addCUE(err)
	}
	// CUE reports a field the closed schema does not allow only when the
	// struct holding it has no other error; look for them all, so one
	// pass of vet shows every mistake.
	c.unknownFields(user, recipe, nil)
	return c.resolve()
}

// unknownFields reports every regular field of user that schema does not
// allow, descending into the structs that both have.
func (c *compiler) unknownFields(user, schema cue.Value, sels []string) {
	if user.IncompleteKind() != cue.StructKind || !schema.Exists() {
		return
	}
	it, err := user.Fields()
	if err != nil {
		return
	}
	for it.Next() {
		sel := it.Selector()
		here := append(slices.Clone(sels), sel.String())
		if !schema.Allows(sel) {
			c.notAllowed(c.valuePos(it.Value()), here)
			continue
		}
		sub := schema.LookupPath(cue.MakePath(sel))
		if !sub.Exists() {
			// A field matched by a pattern, such as a run's name.
			sub = schema.LookupPath(cue.MakePath(cue.AnyString))
		}
		c.unknownFields(it.Value(), sub, here)
	}
}

// load builds the recipe file, with the other files of its package in the
// same directory when it declares a package (as cue does, files whose names
// start with "." or "_" are left out). Imports of CUE's standard library
// work; recipes are self-contained, so there is no module loading.
func (c *compiler) load() (cue.Value, bool) {
	if _, err := os.Stat(c.abs); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		c.errs.add(ir.Pos{File: c.file}, "", "cannot read recipe: %v", err)
		return cue.Value{}, false
	}
	f, err := parser.ParseFile(c.abs, nil, parser.ParseComments)
	if err != nil {
		c.addCUE(err)
		return cue.Value{}, false
	}
	files := []*ast.File{f}
	if pkg := f.PackageName(); pkg != "" {
		more, ok := c.siblings(pkg)
		if !ok {
			return cue.Value{}, false
		}
		files = append(files, more...)
	}
	inst := build.NewContext().NewInstance(c.dir, nil)
	for _, f := range files {
		if err := inst.AddSyntax(f); err != nil {
			c.addCUE(err)
			return cue.Value{}, false
		}
	}
	if !c.stdlibOnly(files) {
		return cue.Value{}, false
	}
	// An error at the root (an unresolved reference, say) leaves nothing
	// to validate; errors inside fields come out of validation below.
	v := c.ctx.BuildInstance(inst)
	if err := v.Err(); err != nil {
		c.addCUE(err)
		return cue.Value{}, false
	}
	return v, true
}

// stdlibOnly reports imports outside CUE's standard library (whose paths
// have no dot in their first element): recipes are loaded without a module,
// so the build would otherwise fail with a message about a missing package.
func (c *compiler) stdlibOnly(files []*ast.File) bool {
	ok := true
	for _, f := range files {
		for spec := range f.ImportSpecs() {
			path, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				continue // the parser has reported it
			}
			first, _, _ := strings.Cut(path, "/")
			if strings.Contains(first, ".") {
				c.errs.add(c.pos(spec.Path.Pos()), "", "import %q: a recipe may import only CUE's standard library", path)
				ok = false
			}
		}
	}
	return ok
}

// siblings parses the .cue files beside the recipe that belong to package pkg.
func (c *compiler) siblings(pkg string) ([]*ast.File, bool) {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		c.errs.add(ir.Pos{File: c.file}, "", "cannot list the recipe's directory: %v", err)
		return nil, false
	}
	var files []*ast.File
	ok := true
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(c.dir, name)
		if e.IsDir() || filepath.Ext(name) != ".cue" || path == c.abs || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			continue
		}
		head, err := parser.ParseFile(path, nil, parser.PackageClauseOnly)
		if err != nil {
			c.addCUE(err)
			ok = false
			continue
		}
		if head.PackageName() != pkg {
			continue
		}
		f, err := parser.ParseFile(path, nil, parser.ParseComments)
		if err != nil {
			c.addCUE(err)
			ok = false
			continue
		}
		files = append(files, f)
	}
	return files, ok
}

// display turns a file name from a CUE position into the form the user
// gave: relative to where they are if they named the recipe relatively.
func (c *compiler) display(filename string) string {
	if filename == "" || filename == schema.Filename {
		return filename
	}
	if !filepath.IsAbs(filename) {
		filename = filepath.Join(c.dir, filename)
	}
	rel, err := filepath.Rel(c.dir, filename)
	if err != nil {
		return filename
	}
	return filepath.Join(filepath.Dir(c.file), rel)
}

func (c *compiler) pos(p token.Pos) ir.Pos {
	if !p.IsValid() {
		return ir.Pos{}
	}
	return ir.Pos{File: c.display(p.Filename()), Line: p.Line(), Col: p.Column()}
}

// valuePos is where v's value was written: the expression after the label,
// as CUE's own errors report it.
func (c *compiler) valuePos(v cue.Value) ir.Pos {
	if f, ok := v.Source().(*ast.Field); ok && f.Value != nil {
		return c.pos(f.Value.Pos())
	}
	return c.pos(v.Pos())
}

// labelPos is where v's field label was written.
func (c *compiler) labelPos(v cue.Value) ir.Pos { return c.pos(v.Pos()) }

// addCUE reports CUE's errors at the user's positions, with field paths
// written as the compiler writes them.
func (c *compiler) addCUE(err error) {
	for _, e := range cueerrors.Errors(err) {
		format, args := e.Msg()
		msg := fmt.Sprintf(format, args...)
		// The alternatives follow as errors of their own.
		if strings.HasSuffix(msg, "errors in empty disjunction:") {
			continue
		}
		sels := e.Path()
		if len(sels) > 0 && strings.HasPrefix(sels[0], "#") {
			sels = sels[1:]
		}
		pos, ok := c.userPos(cueerrors.Positions(e))
		if !ok {
			pos = c.nearestPos(sels)
		}
		msg = c.readable(msg, sels)
		path := formatPath(sels)
		c.cuePaths = append(c.cuePaths, path)
		if msg == "field not allowed" && len(sels) > 0 {
			c.notAllowed(pos, sels)
			continue
		}
		c.errs.add(pos, path, "%s", msg)
	}
}

// userPos picks the first position in the recipe's own files; CUE also
// lists the schema's constraint, which is not where the user can fix it.
func (c *compiler) userPos(ps []token.Pos) (ir.Pos, bool) {
	for _, p := range ps {
		if p.IsValid() && p.Filename() != schema.Filename {
			return c.pos(p), true
		}
	}
	return ir.Pos{}, false
}

// nearestPos is the position of the value at sels in the recipe, or of its
// nearest written ancestor, or the file itself.
func (c *compiler) nearestPos(sels []string) ir.Pos {
	for n := len(sels); n > 0; n-- {
		if v := c.user.LookupPath(cuePath(sels[:n])); v.Exists() {
			if p := c.valuePos(v); p.Line > 0 {
				return p
			}
		}
	}
	return ir.Pos{File: c.file}
}

// readable rewrites CUE messages that do not name the user's value. An
// integer against an open float range reads "incompatible integer bounds >0
// and <1", which hides the 1 the user wrote.
func (c *compiler) readable(msg string, sels []string) string {
	bounds, ok := strings.CutPrefix(msg, "incompatible integer bounds ")
	if !ok {
		return msg
	}
	v := c.user.LookupPath(cuePath(sels))
	if !v.Exists() || !v.IsConcrete() {
		return msg
	}
	return fmt.Sprintf("invalid value %v (out of bound %s)", v, strings.Replace(bounds, " and ", " & ", 1))
}

// cuePath turns the selectors of a CUE error path back into a cue.Path.
func cuePath(sels []string) cue.Path {
	out := make([]cue.Selector, 0, len(sels))
	for _, s := range sels {
		if n, err := strconv.Atoi(s); err == nil {
			out = append(out, cue.Index(n))
		} else if u, err := strconv.Unquote(s); err == nil {
			out = append(out, cue.Str(u))
		} else if strings.HasPrefix(s, "#") {
			out = append(out, cue.Def(s))
		} else {
			out = append(out, cue.Str(s))
		}
	}
	return cue.MakePath(out...)
}

// formatPath writes CUE error selectors as ir.FieldPath does:
// `runs."x".eval[0].task`.
func formatPath(sels []string) string {
	if len(sels) >= 2 && sels[0] == "runs" {
		name := sels[1]
		if u, err := strconv.Unquote(name); err == nil {
			name = u
		}
		rest := joinSels(sels[2:])
		if rest == "" {
			return "runs." + strconv.Quote(name)
		}
		return ir.FieldPath(name, rest)
	}
	return joinSels(sels)
}

func joinSels(sels []string) string {
	var b strings.Builder
	for _, s := range sels {
		if _, err := strconv.Atoi(s); err == nil {
			b.WriteString("[" + s + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}

// cueErrorUnder reports whether the schema reported an error at or below
// any of paths.
func (c *compiler) cueErrorUnder(paths ...string) bool {
	for _, e := range c.cuePaths {
		for _, p := range paths {
			if within(e, p) {
				return true
			}
		}
	}
	return false
}

// cueErrorRelated reports whether the schema reported an error at path, below
// it or above it.
func (c *compiler) cueErrorRelated(path string) bool {
	for _, e := range c.cuePaths {
		if within(e, path) || within(path, e) {
			return true
		}
	}
	return false
}

// within reports whether field path p is q or lies below it.
func within(p, q string) bool {
	return p == q || q == "" || strings.HasPrefix(p, q+".") || strings.HasPrefix(p, q+"[")
}
