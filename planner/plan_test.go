package planner_test

import (
	"fmt"
	"strings"
	"testing"

	"lrmc/compiler/ir"
	"lrmc/digest"
	_ "lrmc/methods/all"
	"lrmc/methods/depth"
	sgpt "lrmc/methods/depth/shortgpt"
	"lrmc/methods/stats/capture"
	. "lrmc/planner"
)

// The depth methods' ops, by the names these tests knew them.
const (
	OpCaptureEmbed = capture.OpEmbed
	OpCaptureBlock = capture.OpBlock
	OpShortGPTBI   = sgpt.OpBI
	OpPruneDepth   = depth.OpPrune
)

// fakeEnv answers from maps: file digests by path, one model shape.
type fakeEnv struct {
	files map[string]string
	info  ModelInfo
}

func (f fakeEnv) FileDigest(path string) (digest.Digest, error) {
	c, ok := f.files[path]
	if !ok {
		return digest.Digest{}, fmt.Errorf("no such file: %s", path)
	}
	return digest.Of([]byte(c)), nil
}

func (f fakeEnv) Model(m ir.Model) (ModelInfo, error) { return f.info, nil }

func env() fakeEnv {
	return fakeEnv{
		files: map[string]string{"/m/model.bin": "weights", "/m/tok.bin": "tok", "/d/text.txt": "text"},
		info:  ModelInfo{Format: "llama2c", Tokenizer: "/m/tok.bin", TokenizerFormat: "llama2c", Blocks: 5, Dim: 64, Vocab: 512, SeqLen: 512},
	}
}

func recipe(runs ...ir.Run) *ir.Recipe {
	model := ir.Model{Path: "/m/model.bin", Format: "auto"}
	eval := []ir.Eval{{Task: "perplexity", Data: ir.Data{Path: "/d/text.txt", Format: "text", Split: ir.Split{From: 0.9, To: 1}}, Samples: 8, SeqLen: 128}}
	for i := range runs {
		runs[i].Model = model
		runs[i].Eval = eval
		if runs[i].Calibration.Samples == 0 {
			runs[i].Calibration = ir.Calibration{Data: ir.Data{Path: "/d/text.txt", Format: "text", Split: ir.Split{From: 0, To: 0.9}}, Samples: 16, SeqLen: 128, Seed: 1}
		}
	}
	return &ir.Recipe{
		File: "r.cue", Dense: true, DenseModel: model, DenseEval: eval, Runs: runs,
		Output:    ir.Output{Dir: "/out", Formats: []string{"llama2c"}},
		Positions: map[string]ir.Pos{`runs."big".prune.remove`: {File: "r.cue", Line: 7, Col: 40}},
	}
}

func shortgpt(name string, remove int) ir.Run {
	return ir.Run{Name: name, Prune: ir.Prune{Paradigm: "depth", Method: "shortgpt", Remove: remove}}
}

func count(g *Graph, op string) int {
	n := 0
	for _, x := range g.Nodes {
		if x.Op == op {
			n++
		}
	}
	return n
}

func TestRunsShareCalibration(t *testing.T) {
	g, err := Plan(recipe(shortgpt("a", 1), shortgpt("b", 2)), env())
	if err != nil {
		t.Fatal(err)
	}
	for op, want := range map[string]int{
		OpCaptureEmbed: 1, OpCaptureBlock: 5, OpShortGPTBI: 5, OpCalibWindows: 1,
		OpTokens: 2 /* calibration and evaluation splits */, OpPruneDepth: 2, OpPerplexity: 3, OpModelLoad: 1, OpSource: 3,
	} {
		if got := count(g, op); got != want {
			t.Errorf("%s nodes = %d, want %d", op, got, want)
		}
	}
	for _, n := range g.Nodes {
		if n.Op == OpCaptureBlock && strings.Join(n.Runs, ",") != "a,b" {
			t.Errorf("capture node used by %v, want a,b", n.Runs)
		}
	}
	// Topological order: inputs first.
	seen := map[*Node]bool{}
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			if !seen[in] {
				t.Fatalf("%s appears before its input %s", n.Label, in.Label)
			}
		}
		seen[n] = true
	}
}

func keys(g *Graph, op string) []string {
	var out []string
	for _, n := range g.Nodes {
		if n.Op == op {
			out = append(out, n.Key.String())
		}
	}
	return out
}

