package executor

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"lrmc/cache"
	"lrmc/digest"
	"lrmc/planner"
)

// Options tune an execution.
type Options struct {
	// Jobs bounds how many ops run at once (default 1: the kernels already
	// use every core, so running ops side by side mostly adds memory).
	Jobs int
	Log  hclog.Logger
	// Events receives the event stream; calls are serialized.
	Events func(Event)
	// Sources, when set, is asked before and after each op that reads
	// source files whether they are still what was planned; a node whose
	// sources changed fails with "input changed during apply" and nothing
	// is stored for it.
	Sources Sources
	// FailFast stops the whole execution at the first failing node. By
	// default a failure stops only the nodes that depend on it: every
	// other target still resolves, and Run reports the failures with the
	// results it could produce (RunError).
	FailFast bool
}

// Executor runs graphs against a store with a fixed set of ops.
type Executor struct {
	ops   map[string]Op
	store Store
	opts  Options
	mu    sync.Mutex // serializes Events
}

// New checks that every op the planner can emit is implemented at the
// planner's version.
func New(ops map[string]Op, store Store, opts Options) (*Executor, error) {
	for name, v := range planner.OpVersions() {
		if name == planner.OpSource {
			continue
		}
		op, ok := ops[name]
		if !ok {
			return nil, fmt.Errorf("executor: op %q has no implementation", name)
		}
		if op.Version() != v {
			return nil, fmt.Errorf("executor: op %q is implemented at version %d but planned at version %d", name, op.Version(), v)
		}
	}
	if opts.Jobs <= 0 {
		opts.Jobs = 1
	}
	if opts.Log == nil {
		opts.Log = hclog.NewNullLogger()
	}
	return &Executor{ops: ops, store: store, opts: opts}, nil
}

// Result holds what an execution produced.
type Result struct {
	values map[*planner.Node]any
	bytes  map[*planner.Node][]byte
	// onDisk: nodes left unread because their outputs hold them, with
	// their values' digests.
	onDisk map[*planner.Node]digest.Digest
	// Ran counts the ops that ran; Cached the results read from the cache.
	Ran, Cached int
	// Failures are the nodes that failed themselves (not those that only
	// lost an input), in graph order; FailedTargets the targets that did
	// not resolve because of them. Both are empty when Run returns no
	// error.
	Failures      []Failure
	FailedTargets []*planner.Node
}

// Failure is a node whose op (or cache read) failed.
type Failure struct {
	Node *planner.Node
	Err  error // the op's own error, without the node's name
}

func (f Failure) Error() string {
	return fmt.Sprintf("%s (%s %s): %v", f.Node.Label, f.Node.Op, f.Node.Key.Short(), f.Err)
}

func (f Failure) Unwrap() error { return f.Err }

// RunError is what Run returns when, without FailFast, some targets
// failed; the Result still holds every target that resolved.
type RunError struct {
	Failures []Failure
}

