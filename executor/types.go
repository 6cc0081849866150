// Package executor runs a planned graph: it resolves each target by reading
// its result from the cache or computing it from its inputs, with bounded
// parallelism, identical work done once, corrupt cache entries recomputed,
// cancellation that keeps every finished node, and an event stream that
// displays render.
//
// This file is the whole contract: the Op an implementation provides, the
// Store the executor caches in, and the Events it emits.
package executor

import (
	"context"
	"encoding/json"
	"time"

	"github.com/hashicorp/go-hclog"

	"lrmc/cache"
	"lrmc/digest"
	"lrmc/planner"
)

// Op computes the result of one kind of node.
type Op interface {
	// Version must equal planner.OpVersion(name); New checks it.
	Version() int
	// Run computes the result from the inputs' results.
	Run(ctx context.Context, c *Call) (any, error)
	// Encode and Decode convert results to and from cache bytes. Ephemeral
	// ops (planner.IsEphemeral) are never encoded.
	Encode(v any) ([]byte, error)
	Decode(b []byte) (any, error)
}

// Call is one invocation of an op.
type Call struct {
	Node   *planner.Node
	Inputs []any
	Log    hclog.Logger
	// Progress reports work done so far out of total (units are the op's).
	Progress func(done, total int64)
	// Report is Progress with named measurements (loss, tokens/s, …).
	Report func(done, total int64, metrics map[string]float64)
	// Checkpoints keeps the op's latest saved state across interrupted runs.
	Checkpoints Checkpoints
}

// Checkpoints lets a long op (training) save its state as it goes, so that
// a run interrupted by Ctrl-C or a crash resumes from the last save rather
// than from the start. The executor keeps one checkpoint per node in the
// store, verified like any entry, and drops it once the node has finished.
type Checkpoints interface {
	// Save replaces the node's checkpoint with state at step.
	Save(step int64, state []byte) error
	// Load returns the latest checkpoint; ok is false when there is none
	// (or it was corrupt, which is logged and treated as none).
	Load() (step int64, state []byte, ok bool, err error)
}

// Params decodes the node's parameters into p.
func (c *Call) Params(p any) error { return json.Unmarshal(c.Node.Params, p) }

// Store is the cache the executor reads and writes; *cache.Store implements it.
type Store interface {
	Get(key digest.Digest) ([]byte, cache.Meta, error)
	Put(key digest.Digest, op, name string, value []byte) error
	Stat(key digest.Digest) (cache.Meta, bool, error)
	Delete(key digest.Digest) error
}

// Sources checks that a source file is still the file whose digest keyed
// the graph, so that an op never reads bytes its key does not name (and a
// result is never stored under a key it does not belong to). ops.Env
// implements it with the stamps it recorded when it digested each source.
type Sources interface {
	// Check returns an error naming the file and what happened to it when
	// the source at path is no longer the file (or set of files) it was
	// when the graph was planned.
	Check(path string) error
}

// EventType names what happened to a node.
type EventType string

const (
	EventCached   EventType = "cached"   // result read from the cache
	EventStarted  EventType = "started"  // the op began running
	EventProgress EventType = "progress" // the op reported progress
	EventFinished EventType = "finished" // the op finished; result stored
	EventFailed   EventType = "failed"   // the op failed or was cancelled
	EventCorrupt  EventType = "corrupt"  // a cache entry failed verification and will be recomputed
	EventOutput   EventType = "output"   // an output file was written
	EventResumed  EventType = "resumed"  // an op resumed from its checkpoint
)

// Event is one entry of the stream (one JSON object per line with --progress=json).
type Event struct {
	Time  time.Time `json:"time"`
	Event EventType `json:"event"`
	Node  string    `json:"node"` // the node key; "" for a literal output file
	Op    string    `json:"op"`
	Label string    `json:"label,omitempty"`
	// Runs names the runs that use the node ("dense" for the baseline;
	// "" alone for the recipe-wide results), sorted.
	Runs    []string `json:"runs,omitempty"`
	Cached  bool     `json:"cached"`
	Done    int64    `json:"done,omitempty"`
	Total   int64    `json:"total,omitempty"`
	Seconds float64  `json:"seconds,omitempty"`
	Bytes   int64    `json:"bytes,omitempty"`
	// Metrics are an op's measurements with its progress (training: loss,
	// lr, tokens/s).
	Metrics map[string]float64 `json:"metrics,omitempty"`
	Path    string             `json:"path,omitempty"`
	Error   string             `json:"error,omitempty"`
}