func TestKeys(t *testing.T) {
	base, err := Plan(recipe(shortgpt("a", 1)), env())
	if err != nil {
		t.Fatal(err)
	}
	// The output directory and run names do not change any key.
	r := recipe(shortgpt("renamed", 1))
	r.Output.Dir = "/elsewhere"
	g, err := Plan(r, env())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(keys(g, OpPerplexity)) != fmt.Sprint(keys(base, OpPerplexity)) {
		t.Error("renaming a run or moving the output changed evaluation keys")
	}
	// Moving the model file keeps keys (content addressed); changing its bytes changes them.
	e := env()
	e.files = map[string]string{"/n/moved.bin": "weights", "/m/tok.bin": "tok", "/d/text.txt": "text"}
	r = recipe(shortgpt("a", 1))
	for i := range r.Runs {
		r.Runs[i].Model.Path = "/n/moved.bin"
	}
	r.DenseModel.Path = "/n/moved.bin"
	g, err = Plan(r, e)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(keys(g, OpCaptureBlock)) != fmt.Sprint(keys(base, OpCaptureBlock)) {
		t.Error("moving the model file changed capture keys")
	}
	e.files["/n/moved.bin"] = "other weights"
	g, _ = Plan(r, e)
	if fmt.Sprint(keys(g, OpCaptureBlock)) == fmt.Sprint(keys(base, OpCaptureBlock)) {
		t.Error("changing the model's bytes kept capture keys")
	}
	// More calibration samples change the calibration chain.
	r = recipe(shortgpt("a", 1))
	r.Runs[0].Calibration.Samples = 32
	g, _ = Plan(r, env())
	if keys(g, OpCaptureEmbed)[0] == keys(base, OpCaptureEmbed)[0] {
		t.Error("changing samples kept the capture key")
	}
}

func TestStatuses(t *testing.T) {
	g, err := Plan(recipe(shortgpt("a", 1), shortgpt("b", 2)), env())
	if err != nil {
		t.Fatal(err)
	}
	tally := func(st map[*Node]Status) map[Status]int {
		m := map[Status]int{}
		for _, s := range st {
			m[s]++
		}
		return m
	}
	// Nothing cached: every node runs or is read.
	all := tally(g.Statuses(func(*Node) bool { return false }))
	if all[Skip] != 0 || all[Cached] != 0 {
		t.Errorf("empty cache: %v", all)
	}
	// Everything cached: nothing runs, only the tokenizer copy is read.
	st := g.Statuses(func(*Node) bool { return true })
	if c := tally(st); c[Run] != 0 {
		t.Errorf("full cache still runs %d nodes", c[Run])
	}
	// Only the block scores cached: a new ratio needs no capture.
	st = g.Statuses(func(n *Node) bool { return n.Op == OpShortGPTBI })
	for n, s := range st {
		if (n.Op == OpCaptureBlock || n.Op == OpCaptureEmbed) && s != Skip {
			t.Errorf("%s: status %v, want skip", n.Label, s)
		}
		if n.Op == OpPruneDepth && s != Run {
			t.Errorf("%s: status %v, want run", n.Label, s)
		}
	}
}

func TestPlanErrors(t *testing.T) {
	_, err := Plan(recipe(shortgpt("big", 5)), env())
	if err == nil {
		t.Fatal("removing every block was accepted")
	}
	want := `r.cue:7:40: runs."big".prune.remove: removing 5 blocks leaves none: the model has 5`
	if err.Error() != want {
		t.Errorf("error:\n got %s\nwant %s", err, want)
	}
	r := recipe(ir.Run{Name: "l", Prune: ir.Prune{Paradigm: "depth", Method: "shortgpt", Layers: []int{1, 7}}})
	_, err = Plan(r, env())
	if err == nil || !strings.Contains(err.Error(), `prune.layers[1]: block 7 does not exist: the model has blocks 0..4`) {
		t.Errorf("layers error: %v", err)
	}
	r = recipe(shortgpt("a", 1))
	r.Runs[0].Eval[0].Data.Split = ir.Split{From: 0.5, To: 1}
	_, err = Plan(r, env())
	if err == nil || !strings.Contains(err.Error(), "overlap the calibration documents") {
		t.Errorf("overlap error: %v", err)
	}
	e := env()
	delete(e.files, "/d/text.txt")
	_, err = Plan(recipe(shortgpt("a", 1)), e)
	if err == nil || !strings.Contains(err.Error(), "no such file: /d/text.txt") {
		t.Errorf("missing data error: %v", err)
	}
}