func (e *RunError) Error() string {
	msgs := make([]string, len(e.Failures))
	for i, f := range e.Failures {
		msgs[i] = f.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap exposes each failure's error to errors.Is and errors.As.
func (e *RunError) Unwrap() []error {
	errs := make([]error, len(e.Failures))
	for i, f := range e.Failures {
		errs[i] = f
	}
	return errs
}

// FailedRuns maps the name of every run with a failed target to the
// failures behind it (the failed nodes that run uses). A failure that no
// run owns (the recipe-wide results node) is listed under "".
func (r *Result) FailedRuns() map[string][]Failure {
	out := map[string][]Failure{}
	for _, t := range r.FailedTargets {
		for _, run := range t.Runs {
			if _, ok := out[run]; ok {
				continue
			}
			var fs []Failure
			for _, f := range r.Failures {
				if f.Node == t || slices.Contains(f.Node.Runs, run) {
					fs = append(fs, f)
				}
			}
			if run == "" && len(fs) == 0 {
				// The results node lost an input of some run: that
				// run is listed already.
				continue
			}
			out[run] = fs
		}
	}
	return out
}

// Value returns a target's decoded result.
func (r *Result) Value(n *planner.Node) (any, bool) {
	v, ok := r.values[n]
	return v, ok
}

// Bytes returns an output node's encoded result.
func (r *Result) Bytes(n *planner.Node) ([]byte, bool) {
	b, ok := r.bytes[n]
	return b, ok
}

func (e *Executor) emit(ev Event) {
	if e.opts.Events == nil {
		return
	}
	ev.Time = time.Now().UTC()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.opts.Events(ev)
}

// state is one node's resolution, shared by everyone who needs it: the
// first demand starts it, later ones wait on done (BuildKit's "actives").
type state struct {
	done  chan struct{}
	val   any
	bytes []byte
	err   error
}

type execution struct {
	e      *Executor
	g      *planner.Graph
	ctx    context.Context
	cancel context.CancelCauseFunc
	sem    chan struct{}

	mu      sync.Mutex
	states  map[*planner.Node]*state
	pending map[*planner.Node]int // users not yet finished, for freeing values
	keep    map[*planner.Node]bool
	// failed holds each node whose own op (or cache read) failed, with
	// its error; prior the results an earlier execution handed over.
	failed map[*planner.Node]error
	prior  map[digest.Digest]*state
	// onDisk holds the nodes whose outputs already hold their results
	// (uptodate.go): they are neither read nor run.
	onDisk map[*planner.Node]digest.Digest
	ran    int
	cached int
}

// Run resolves every target of g. On error or cancellation, nodes that
// finished are already in the store, so running again resumes. Without
// FailFast, a failing node fails only what depends on it: Run returns a
// *RunError with a Result holding every target that resolved.
func (e *Executor) Run(ctx context.Context, g *planner.Graph) (*Result, error) {
	return e.RunWith(ctx, g, nil)
}

// RunWith is Run taking the results of earlier targets from prior (an
// execution of another graph of the same recipe), by key, instead of
// reading them from the cache again: after a run failed, the graph of the
// runs that succeeded is resolved from what the first execution holds.
func (e *Executor) RunWith(ctx context.Context, g *planner.Graph, prior *Result) (*Result, error) {
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	x := &execution{
		e: e, g: g, ctx: ctx, cancel: cancel,
		sem:     make(chan struct{}, e.opts.Jobs),
		states:  map[*planner.Node]*state{},
		pending: map[*planner.Node]int{},
		keep:    map[*planner.Node]bool{},
		failed:  map[*planner.Node]error{},
	}
	if prior != nil {
		x.prior = map[digest.Digest]*state{}
		for n, v := range prior.values {
			x.prior[n.Key] = &state{val: v, bytes: prior.bytes[n]}
		}
		for n, b := range prior.bytes {
			if _, ok := x.prior[n.Key]; !ok {
				x.prior[n.Key] = &state{bytes: b}
			}
		}
	}
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			x.pending[in]++
		}
	}
	for _, t := range g.Targets {
		x.keep[t] = true
	}
	for _, o := range g.Outputs {
		if o.Node != nil {
			x.keep[o.Node] = true
		}
	}
	x.onDisk = x.outputsOnDisk()
	for _, t := range g.Targets {
		x.start(t)
	}
	res := &Result{values: map[*planner.Node]any{}, bytes: map[*planner.Node][]byte{}, onDisk: x.onDisk}
	var errs []error
	for _, t := range g.Targets {
		v, err := x.wait(t)
		if err != nil {
			errs = append(errs, err)
			res.FailedTargets = append(res.FailedTargets, t)
			continue
		}
		res.values[t] = v
	}
	res.Ran, res.Cached = x.ran, x.cached
	if len(errs) > 0 {
		// Report the cause rather than the cancellations it triggered.
		cause := context.Cause(ctx)
		if parent.Err() != nil {
			cause = context.Cause(parent)
		}
		if e.opts.FailFast || parent.Err() != nil {
			if cause != nil && !errors.Is(cause, context.Canceled) {
				return nil, cause
			}
			return nil, errs[0]
		}
		for _, n := range g.Nodes {
			if err, ok := x.failed[n]; ok {
				res.Failures = append(res.Failures, Failure{Node: n, Err: err})
			}
		}
		if len(res.Failures) == 0 {
			// Cannot happen: a target fails only through a node that
			// failed; keep the error rather than lose it.
			return nil, errs[0]
		}
	}
	for _, o := range g.Outputs {
		if o.Node == nil || o.Node.IsSource() {
			continue
		}
		if s := x.states[o.Node]; s != nil && s.err == nil {
			res.bytes[o.Node] = s.bytes
		}
	}
	if len(res.Failures) > 0 {
		return res, &RunError{Failures: res.Failures}
	}
	return res, nil
}

