package main

import (
	"encoding/json"
	"strings"
	"testing"

	"lrmc/executor/ops"
	kdyn "lrmc/kernels/dynamic"
	"lrmc/planner"
)

// The table has one column per metric of every named evaluation after the
// headline perplexity (the first perplexity evaluation), in the order
// written; a run without an evaluation shows "-".
func TestTableColumnsPerNamedEval(t *testing.T) {
	// As read back from results.json (names as []any).
	var r ops.Results
	err := json.Unmarshal([]byte(`{
	  "dense": {"blocks": 5, "params": 100, "perplexity": 6, "evals": ["ppl", "piqa", "ppl64"],
	    "tasks": {"ppl": {"task": "perplexity", "perplexity": 6}, "ppl64": {"task": "perplexity", "perplexity": 7.5},
	              "piqa": {"task": "piqa", "acc": 0.5, "acc_norm": 0.25}}},
	  "runs": {"x": {"blocks": 4, "params": 80, "perplexity": 12, "removed": [2], "evals": ["ppl"],
	    "tasks": {"ppl": {"task": "perplexity", "perplexity": 12}}}}}`), &r)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	printResults(&b, r)
	want := `run    blocks kept  removed  params  perplexity  vs dense  piqa.acc  piqa.acc_norm  ppl64.perplexity
dense  5            -        100     6.0000      -         0.5000    0.2500         7.5000
x      4            [2]      80      12.0000     +100.0%   -         -              -
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

// Measured speeds get two columns, each run's with its ratio to dense's,
// and a note that they are measurements and where they were taken.
func TestTableSpeedColumns(t *testing.T) {
	var r ops.Results
	err := json.Unmarshal([]byte(`{
	  "dense": {"blocks": 5, "params": 100, "perplexity": 6, "evals": ["ppl"], "tasks": {"ppl": {"task": "perplexity", "perplexity": 6}},
	    "measuredSpeed": {"prefillTokensPerS": 1000, "decodeTokensPerS": 200}, "measuredOn": "Test CPU, 2 CPUs, 2 threads; one prefill of 128 tokens and 32 greedy decode steps, median of 3"},
	  "runs": {"x": {"blocks": 4, "params": 80, "perplexity": 12, "removed": [2], "evals": ["ppl"], "tasks": {"ppl": {"task": "perplexity", "perplexity": 12}},
	    "measuredSpeed": {"prefillTokensPerS": 1250, "decodeTokensPerS": 250}, "measuredOn": "Test CPU, 2 CPUs, 2 threads; one prefill of 128 tokens and 32 greedy decode steps, median of 3"}}}`), &r)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	printResults(&b, r)
	want := `run    blocks kept  removed  params  perplexity  vs dense  prefill tok/s*  decode tok/s*
dense  5            -        100     6.0000      -         1000.0          200.0
x      4            [2]      80      12.0000     +100.0%   1250.0 (1.25×)  250.0 (1.25×)
* measured on this machine, not estimated: Test CPU, 2 CPUs, 2 threads; one prefill of 128 tokens and 32 greedy decode steps, median of 3
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

// A generation evaluation shows its answer metrics, pass@1 and the mean
// think and answer lengths, not its other columns.
func TestTableGenerationColumns(t *testing.T) {
	var r ops.Results
	err := json.Unmarshal([]byte(`{
	  "dense": {"blocks": 5, "params": 100, "perplexity": 6, "evals": ["gsm8k", "math"],
	    "tasks": {"gsm8k": {"task": "gsm8k", "exact_match_strict": 0.25, "exact_match_flexible": 0.5, "pass@1": 0.5,
	                        "think_tokens_mean": 120, "answer_tokens_mean": 8, "truncated_rate": 0.1, "items": 4},
	              "math": {"task": "math", "accuracy": 0.75, "pass@1": 0.5, "think_tokens_mean": 0, "answer_tokens_mean": 3}}},
	  "runs": {}}`), &r)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	printResults(&b, r)
	header := strings.Fields(strings.SplitN(b.String(), "\n", 2)[0])
	want := []string{"run", "blocks", "kept", "removed", "params", "perplexity", "vs", "dense",
		"gsm8k.exact_match_strict", "gsm8k.exact_match_flexible", "gsm8k.pass@1", "gsm8k.think_tokens_mean", "gsm8k.answer_tokens_mean",
		"math.accuracy", "math.pass@1", "math.think_tokens_mean", "math.answer_tokens_mean"}
	if strings.Join(header, " ") != strings.Join(want, " ") {
		t.Errorf("header %q, want %q", header, want)
	}
	if !strings.Contains(b.String(), "0.2500") || !strings.Contains(b.String(), "120.0000") {
		t.Errorf("table:\n%s", b.String())
	}
}

// A routed run adds the dynamic columns: its routers' method and target
// ratio, the skip ratio realised on its headline perplexity and the
// multiply-adds saved there; its speed ratio is the one measured against
// its own dense base (Speedup), not against the dense row's.
func TestTableDynamicColumns(t *testing.T) {
	var r ops.Results
	err := json.Unmarshal([]byte(`{
	  "dense": {"blocks": 5, "params": 100, "perplexity": 6, "evals": ["ppl"], "tasks": {"ppl": {"task": "perplexity", "perplexity": 6}},
	    "measuredSpeed": {"prefillTokensPerS": 1000, "decodeTokensPerS": 200}, "measuredOn": "M"},
	  "runs": {"mod-4": {"blocks": 5, "params": 100, "perplexity": 9, "evals": ["ppl"],
	    "dynamic": {"method": "mod", "ratio": 0.4, "kvRule": "absent"},
	    "tasks": {"ppl": {"task": "perplexity", "perplexity": 9, "dynamic": {"skip": 0.3875, "flopSaving": 0.25}}},
	    "measuredSpeed": {"prefillTokensPerS": 1500, "decodeTokensPerS": 220, "prefillSpeedup": 1.4, "decodeSpeedup": 1.25}, "measuredOn": "M"}}}`), &r)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	printResults(&b, r)
	want := `run    blocks kept  removed  params  perplexity  vs dense  routers  skip ratio  skipped  MACs saved  prefill tok/s*  decode tok/s*
dense  5            -        100     6.0000      -         -        -           -        -           1000.0          200.0
mod-4  5            -        100     9.0000      +50.0%    mod      0.4         38.8%    25.0%       1500.0 (1.40×)  220.0 (1.25×)
* measured on this machine, not estimated: M
routers: ` + kdyn.Note + `
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

// Params and blocks print as integers whether the results are fresh (ints,
// as the metrics op makes them) or read back from the cache (decoded by
// the results op's codec, JSON's float64), and both tables are the same.
func TestTableCountsFromCache(t *testing.T) {
	fresh := ops.Results{
		Dense: ops.Metrics{"blocks": 24, "params": int64(494032768), "perplexity": 9.5, "evals": []string{"ppl"},
			"tasks": map[string]any{"ppl": map[string]any{"task": "perplexity", "perplexity": 9.5}}},
		Runs: map[string]ops.Metrics{"x": {"blocks": 20, "params": int64(20201472), "perplexity": 12.0, "removed": []int{3, 7},
			"evals": []string{"ppl"}, "tasks": map[string]any{"ppl": map[string]any{"task": "perplexity", "perplexity": 12.0}}}},
	}
	op := ops.Registry()[planner.OpResults]
	b, err := op.Encode(fresh)
	if err != nil {
		t.Fatal(err)
	}
	v, err := op.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	cached, ok := v.(ops.Results)
	if !ok {
		t.Fatalf("decoded %T", v)
	}
	if _, ok := cached.Runs["x"]["params"].(float64); !ok {
		t.Fatalf("cached params are %T; this test wants JSON's float64", cached.Runs["x"]["params"])
	}
	var f, c strings.Builder
	printResults(&f, fresh)
	printResults(&c, cached)
	if f.String() != c.String() {
		t.Errorf("fresh table:\n%s\ncached table:\n%s", f.String(), c.String())
	}
	for _, want := range []string{" 494032768 ", " 20201472 "} {
		if !strings.Contains(c.String(), want) {
			t.Errorf("cached table lacks %q:\n%s", want, c.String())
		}
	}
	if strings.Contains(c.String(), "e+") {
		t.Errorf("cached table prints a count in exponent form:\n%s", c.String())
	}
}
