package planner_test

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"lrmc/compiler/ir"
	"lrmc/digest"
	_ "lrmc/methods/all"
	"lrmc/planner"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

type keyEnv struct{}

func (keyEnv) FileDigest(path string) (digest.Digest, error) { return digest.Of([]byte(path)), nil }
func (keyEnv) Model(ir.Model) (planner.ModelInfo, error) {
	return planner.ModelInfo{Format: "llama2c", Tokenizer: "/m/tok.bin", TokenizerFormat: "llama2c", Blocks: 5, Dim: 64, Vocab: 512, SeqLen: 512}, nil
}

// TestDepthKeysGolden pins the key of every node of a recipe that uses each
// depth method: moving methods between packages must not change a key
// (an op's version is bumped when its result must change).
func TestDepthKeysGolden(t *testing.T) {
	model := ir.Model{Path: "/m/model.bin", Format: "auto"}
	eval := []ir.Eval{{Name: "ppl", Task: "perplexity", Data: ir.Data{Path: "/d/text.txt", Format: "text", Split: ir.Split{From: 0.9, To: 1}}, Samples: 8, SeqLen: 128}}
	cal := ir.Calibration{Data: ir.Data{Path: "/d/text.txt", Format: "text", Split: ir.Split{From: 0, To: 0.9}}, Samples: 8, SeqLen: 64, Seed: 1}
	run := func(name, method string, p ir.Prune) ir.Run {
		p.Paradigm, p.Method = "depth", method
		return ir.Run{Name: name, Model: model, Eval: eval, Calibration: cal, Prune: p}
	}
	r := &ir.Recipe{File: "r.cue", Dense: true, DenseModel: model, DenseEval: eval, Output: ir.Output{Dir: "/out", Formats: []string{"llama2c"}},
		Runs: []ir.Run{
			run("explicit", "shortgpt", ir.Prune{Layers: []int{3, 1}}),
			run("ppl", "shortened-ppl", ir.Prune{Remove: 1}),
			run("sgpt", "shortgpt", ir.Prune{Remove: 1}),
			run("sgpt-ratio", "shortgpt", ir.Prune{Ratio: 0.4}),
			run("sleb", "sleb", ir.Prune{Remove: 2}),
			run("taylor", "shortened-taylor", ir.Prune{Remove: 2}),
		}}
	g, err := planner.Plan(r, keyEnv{})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, n := range g.Nodes {
		fmt.Fprintf(&b, "%s %s v%d %s %s\n", n.Key.String()[:16], n.Op, n.Version, n.Params, n.Label)
	}
	got := b.String()
	const golden = "testdata/depth_keys.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("planned nodes changed:\n%s\nwant:\n%s", got, want)
	}
}