// start begins resolving n unless that is already under way.
func (x *execution) start(n *planner.Node) *state {
	x.mu.Lock()
	s, ok := x.states[n]
	if !ok {
		s = &state{done: make(chan struct{})}
		x.states[n] = s
	}
	x.mu.Unlock()
	if !ok {
		go func() {
			defer close(s.done)
			s.val, s.bytes, s.err = x.resolve(n)
			if s.err != nil && x.e.opts.FailFast {
				x.cancel(s.err)
			}
		}()
	}
	return s
}

func (x *execution) wait(n *planner.Node) (any, error) {
	s := x.start(n)
	select {
	case <-s.done:
		return s.val, s.err
	case <-x.ctx.Done():
		// The goroutine notices cancellation itself; wait so that no op is
		// left running when Run returns.
		<-s.done
		if s.err != nil {
			return nil, s.err
		}
		return s.val, nil
	}
}

// resolve produces n's result: from the file system for sources, from the
// cache when it holds a verified entry, else by running the op.
func (x *execution) resolve(n *planner.Node) (val any, enc []byte, err error) {
	if n.IsSource() {
		return n.Source, nil, nil
	}
	op := x.e.ops[n.Op]
	ephemeral := planner.IsEphemeral(n.Op)
	ev := Event{Node: n.Key.String(), Op: n.Op, Label: n.Label, Runs: n.Runs}
	// Checked before prior: a node an earlier execution left on disk has
	// no value there to hand over, and this graph's outputs decide.
	if _, ok := x.onDisk[n]; ok {
		// Its output file already holds exactly its cached value.
		x.count(&x.cached)
		ev.Event, ev.Cached = EventCached, true
		x.e.emit(ev)
		return nil, nil, nil
	}
	if p, ok := x.prior[n.Key]; ok {
		return p.val, x.keepBytes(n, p.bytes), nil
	}
	if !ephemeral {
		b, meta, err := x.e.store.Get(n.Key)
		switch {
		case err == nil:
			v, derr := op.Decode(b)
			if derr == nil {
				x.count(&x.cached)
				ev.Event, ev.Cached, ev.Bytes = EventCached, true, meta.Size
				x.e.emit(ev)
				return v, x.keepBytes(n, b), nil
			}
			// A verified entry that no longer decodes was written by a
			// buggy op version; recompute rather than fail.
			x.e.opts.Log.Warn("cached result does not decode; recomputing", "node", n.Label, "key", n.Key.Short(), "error", derr)
		case errors.Is(err, cache.ErrNotFound):
		case errors.Is(err, cache.ErrCorrupt):
			ev.Event, ev.Error = EventCorrupt, err.Error()
			x.e.emit(ev)
			x.e.opts.Log.Warn("corrupt cache entry dropped; recomputing", "node", n.Label, "key", n.Key.Short(), "error", err)
		default:
			return nil, nil, x.fail(n, fmt.Errorf("reading cache: %w", err))
		}
	}

	// Resolve inputs in parallel, then run.
	for _, in := range n.Inputs {
		x.start(in)
	}
	inputs := make([]any, len(n.Inputs))
	for i, in := range n.Inputs {
		v, err := x.wait(in)
		if err != nil {
			return nil, nil, err
		}
		inputs[i] = v
	}
	select {
	case x.sem <- struct{}{}:
	case <-x.ctx.Done():
		return nil, nil, context.Cause(x.ctx)
	}
	t0 := time.Now()
	report := func(done, total int64, metrics map[string]float64) {
		x.e.emit(Event{Event: EventProgress, Node: n.Key.String(), Op: n.Op, Label: n.Label, Runs: n.Runs, Done: done, Total: total, Metrics: metrics})
	}
	ck := &checkpoints{x: x, n: n, key: checkpointKey(n)}
	call := &Call{
		Node: n, Inputs: inputs,
		Log:         x.e.opts.Log.Named(n.Op),
		Progress:    func(done, total int64) { report(done, total, nil) },
		Report:      report,
		Checkpoints: ck,
	}
	// The sources are checked before the op reads them, and again after,
	// before its result is stored: a file replaced while the op ran may
	// have been read half old, half new.
	err = x.checkSources(n)
	if err == nil {
		ev.Event = EventStarted
		x.e.emit(ev)
		val, err = runOp(x.ctx, op, call)
	}
	if err == nil {
		err = x.checkSources(n)
	}
	if err == nil && ck.used {
		// The result supersedes the checkpoint.
		if derr := x.e.store.Delete(ck.key); derr != nil && !errors.Is(derr, cache.ErrNotFound) {
			x.e.opts.Log.Warn("could not drop a finished node's checkpoint", "node", n.Label, "error", derr)
		}
	}
	<-x.sem
	x.release(n)
	if err == nil && x.ctx.Err() != nil {
		err = context.Cause(x.ctx)
	}
	if err != nil {
		ev.Event, ev.Error = EventFailed, err.Error()
		ev.Seconds = time.Since(t0).Seconds()
		x.e.emit(ev)
		return nil, nil, x.fail(n, err)
	}
	x.count(&x.ran)
	ev.Event, ev.Seconds = EventFinished, time.Since(t0).Seconds()
	if !ephemeral {
		b, err := op.Encode(val)
		if err != nil {
			return nil, nil, x.fail(n, fmt.Errorf("encoding result: %w", err))
		}
		if err := x.e.store.Put(n.Key, n.Op, n.Label, b); err != nil {
			// The result is still good; only reuse is lost.
			x.e.opts.Log.Warn("could not store result", "node", n.Label, "error", err)
		}
		ev.Bytes = int64(len(b))
		enc = x.keepBytes(n, b)
	}
	x.e.emit(ev)
	return val, enc, nil
}

