package executor

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"lrmc/planner"
)

// ReasonKind says why a node will run; the strings are part of plan's
// JSON schema.
type ReasonKind string

const (
	ReasonNewRun    ReasonKind = "new-run"        // the output state has no record of the run
	ReasonNew       ReasonKind = "new"            // the run had no node of this op at this position
	ReasonVersion   ReasonKind = "version-bumped" // the op's version changed
	ReasonParams    ReasonKind = "params-changed" // the node's parameters changed
	ReasonInput     ReasonKind = "input-changed"  // an input's key changed
	ReasonNotCached ReasonKind = "not-cached"     // the same node was computed before; its result is no longer in the cache
	ReasonUncached  ReasonKind = "never-cached"   // the op's results are never stored: it runs whenever it is needed
	ReasonFile      ReasonKind = "file-changed"   // a source file's content changed (source nodes are read, not run)
)

// Reason is why a node runs (or, for a source, that its file changed),
// with a human detail ("samples 8 → 16").
type Reason struct {
	Kind   ReasonKind `json:"kind"`
	Detail string     `json:"detail,omitempty"`
}

// Explain says, for every node that will run (and every source file that
// changed), why: by comparing it with the node at the same position of
// the same run in the output state. A node shared by several runs is
// compared with the first of them that has a record of its position.
func Explain(g *planner.Graph, st map[*planner.Node]planner.Status, state *State) map[*planner.Node]Reason {
	type indexed struct {
		pos   map[*planner.Node]string
		byPos map[string]NodeRecord
		ok    bool
	}
	runs := map[string]*indexed{}
	lookup := func(run string) *indexed {
		if ix, ok := runs[run]; ok {
			return ix
		}
		ix := &indexed{pos: Positions(g, run), byPos: map[string]NodeRecord{}}
		if rec, ok := state.Runs[run]; ok {
			ix.ok = true
			for _, nr := range rec.Nodes {
				ix.byPos[nr.Pos] = nr
			}
		}
		runs[run] = ix
		return ix
	}
	out := map[*planner.Node]Reason{}
	for _, n := range g.Nodes {
		s := st[n]
		if s != planner.Run && !(s == planner.Read && n.IsSource()) {
			continue
		}
		r := Reason{Kind: ReasonNew}
		recorded := false
		for _, run := range n.Runs {
			ix := lookup(run)
			if !ix.ok {
				continue
			}
			recorded = true
			prev, ok := ix.byPos[ix.pos[n]]
			if !ok {
				continue
			}
			r = compare(n, prev)
			break
		}
		if !recorded {
			r = Reason{Kind: ReasonNewRun}
		}
		if n.IsSource() {
			if r.Kind != ReasonParams {
				continue // a file read as before needs no reason
			}
			r = Reason{Kind: ReasonFile, Detail: n.Source}
		} else if planner.IsEphemeral(n.Op) && (r.Kind == ReasonNotCached || r.Kind == ReasonNew || r.Kind == ReasonNewRun) {
			r = Reason{Kind: ReasonUncached}
		}
		out[n] = r
	}
	return out
}

// compare says what differs between n and its recorded predecessor.
func compare(n *planner.Node, prev NodeRecord) Reason {
	if prev.Version != n.Version {
		return Reason{Kind: ReasonVersion, Detail: fmt.Sprintf("%s v%d → v%d", n.Op, prev.Version, n.Version)}
	}
	if !bytes.Equal(compactJSON(prev.Params), compactJSON(n.Params)) {
		return Reason{Kind: ReasonParams, Detail: paramsDiff(prev.Params, n.Params)}
	}
	if len(prev.Inputs) != len(n.Inputs) {
		return Reason{Kind: ReasonInput, Detail: fmt.Sprintf("%d inputs, were %d", len(n.Inputs), len(prev.Inputs))}
	}
	var changed []string
	for i, in := range n.Inputs {
		if prev.Inputs[i] != in.Key.String() {
			changed = append(changed, in.Label)
		}
	}
	if len(changed) > 3 {
		changed = append(changed[:2], fmt.Sprintf("%d more", len(changed)-2))
	}
	if len(changed) > 0 {
		return Reason{Kind: ReasonInput, Detail: strings.Join(changed, ", ")}
	}
	return Reason{Kind: ReasonNotCached}
}

func compactJSON(b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}

// paramsDiff lists the top-level parameters that differ, as
// "name old → new" (a parameter added or dropped shows as "-").
func paramsDiff(old, cur []byte) string {
	var a, b map[string]json.RawMessage
	if json.Unmarshal(old, &a) != nil || json.Unmarshal(cur, &b) != nil {
		return fmt.Sprintf("%s → %s", compactJSON(old), compactJSON(cur))
	}
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	show := func(v json.RawMessage, ok bool) string {
		if !ok {
			return "-"
		}
		s := string(compactJSON(v))
		if len(s) > 40 {
			s = s[:37] + "..."
		}
		return s
	}
	var parts []string
	for _, k := range names {
		va, oka := a[k]
		vb, okb := b[k]
		if oka && okb && bytes.Equal(compactJSON(va), compactJSON(vb)) {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s → %s", k, show(va, oka), show(vb, okb)))
	}
	return strings.Join(parts, ", ")
}
