package planner_test

import (
	"strings"
	"testing"

	"lrmc/compiler/ir"
	"lrmc/planner"
)

// TestComputeKeys: compute "bf16" adds itself to the model.load params, so
// that node's key and every key downstream of it change, while nodes that
// do not use the model (sources, tokenized data, eval windows) keep theirs; float32 compute ("") plans exactly as before
// (TestDepthKeysGolden pins those keys).
func TestComputeKeys(t *testing.T) {
	plan := func(compute string) map[string]*planner.Node {
		model := ir.Model{Path: "/m/model.bin", Format: "auto", DType: "bfloat16", Compute: compute}
		eval := []ir.Eval{{Name: "ppl", Task: "perplexity", Data: ir.Data{Path: "/d/text.txt", Format: "text", Split: ir.Split{From: 0.9, To: 1}}, Samples: 8, SeqLen: 128}}
		r := &ir.Recipe{File: "r.cue", Dense: true, DenseModel: model, DenseEval: eval,
			Output: ir.Output{Dir: "/out", Formats: []string{"llama2c"}}}
		g, err := planner.Plan(r, keyEnv{})
		if err != nil {
			t.Fatal(err)
		}
		nodes := map[string]*planner.Node{}
		for _, n := range g.Nodes {
			nodes[n.Label] = n
		}
		return nodes
	}
	f32, bf16 := plan(""), plan("bf16")
	if len(f32) != len(bf16) {
		t.Fatalf("%d nodes with f32 compute, %d with bf16", len(f32), len(bf16))
	}
	var fromModel func(n *planner.Node) bool
	fromModel = func(n *planner.Node) bool {
		if n.Op == planner.OpModelLoad {
			return true
		}
		for _, in := range n.Inputs {
			if fromModel(in) {
				return true
			}
		}
		return false
	}
	changed := 0
	for label, a := range f32 {
		b := bf16[label]
		if b == nil {
			t.Fatalf("node %q missing from the bf16 plan", label)
		}
		switch {
		case a.Op == planner.OpModelLoad:
			if strings.Contains(string(a.Params), "compute") || !strings.Contains(string(b.Params), `"compute":"bf16"`) {
				t.Errorf("model.load params: f32 %s, bf16 %s", a.Params, b.Params)
			}
			fallthrough
		case fromModel(a):
			changed++
			if a.Key == b.Key {
				t.Errorf("%s (%s): key unchanged though it descends from the model", label, a.Op)
			}
		case a.Key != b.Key:
			t.Errorf("%s (%s): key changed though it does not use the model", label, a.Op)
		}
	}
	if changed < 2 {
		t.Errorf("only %d keys changed", changed)
	}
}
