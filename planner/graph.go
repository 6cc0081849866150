// Package planner compiles a typed recipe into a DAG of content-addressed
// nodes. It is pure: everything it needs from the outside world (file
// digests, a model's shape) comes through the Env interface, so a plan is a
// function of the recipe and those answers.
//
// A node's key is the Merkle hash of its op, the op's version, its
// normalized parameters and its inputs' keys; a source node (a model or data
// file) is keyed by the digest of the file's bytes. Two runs that need the
// same work therefore produce the same node, and the graph holds it once.
package planner

import (
	"encoding/json"
	"fmt"
	"sort"

	"lrmc/digest"
)

// Node is one unit of work.
type Node struct {
	Key     digest.Digest
	Op      string
	Version int
	// Params is the canonical JSON of the op's parameters: exactly the bytes
	// that were hashed into Key.
	Params json.RawMessage
	Inputs []*Node
	// Label is a short human description ("capture block 3").
	Label string
	// Source is the file a source node reads. It is not part of the key (the
	// file's digest is), so moving a file does not invalidate the cache.
	Source string
	// Runs lists the runs (and "dense") that use this node, sorted.
	Runs []string
}

// IsSource reports whether the node stands for a file on disk.
func (n *Node) IsSource() bool { return n.Op == OpSource }

// Output asks for a file (or directory) under the recipe's output
// directory once the graph has run: a node's result, a copy of a source
// file, or Data the planner composed (provenance).
type Output struct {
	Node *Node // nil when Data is set
	// Path is relative to the output directory.
	Path string
	// Dir says the node's result is a bundle of files to unpack into Path.
	Dir bool
	// Data is literal content.
	Data []byte
}

// Graph is a planned recipe.
type Graph struct {
	// Nodes in topological order (inputs before the nodes that use them).
	Nodes []*Node
	// Targets are the nodes whose results the recipe asks for.
	Targets []*Node
	// Outputs are written after execution.
	Outputs []Output
	// Results is the node producing results.json.
	Results *Node
	// OutDir is the absolute output directory.
	OutDir string

	byKey map[digest.Digest]*Node
}

// Node returns the node with the given key.
func (g *Graph) Node(k digest.Digest) (*Node, bool) {
	n, ok := g.byKey[k]
	return n, ok
}

// keyMaterial is what a key hashes; its JSON encoding is stable because
// field order is fixed and params are already canonical.
type keyMaterial struct {
	Op      string          `json:"op"`
	Version int             `json:"version"`
	Params  json.RawMessage `json:"params"`
	Inputs  []string        `json:"inputs"`
}

// NodeKey is the key of a node: the hash of its op, the op's version, its
// canonical params and its inputs' keys, in order. The planner keys every
// node with it, and a graph read back from JSON (DecodeGraph) is checked
// with it, so that no edited node passes for the one planned.
func NodeKey(op string, version int, params json.RawMessage, inputs []digest.Digest) digest.Digest {
	km := keyMaterial{Op: op, Version: version, Params: params, Inputs: make([]string, len(inputs))}
	for i, in := range inputs {
		km.Inputs[i] = in.String()
	}
	kb, err := json.Marshal(km)
	if err != nil {
		// Only invalid params JSON fails, and callers pass canonical JSON.
		panic(fmt.Sprintf("planner: key of %s: %v", op, err))
	}
	return digest.Of(kb)
}

// builder accumulates nodes, merging identical ones by key.
type builder struct {
	g *Graph
}

func newBuilder() *builder {
	return &builder{g: &Graph{byKey: map[digest.Digest]*Node{}}}
}

// add creates (or finds) the node for op with params and inputs. params is
// any JSON-encodable value; struct field order makes the encoding canonical.
func (b *builder) add(run, op string, params any, label string, inputs ...*Node) *Node {
	p, err := json.Marshal(params)
	if err != nil {
		// Params are planner-owned structs; failing to encode one is a bug.
		panic(fmt.Sprintf("planner: encoding params of %s: %v", op, err))
	}
	version, ok := OpVersion(op)
	if !ok {
		panic("planner: op without a version: " + op)
	}
	keys := make([]digest.Digest, len(inputs))
	for i, in := range inputs {
		keys[i] = in.Key
	}
	key := NodeKey(op, version, p, keys)
	if n, ok := b.g.byKey[key]; ok {
		n.addRun(run)
		return n
	}
	n := &Node{Key: key, Op: op, Version: version, Params: p, Inputs: inputs, Label: label}
	n.addRun(run)
	b.g.byKey[key] = n
	b.g.Nodes = append(b.g.Nodes, n)
	return n
}

// source creates the node for a file with the given content digest.
func (b *builder) source(run, path string, sum digest.Digest, label string) *Node {
	n := b.add(run, OpSource, SourceParams{Digest: sum.String()}, label)
	if n.Source == "" {
		n.Source = path
	}
	return n
}

func (n *Node) addRun(run string) {
	i := sort.SearchStrings(n.Runs, run)
	if i < len(n.Runs) && n.Runs[i] == run {
		return
	}
	n.Runs = append(n.Runs, "")
	copy(n.Runs[i+1:], n.Runs[i:])
	n.Runs[i] = run
}

// Users returns, for every node, the nodes that take it as an input.
func (g *Graph) Users() map[*Node][]*Node {
	users := map[*Node][]*Node{}
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			users[in] = append(users[in], n)
		}
	}
	return users
}
