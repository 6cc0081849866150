package planner

import (
	"fmt"
	"maps"
	"sync"

	"lrmc/compiler/ir"
)

// A pruning method plans itself: its package (under lrmc/methods)
// registers a MethodFunc for its "paradigm/name" and the ops it emits, and
// the planner asks the registry instead of knowing any method. Equal
// parameters and inputs make equal keys, so a statistic two methods ask
// for (the same op and params) is one node.

// MethodFunc plans the pruning of one run: the nodes that decide and
// apply it. It reports problems with MethodPlan.Errorf and returns nil.
type MethodFunc func(mp *MethodPlan) *Pruned

// Pruned is what a method's plan yields.
type Pruned struct {
	// Model is the pruned model.
	Model *Node
	// Decision, when set, is reported in the run's metrics: its result
	// must have a Metrics() map[string]any method (executor/ops.Reporter).
	Decision *Node
	// Exports are the method's own output formats (a model form the
	// planner's formats cannot hold, such as width/slicegpt's), by format
	// name: the planner writes the node's result under the run's
	// directory instead of planning a format of its own.
	Exports map[string]Export
	// Files are artifacts the method writes under the run's directory
	// beside the exported model whenever output.formats names one
	// (dynamic pruning's routers beside the weights).
	Files []Export
}

// Export is a method's export of its pruned model: Node's result written
// at Path under the run's directory (a directory when Dir).
type Export struct {
	Node *Node
	Path string
	Dir  bool
}

// MethodPlan is a method's view of the run being planned.
type MethodPlan struct {
	// Run is the run, resolved (Prune.Options holds the method's fields).
	Run ir.Run
	// Info is the model's shape.
	Info ModelInfo
	// Model is the model to prune.
	Model *Node

	p       *planning
	name    string
	posRun  string
	m       modelNodes
	windows *Node
	wdone   bool
}

// Output is the recipe's output settings (formats, dtype), for a method
// that exports its own model form.
func (mp *MethodPlan) Output() ir.Output { return mp.p.r.Output }

// Tokenizer is the model's tokenizer source node (its result is the
// tokenizer's path), for exports that carry the tokenizer along.
func (mp *MethodPlan) Tokenizer() *Node { return mp.m.tokenizer }

// Add creates (or finds, by key) a node for op, which must be a core op or
// one registered with RegisterOp.
func (mp *MethodPlan) Add(op string, params any, label string, inputs ...*Node) *Node {
	return mp.p.b.add(mp.name, op, params, label, inputs...)
}

// Errorf reports a problem with a run's field ("prune.remove"), where
// the recipe wrote it.
func (mp *MethodPlan) Errorf(field, format string, args ...any) {
	mp.p.errorf(mp.posRun, field, format, args...)
}

// Windows plans the run's calibration windows (checking their length
// against the model's context); nil on error, reported. Every method of
// a run with the same calibration shares them.
func (mp *MethodPlan) Windows() *Node {
	if mp.wdone {
		return mp.windows
	}
	mp.wdone = true
	c := mp.Run.Calibration
	if c.SeqLen > mp.Info.SeqLen {
		mp.Errorf("calibration.seqLen", "seqLen %d exceeds the model's context of %d tokens", c.SeqLen, mp.Info.SeqLen)
		return nil
	}
	stream := mp.p.tokens(mp.name, mp.posRun, "calibration.data", c.Data, mp.m)
	if stream == nil {
		return nil
	}
	mp.windows = mp.Add(OpCalibWindows, CalibWindowsParams{Samples: c.Samples, SeqLen: c.SeqLen, Seed: uint64(c.Seed)},
		fmt.Sprintf("calibration windows %d×%d seed %d", c.Samples, c.SeqLen, c.Seed), stream)
	return mp.windows
}

var (
	regMu   sync.RWMutex
	methods = map[string]MethodFunc{}
	regOps  = map[string]opDecl{}
)

type opDecl struct {
	version   int
	ephemeral bool
}

// RegisterMethod registers the planning of method key ("depth/sleb").
// Registering a key twice panics (a programming error, found at start-up).
func RegisterMethod(key string, f MethodFunc) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := methods[key]; dup {
		panic("planner: method registered twice: " + key)
	}
	methods[key] = f
}

// RegisterOp registers an op a method emits, at its version; an ephemeral
// op's result is never cached (Statuses runs it whenever it is needed).
// A name that is a core op or already registered panics.
func RegisterOp(name string, version int, ephemeral bool) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, core := Versions[name]; core {
		panic("planner: op is a core op: " + name)
	}
	if _, dup := regOps[name]; dup {
		panic("planner: op registered twice: " + name)
	}
	regOps[name] = opDecl{version: version, ephemeral: ephemeral}
}

func lookupMethod(key string) (MethodFunc, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	f, ok := methods[key]
	return f, ok
}

// OpVersion returns the version of a core or registered op.
func OpVersion(op string) (int, bool) {
	if v, ok := Versions[op]; ok {
		return v, true
	}
	regMu.RLock()
	defer regMu.RUnlock()
	d, ok := regOps[op]
	return d.version, ok
}

// OpVersions returns the versions of every op the planner can emit: the
// core ops (Versions) and those methods registered.
func OpVersions() map[string]int {
	out := maps.Clone(Versions)
	regMu.RLock()
	defer regMu.RUnlock()
	for name, d := range regOps {
		out[name] = d.version
	}
	return out
}

// IsEphemeral reports whether op's results are never cached.
func IsEphemeral(op string) bool {
	if Ephemeral[op] {
		return true
	}
	regMu.RLock()
	defer regMu.RUnlock()
	return regOps[op].ephemeral
}

// method plans run's pruning by its registered method.
func (p *planning) method(name, posRun string, run ir.Run, m modelNodes) *Pruned {
	key := run.Prune.Paradigm + "/" + run.Prune.Method
	f, ok := lookupMethod(key)
	if !ok {
		// The compiler rejects unregistered methods; reaching here is a bug
		// (or a binary that does not import lrmc/methods/all).
		p.errorf(posRun, "prune.method", "method %s has no planner", key)
		return nil
	}
	mp := &MethodPlan{Run: run, Info: m.info, Model: m.model, p: p, name: name, posRun: posRun, m: m}
	return f(mp)
}
