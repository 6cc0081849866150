package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lrmc/digest"
	"lrmc/executor"
	"lrmc/planner"
)

var updatePlan = flag.Bool("update-plan", false, "rewrite testdata/plan.golden.json and plan.golden.txt")

// planFixture is a small graph of two runs, a and b, with a record of an
// earlier apply of run a (and of the results) that differs from it in
// every way a reason names.
func planFixture() (*planner.Graph, planInputs) {
	var nodes []*planner.Node
	mk := func(op string, version int, params string, label string, runs []string, in ...*planner.Node) *planner.Node {
		n := &planner.Node{Key: digest.Of([]byte(op + label)), Op: op, Version: version, Params: json.RawMessage(params), Label: label, Runs: runs, Inputs: in}
		if op == planner.OpSource {
			n.Source = "/data/" + label
		}
		nodes = append(nodes, n)
		return n
	}
	ab, a, b := []string{"a", "b"}, []string{"a"}, []string{"b"}
	tok := mk(planner.OpSource, 1, `{"digest":"t"}`, "tok.bin", ab)
	evalTxt := mk(planner.OpSource, 1, `{"digest":"e2"}`, "eval.txt", ab)
	model := mk(planner.OpModelLoad, 1, `{"format":"llama2c"}`, "load model.bin", ab, tok)
	tokens := mk(planner.OpTokens, 1, `{"from":0.9,"to":1}`, "tokenize eval.txt", ab, evalTxt, tok)
	windows := mk(planner.OpEvalWindows, 1, `{"samples":4,"seqLen":64}`, "eval windows 4×64", ab, tokens)
	ppl := mk(planner.OpPerplexity, 2, `{"seqLen":64}`, "perplexity", a, model, windows)
	ppl2 := mk(planner.OpPerplexity, 2, `{"seqLen":64}`, "perplexity again", a, model, windows)
	ma := mk(planner.OpMetrics, 2, `{"tasks":["perplexity"]}`, "metrics a", a, ppl, ppl2)
	exa := mk(planner.OpExportLlama2c, 1, `{}`, "export llama2c", a, model)
	train := mk(planner.OpRecover, 1, `{"steps":2,"batch":1,"seqLen":8,"accumulation":2}`, "recover lora", b, model, tokens)
	mc := mk(planner.OpMCScore, 2, `{"task":"piqa"}`, "piqa log-likelihoods", b, model)
	mb := mk(planner.OpMetrics, 2, `{"tasks":["piqa"]}`, "metrics b", b, mc, train)
	res := mk(planner.OpResults, 1, `{"runs":["a","b"]}`, "results", []string{""}, ma, mb)
	g := &planner.Graph{Nodes: nodes, Targets: []*planner.Node{ma, exa, mb, res}, Results: res, OutDir: "/out"}

	status := map[*planner.Node]planner.Status{
		tok: planner.Read, evalTxt: planner.Read, model: planner.Run, tokens: planner.Run, windows: planner.Run,
		ppl: planner.Run, ppl2: planner.Run, ma: planner.Run, exa: planner.Cached, train: planner.Run, mc: planner.Run,
		mb: planner.Run, res: planner.Run,
	}
	// The record of run a: eval.txt had other bytes, the windows were 8,
	// perplexity was at version 1, there was one perplexity, and the
	// tokens node is the same (its result was evicted).
	rec := func(n *planner.Node, pos, params string, version int, inputs ...string) executor.NodeRecord {
		r := executor.NodeRecord{Pos: pos, Key: n.Key.String(), Version: version, Label: n.Label, Params: json.RawMessage(params)}
		if inputs == nil {
			for _, in := range n.Inputs {
				r.Inputs = append(r.Inputs, in.Key.String())
			}
		} else {
			r.Inputs = inputs
		}
		return r
	}
	state := &executor.State{Version: 1, Runs: map[string]executor.RunRecord{
		"a": {Recipe: "/r.cue", Nodes: []executor.NodeRecord{
			rec(tok, "source#0", `{"digest":"t"}`, 1),
			rec(evalTxt, "source#1", `{"digest":"e1"}`, 1),
			rec(model, "model.load#0", `{"format":"llama2c"}`, 1),
			rec(tokens, "data.tokens#0", `{"from":0.9,"to":1}`, 1),
			rec(windows, "eval.windows#0", `{"samples":8,"seqLen":64}`, 1),
			rec(ppl, "eval.perplexity#0", `{"seqLen":64}`, 1),
			rec(ma, "report.metrics#0", `{"tasks":["perplexity"]}`, 2, "old-perplexity-key"),
		}},
		"": {Recipe: "/r.cue", Nodes: []executor.NodeRecord{rec(res, "report.results#0", `{"runs":["a"]}`, 1)}},
	}}
	in := planInputs{
		recipe: "r.cue", status: status, state: state,
		stale: []executor.StaleDir{
			{Run: "old", Path: "/out/old", Remove: true},
			{Run: "mine", Path: "/out/mine", Reason: "lrmc has no record of writing it"},
		},
		blocks: func(run string) int { return map[string]int{"a": 4, "b": 6}[run] },
		size: func(n *planner.Node) int64 {
			return map[string]int64{"tok.bin": 1000, "eval.txt": 2000, "export llama2c": 300}[n.Label]
		},
	}
	return g, in
}

