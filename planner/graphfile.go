package planner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"lrmc/digest"
	"lrmc/internal/version"
)

// GraphFormat names the layout of a graph saved as JSON (EncodeGraph). A
// reader refuses any other: a job must run exactly what was planned, and
// a layout it does not know it cannot check.
const GraphFormat = "lrmc.graph/v1"

// GraphFile is a planned graph as JSON: what `lrmc exec --graph` needs to
// run any of its nodes without the recipe. Every field of a node that its
// key covers (op, version, params, inputs) is there to recompute the key
// from, so an edited node is caught; the rest (label, runs, the file a
// source reads) names things for people and for the executor.
type GraphFile struct {
	Format string `json:"format"`
	// LRMC is the version of the lrmc that planned the graph. Keys do not
	// depend on it (op versions do), so a reader only reports it.
	LRMC string `json:"lrmc"`
	// Recipe is the file the graph was planned from, for people: a reader
	// never opens it.
	Recipe string `json:"recipe,omitempty"`
	// Targets are the keys of the nodes whose results the recipe asks for.
	Targets []string    `json:"targets"`
	Nodes   []GraphNode `json:"nodes"`
}

// GraphNode is one node of a GraphFile.
type GraphNode struct {
	Key     string `json:"key"`
	Op      string `json:"op"`
	Version int    `json:"version"`
	// Params are the canonical params (indented when written; compacted
	// when read, which gives back the bytes the key hashed).
	Params json.RawMessage `json:"params"`
	// Inputs are the keys of the node's inputs, in order; each names a
	// node before this one.
	Inputs []string `json:"inputs"`
	// Ephemeral says the op's results are never cached (set only then).
	Ephemeral bool     `json:"ephemeral,omitempty"`
	Label     string   `json:"label"`
	Runs      []string `json:"runs,omitempty"`
	// File is the file or directory a source node reads.
	File *GraphFileInput `json:"file,omitempty"`
}

