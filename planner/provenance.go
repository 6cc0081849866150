package planner

import (
	"encoding/json"
	"sort"

	"lrmc/compiler/ir"
	"lrmc/internal/version"
)

// Provenance is a run's provenance.json: what made its artifacts, so that
// anyone holding them can tell which recipe, inputs and computations they
// came from (and reproduce them: the same keys mean the same work).
type Provenance struct {
	LRMC   string            `json:"lrmc"`
	Recipe string            `json:"recipe"`
	Run    string            `json:"run"`
	Model  string            `json:"model"` // key of the model the artifacts hold
	Inputs []ProvenanceInput `json:"inputs"`
	Nodes  []ProvenanceNode  `json:"nodes"`
}

// ProvenanceInput is a file the run read, by content.
type ProvenanceInput struct {
	Path   string `json:"path"`
	Digest string `json:"blake3"`
}

// ProvenanceNode is one computation behind the artifacts.
type ProvenanceNode struct {
	Key     string `json:"key"`
	Op      string `json:"op"`
	Version int    `json:"version"`
	Label   string `json:"label"`
}

// provenance describes everything model depends on, in execution order.
func provenance(r *ir.Recipe, run string, model *Node) []byte {
	pv := Provenance{LRMC: version.Version, Recipe: r.File, Run: run, Model: model.Key.String()}
	seen := map[*Node]bool{}
	var order []*Node
	var visit func(n *Node)
	visit = func(n *Node) {
		if seen[n] {
			return
		}
		seen[n] = true
		for _, in := range n.Inputs {
			visit(in)
		}
		order = append(order, n)
	}
	visit(model)
	for _, n := range order {
		if n.IsSource() {
			var sp SourceParams
			json.Unmarshal(n.Params, &sp)
			pv.Inputs = append(pv.Inputs, ProvenanceInput{Path: n.Source, Digest: sp.Digest})
			continue
		}
		pv.Nodes = append(pv.Nodes, ProvenanceNode{Key: n.Key.String(), Op: n.Op, Version: n.Version, Label: n.Label})
	}
	sort.SliceStable(pv.Inputs, func(i, j int) bool { return pv.Inputs[i].Path < pv.Inputs[j].Path })
	b, _ := json.MarshalIndent(pv, "", "  ")
	return append(b, '\n')
}