// runOp runs an op, turning a panic into an error that names the node, so
// one broken op cannot take the store down mid-write.
func runOp(ctx context.Context, op Op, c *Call) (v any, err error) {
	defer func() {
		if r := recover(); r != nil {
			buf := make([]byte, 4096)
			buf = buf[:runtime.Stack(buf, false)]
			err = fmt.Errorf("panic: %v\n%s", r, buf)
		}
	}()
	return op.Run(ctx, c)
}

// fail records that n itself failed with err and returns the error its
// users see: the failure, naming the node first.
func (x *execution) fail(n *planner.Node, err error) error {
	x.mu.Lock()
	x.failed[n] = err
	x.mu.Unlock()
	return Failure{Node: n, Err: err}
}

func (x *execution) keepBytes(n *planner.Node, b []byte) []byte {
	if x.keep[n] {
		return b
	}
	return nil
}

func (x *execution) count(c *int) {
	x.mu.Lock()
	*c++
	x.mu.Unlock()
}

// release tells n's inputs that one of their users is done with them; an
// input nobody else needs drops its value, so a chain of per-layer
// activations is not held in memory all at once.
func (x *execution) release(n *planner.Node) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, in := range n.Inputs {
		x.pending[in]--
		if x.pending[in] == 0 && !x.keep[in] {
			if s, ok := x.states[in]; ok {
				select {
				case <-s.done:
					s.val = nil
				default:
				}
			}
		}
	}
}
