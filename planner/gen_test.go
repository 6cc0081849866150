package planner_test

import (
	"strings"
	"testing"

	"lrmc/compiler/ir"
	. "lrmc/planner"
)

func genEval(extraction string, maxNew int) ir.Eval {
	return ir.Eval{Name: "gsm8k", Field: "eval.gsm8k", Task: "gsm8k", Samples: 4,
		Data: ir.Data{Path: "/d/gsm8k.jsonl", Format: "jsonl", Split: ir.Split{From: 0, To: 1}},
		Gen:  &ir.GenTask{Text: "Q: {{question}}", Target: "{{answer}}", MaxNewTokens: maxNew, Extraction: extraction, N: 1, TopP: 1}}
}

func genRecipe(e ir.Eval) *ir.Recipe {
	r := recipe(shortgpt("a", 1))
	r.DenseEval = append(r.DenseEval, e)
	r.Runs[0].Eval = append(r.Runs[0].Eval, e)
	return r
}

func keysOf(g *Graph, op string) map[string]bool {
	out := map[string]bool{}
	for _, n := range g.Nodes {
		if n.Op == op {
			out[n.Key.String()] = true
		}
	}
	return out
}

// A generation evaluation plans one set of items for every model, one
// generation per model, and its scores and metrics; a new extraction
// changes the scores' keys but not the generations', so it does not
// generate again.
func TestGenerationNodes(t *testing.T) {
	e := env()
	e.files["/d/gsm8k.jsonl"] = "docs"
	g, err := Plan(genRecipe(genEval("gsm8k", 64)), e)
	if err != nil {
		t.Fatal(err)
	}
	for op, want := range map[string]int{OpGenItems: 1, OpGenerate: 2, OpGenScore: 2, OpGenMetrics: 2} {
		if got := count(g, op); got != want {
			t.Errorf("%s nodes = %d, want %d", op, got, want)
		}
	}
	var samples []string
	for _, o := range g.Outputs {
		if strings.HasSuffix(o.Path, "gsm8k.jsonl") {
			samples = append(samples, o.Path)
		}
	}
	if strings.Join(samples, ",") != "dense/samples/gsm8k.jsonl,a/samples/gsm8k.jsonl" {
		t.Errorf("samples outputs %v", samples)
	}
	g2, err := Plan(genRecipe(genEval("exact", 64)), e)
	if err != nil {
		t.Fatal(err)
	}
	for op, same := range map[string]bool{OpGenItems: true, OpGenerate: true, OpGenScore: false, OpGenMetrics: false} {
		a, b := keysOf(g, op), keysOf(g2, op)
		for k := range a {
			if b[k] != same {
				t.Errorf("%s: key %s kept %v after a new extraction, want %v", op, k[:12], b[k], same)
			}
		}
	}
	_, err = Plan(genRecipe(genEval("gsm8k", 512)), e)
	if err == nil || !strings.Contains(err.Error(), "eval.gsm8k.maxNewTokens: maxNewTokens 512 leaves no room for a prompt in the model's context of 512 tokens") {
		t.Errorf("maxNewTokens at the context: %v", err)
	}
}
