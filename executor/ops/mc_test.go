package ops_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lrmc/compiler/ir"
	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/internal/shareddata"
	"lrmc/planner"
)

// withEvals replaces every run's evaluations (and the dense baseline's).
func withEvals(r *ir.Recipe, evals ...ir.Eval) *ir.Recipe {
	r.DenseEval = evals
	for i := range r.Runs {
		r.Runs[i].Eval = evals
	}
	return r
}

// defs are the definitions of schema #Tasks that the tests use.
var defs = map[string]*ir.TaskDef{
	"piqa":      {Text: "Question: {{goal}}\nAnswer:", Choices: []string{"{{sol1}}", "{{sol2}}"}, Gold: "label"},
	"hellaswag": {Text: "{{ctx}}", ChoicesField: "endings", Gold: "label", Preprocess: "hellaswag"},
}

func mcEval(t *testing.T, name, task string, samples int, file ...string) ir.Eval {
	return ir.Eval{Name: name, Task: task, Samples: samples, Def: defs[task],
		Data: ir.Data{Path: shareddata.Path(t, append([]string{"text"}, file...)...), Format: "jsonl", Split: ir.Split{From: 0, To: 1}}}
}

// Multiple-choice evaluations are cached nodes: a rerun runs nothing, and
// adding a task runs only that task's nodes (and the reports that gather
// them). Two perplexity evaluations keep their own names.
func TestMultipleChoiceCachesByTask(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	text := shareddata.Path(t, "text", "tinystories", "tinystories_val.txt")
	ppl := func(name string, seqLen int) ir.Eval {
		return ir.Eval{Name: name, Task: "perplexity", Samples: 4, SeqLen: seqLen,
			Data: ir.Data{Path: text, Format: "text", Split: ir.Split{From: 0.9, To: 1}}}
	}
	piqa := mcEval(t, "piqa", "piqa", 20, "piqa", "piqa_valid_labeled.jsonl")
	evals := []ir.Eval{ppl("ppl", 128), ppl("ppl64", 64), piqa}

	rec := &recorder{}
	if err := apply(t, context.Background(), dir, withEvals(stories(t, out, 1), evals...), rec); err != nil {
		t.Fatal(err)
	}
	// One set of items serves both models (one tokenizer); each model is
	// scored once.
	for op, want := range map[string]int{planner.OpMCItems: 1, planner.OpMCScore: 2, planner.OpMCAccuracy: 2} {
		if n := rec.started(op); n != want {
			t.Errorf("first apply ran %s %d times, want %d", op, n, want)
		}
	}
	first := readResults(t, out)
	var res ops.Results
	if err := json.Unmarshal(first, &res); err != nil {
		t.Fatal(err)
	}
	tasks, _ := res.Runs["shortgpt-1"]["tasks"].(map[string]any)
	for _, name := range []string{"ppl", "ppl64", "piqa"} {
		if _, ok := tasks[name]; !ok {
			t.Errorf("shortgpt-1 metrics have no evaluation %q: %v", name, tasks)
		}
	}
	p128, _ := tasks["ppl"].(map[string]any)["perplexity"].(float64)
	p64, _ := tasks["ppl64"].(map[string]any)["perplexity"].(float64)
	if p128 == p64 || res.Runs["shortgpt-1"]["perplexity"] != p128 {
		t.Errorf("perplexities ppl %v, ppl64 %v, headline %v: want two values, the first the headline", p128, p64, res.Runs["shortgpt-1"]["perplexity"])
	}

	// The samples file agrees with the accuracy.
	for _, run := range []string{"dense", "shortgpt-1"} {
		samples := readSamples(t, filepath.Join(out, run, "samples", "piqa.jsonl"))
		if len(samples) != 20 {
			t.Fatalf("%s: %d samples, want 20", run, len(samples))
		}
		var correct float64
		for i, s := range samples {
			if len(s.LogLikelihoods) != 2 || len(s.Choices) != 2 || !strings.HasPrefix(s.Context, "Question: ") || !strings.HasSuffix(s.Context, "\nAnswer:") {
				t.Fatalf("%s: sample %d malformed: %+v", run, i, s)
			}
			pred := 0
			if s.LogLikelihoods[1] > s.LogLikelihoods[0] {
				pred = 1
			}
			if s.Pred != pred || s.Acc != (pred == s.Gold) || s.Doc != i {
				t.Errorf("%s: sample %d: pred %d acc %v doc %d for lls %v gold %d", run, i, s.Pred, s.Acc, s.Doc, s.LogLikelihoods, s.Gold)
			}
			if s.Acc {
				correct++
			}
		}
		m := res.Dense
		if run != "dense" {
			m = res.Runs[run]
		}
		e, _ := m["tasks"].(map[string]any)["piqa"].(map[string]any)
		if acc, _ := e["acc"].(float64); math.Abs(acc-correct/20) > 1e-12 || e["items"] != 20.0 {
			t.Errorf("%s: piqa acc %v over %v items, samples say %v of 20", run, e["acc"], e["items"], correct)
		}
	}

	// A rerun runs nothing and changes nothing.
	rec = &recorder{}
	if err := apply(t, context.Background(), dir, withEvals(stories(t, out, 1), evals...), rec); err != nil {
		t.Fatal(err)
	}
	if n := rec.started(""); n != 0 {
		t.Errorf("rerun ran %d ops, want 0", n)
	}
	if !bytes.Equal(first, readResults(t, out)) {
		t.Error("rerun changed results.json")
	}

	// Adding HellaSwag runs its nodes and the reports, nothing else.
	rec = &recorder{}
	hs := mcEval(t, "hellaswag", "hellaswag", 8, "hellaswag", "hellaswag_val_first2000.jsonl")
	if err := apply(t, context.Background(), dir, withEvals(stories(t, out, 1), append(evals, hs)...), rec); err != nil {
		t.Fatal(err)
	}
	for _, e := range rec.events {
		if e.Event != executor.EventStarted {
			continue
		}
		switch e.Op {
		case planner.OpMCItems, planner.OpMCScore, planner.OpMCAccuracy:
			if !strings.HasPrefix(e.Label, "hellaswag ") {
				t.Errorf("adding hellaswag ran %s %q", e.Op, e.Label)
			}
		case planner.OpMetrics, planner.OpResults, planner.OpModelLoad, opModelDepth:
			// The reports gather the new column; the models are loaded
			// (never cached) to be scored.
		default:
			t.Errorf("adding hellaswag ran %s %q", e.Op, e.Label)
		}
	}
	if n := rec.started(planner.OpMCScore); n != 2 {
		t.Errorf("adding hellaswag scored %d times, want 2 (dense and shortgpt-1)", n)
	}
}

func readSamples(t *testing.T, path string) []ops.MCSample {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []ops.MCSample
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var s ops.MCSample
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, s)
	}
	return out
}