func TestPlanViewGolden(t *testing.T) {
	g, in := planFixture()
	doc := buildPlan(g, in)
	var js bytes.Buffer
	enc := json.NewEncoder(&js)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		t.Fatal(err)
	}
	var txt bytes.Buffer
	doc.render(&txt)
	for _, f := range []struct {
		name string
		got  []byte
	}{{"plan.golden.json", js.Bytes()}, {"plan.golden.txt", txt.Bytes()}} {
		path := filepath.Join("testdata", f.name)
		if *updatePlan {
			if err := os.WriteFile(path, f.got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(f.got, want) {
			t.Errorf("%s differs (go test -run TestPlanViewGolden -update-plan to accept):\n%s", f.name, f.got)
		}
	}

	// What the golden file holds, checked on its own.
	reasons := map[string]string{}
	var tokenBlocks int64
	for _, grp := range doc.Groups {
		for _, n := range grp.Nodes {
			if n.Reason != nil {
				reasons[n.Label] = string(n.Reason.Kind) + " " + n.Reason.Detail
			}
			tokenBlocks += n.TokenBlocks
		}
	}
	for label, want := range map[string]string{
		"eval.txt":             "file-changed /data/eval.txt",
		"load model.bin":       "never-cached ",
		"tokenize eval.txt":    "not-cached ",
		"eval windows 4×64":    "params-changed samples 8 → 4",
		"perplexity":           "version-bumped eval.perplexity v1 → v2",
		"perplexity again":     "new ",
		"metrics a":            "input-changed 2 inputs, were 1",
		"recover lora":         "new-run ",
		"piqa log-likelihoods": "new-run ",
		"results":              `params-changed runs ["a"] → ["a","b"]`,
	} {
		if reasons[label] != want {
			t.Errorf("%s: reason %q, want %q", label, reasons[label], want)
		}
	}
	if _, ok := reasons["tok.bin"]; ok {
		t.Error("an unchanged source has a reason")
	}
	// perplexity ×2: 4 samples × 64 tokens × 4 blocks; training: 3 × 2
	// steps × 1 × 2 accumulation × 8 tokens × 6 blocks.
	if want := int64(2*4*64*4 + 3*2*1*2*8*6); tokenBlocks != want || doc.Work.TokenBlocks != want {
		t.Errorf("token·blocks %d (work says %d), want %d", tokenBlocks, doc.Work.TokenBlocks, want)
	}
	if doc.Work.DataDependent != 1 || doc.Work.CacheBytes != 300 || doc.Work.SourceBytes != 3000 {
		t.Errorf("work %+v", doc.Work)
	}
	if doc.Cache != (planCache{Hits: 1, Lookups: 10}) {
		t.Errorf("cache %+v, want 1 hit of 10 (sources and model.load are no lookups)", doc.Cache)
	}
	if len(doc.Groups) != 4 || strings.Join(doc.Groups[0].Runs, ",") != "a,b" || doc.Groups[3].Runs[0] != "" {
		t.Errorf("groups %v", doc.Groups)
	}
}