// GraphFileInput is the file behind a source node: its path as the
// planner resolved it, the digest of its bytes (also in the node's params,
// hence in its key) and its size (bytes of the file, or of a directory's
// files), which only informs.
type GraphFileInput struct {
	Path   string `json:"path"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// EncodeGraph writes g as a GraphFile: nodes in g's (topological) order,
// no timestamps, so that one plan always gives the same bytes. size gives
// a source file's size; recipe names the recipe for people.
func EncodeGraph(g *Graph, recipe string, size func(path string) int64) ([]byte, error) {
	f := GraphFile{Format: GraphFormat, LRMC: version.Version, Recipe: recipe, Targets: keysOf(g.Targets)}
	for _, n := range g.Nodes {
		gn := GraphNode{Key: n.Key.String(), Op: n.Op, Version: n.Version, Params: n.Params,
			Inputs: keysOf(n.Inputs), Ephemeral: IsEphemeral(n.Op), Label: n.Label, Runs: n.Runs}
		if n.IsSource() {
			var p SourceParams
			if err := json.Unmarshal(n.Params, &p); err != nil {
				return nil, fmt.Errorf("node %s (%s): params: %w", n.Key.Short(), n.Source, err)
			}
			gn.File = &GraphFileInput{Path: n.Source, Digest: p.Digest, Size: size(n.Source)}
		}
		f.Nodes = append(f.Nodes, gn)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func keysOf(nodes []*Node) []string {
	keys := make([]string, len(nodes))
	for i, n := range nodes {
		keys[i] = n.Key.String()
	}
	return keys
}

// DecodeGraph reads a GraphFile back into a graph (no outputs), checking
// it against this lrmc: the format, every op known at the version it was
// planned with and with the same caching, every input an earlier node, and
// every key recomputed from its node's content with NodeKey — a node
// edited by hand (params, inputs, op, a file's digest) no longer matches
// its key. Errors name the node (its short key and op) and the field.
// File digests are not checked here: that needs the files (the caller
// digests them before use).
func DecodeGraph(b []byte) (*Graph, *GraphFile, error) {
	var f GraphFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, nil, fmt.Errorf("not a graph lrmc can read: %w", err)
	}
	if dec.More() {
		return nil, nil, errors.New("not a graph lrmc can read: data after the graph's JSON object")
	}
	if f.Format != GraphFormat {
		return nil, nil, fmt.Errorf("field \"format\": %q, want %q (written by lrmc %s; plan the recipe again with this lrmc %s)",
			f.Format, GraphFormat, f.LRMC, version.Version)
	}
	g := &Graph{byKey: map[digest.Digest]*Node{}}
	for i, gn := range f.Nodes {
		n, err := decodeNode(g, gn, f.LRMC)
		if err != nil {
			name := fmt.Sprintf("nodes[%d]", i)
			if len(gn.Key) >= 12 {
				name = fmt.Sprintf("node %.12s (%s)", gn.Key, gn.Op)
			}
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		g.byKey[n.Key] = n
		g.Nodes = append(g.Nodes, n)
	}
	for i, k := range f.Targets {
		d, err := digest.Parse(k)
		if err != nil {
			return nil, nil, fmt.Errorf("field \"targets[%d]\": %w", i, err)
		}
		n, ok := g.byKey[d]
		if !ok {
			return nil, nil, fmt.Errorf("field \"targets[%d]\": %.12s is no node of the graph", i, k)
		}
		g.Targets = append(g.Targets, n)
	}
	return g, &f, nil
}

// decodeNode checks gn against g's earlier nodes and this lrmc's ops;
// planned is the version of the lrmc that wrote it.
func decodeNode(g *Graph, gn GraphNode, planned string) (*Node, error) {
	key, err := digest.Parse(gn.Key)
	if err != nil {
		return nil, fmt.Errorf("field \"key\": %w", err)
	}
	if _, dup := g.byKey[key]; dup {
		return nil, errors.New("field \"key\": a second node with this key")
	}
	v, ok := OpVersion(gn.Op)
	if !ok {
		return nil, fmt.Errorf("field \"op\": %q is not an op this lrmc %s knows (the graph was planned by lrmc %s)", gn.Op, version.Version, planned)
	}
	if gn.Version != v {
		return nil, fmt.Errorf("field \"version\": planned at version %d, but this lrmc %s implements %s at version %d; plan the recipe again with this lrmc",
			gn.Version, version.Version, gn.Op, v)
	}
	if e := IsEphemeral(gn.Op); gn.Ephemeral != e {
		does := "caches"
		if e {
			does = "never caches"
		}
		return nil, fmt.Errorf("field \"ephemeral\": %t, but this lrmc %s %s the results of %s", gn.Ephemeral, version.Version, does, gn.Op)
	}
	var params bytes.Buffer
	if err := json.Compact(&params, gn.Params); err != nil || params.Len() == 0 {
		return nil, fmt.Errorf("field \"params\": want a JSON value (%v)", err)
	}
	n := &Node{Key: key, Op: gn.Op, Version: gn.Version, Params: params.Bytes(), Label: gn.Label, Runs: gn.Runs}
	inputs := make([]digest.Digest, len(gn.Inputs))
	for i, k := range gn.Inputs {
		d, err := digest.Parse(k)
		if err != nil {
			return nil, fmt.Errorf("field \"inputs[%d]\": %w", i, err)
		}
		in, ok := g.byKey[d]
		if !ok {
			return nil, fmt.Errorf("field \"inputs[%d]\": %.12s is no node before it in the graph", i, k)
		}
		inputs[i] = d
		n.Inputs = append(n.Inputs, in)
	}
	if got := NodeKey(n.Op, n.Version, n.Params, inputs); got != key {
		return nil, fmt.Errorf("key does not match the node's content: its op, version, params and inputs hash to %s; the graph was edited after it was planned", got.Short())
	}
	switch {
	case n.IsSource() && gn.File == nil:
		return nil, errors.New("field \"file\": a source node must name its file")
	case n.IsSource():
		var p SourceParams
		if err := json.Unmarshal(n.Params, &p); err != nil {
			return nil, fmt.Errorf("field \"params\": %w", err)
		}
		if gn.File.Digest != p.Digest {
			return nil, fmt.Errorf("field \"file.digest\": %.12s, but the key was planned for %.12s (params.digest)", gn.File.Digest, p.Digest)
		}
		if gn.File.Path == "" {
			return nil, errors.New("field \"file.path\": empty")
		}
		n.Source = gn.File.Path
	case gn.File != nil:
		return nil, fmt.Errorf("field \"file\": only a source node reads a file, not %s", n.Op)
	}
	return n, nil
}
