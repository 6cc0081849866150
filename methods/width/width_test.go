package width_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"lrmc/cache"
	"lrmc/compiler"
	"lrmc/compiler/ir"
	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/internal/shareddata"
	_ "lrmc/methods/all"
	"lrmc/methods/stats/capture"
	"lrmc/methods/stats/inputstats"
	"lrmc/methods/stats/taylor"
	"lrmc/planner"
)

// recipe is stories260K pruned by each width method at each ratio.
func recipe(t *testing.T, out string, ratios ...float64) *ir.Recipe {
	t.Helper()
	model := ir.Model{Path: shareddata.Path(t, "models", "stories260K", "stories260K.bin"), Format: "auto"}
	text := shareddata.Path(t, "text", "tinystories", "tinystories_val.txt")
	eval := []ir.Eval{{Task: "perplexity", Data: ir.Data{Path: text, Format: "text", Split: ir.Split{From: 0.9, To: 1}}, Samples: 8, SeqLen: 128}}
	cal := ir.Calibration{Data: ir.Data{Path: text, Format: "text", Split: ir.Split{From: 0, To: 0.9}}, Samples: 8, SeqLen: 128, Seed: 1}
	r := &ir.Recipe{File: "test.cue", Dense: true, DenseModel: model, DenseEval: eval, Output: ir.Output{Dir: out, Formats: []string{"gguf"}}}
	for _, ratio := range ratios {
		for _, m := range []struct {
			name string
			o    ir.Options
		}{
			{"llm-pruner", ir.Options{"layerStart": 1, "layerEnd": 4, "importance": "element"}},
			{"wanda-sp", ir.Options{}},
			{"flap", ir.Options{"compensate": true}},
		} {
			m.o["ratio"] = ratio
			r.Runs = append(r.Runs, ir.Run{Name: m.name + "-" + string(rune('0'+int(ratio*10))), Model: model, Eval: eval,
				Calibration: cal, Prune: ir.Prune{Paradigm: "width", Method: m.name, Options: m.o}})
		}
	}
	return r
}

type recorder struct {
	mu     sync.Mutex
	events []executor.Event
}

func (r *recorder) add(e executor.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) started(op string) int {
	n := 0
	for _, e := range r.events {
		if e.Event == executor.EventStarted && e.Op == op {
			n++
		}
	}
	return n
}

func apply(t *testing.T, dir string, r *ir.Recipe) *recorder {
	t.Helper()
	store, err := cache.Open(dir, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	env := &ops.Env{Files: store}
	g, err := planner.Plan(r, env)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	ex, err := executor.New(ops.Registry(), store, executor.Options{Events: rec.add, Sources: env})
	if err != nil {
		t.Fatal(err)
	}
	res, err := ex.Run(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ex.WriteOutputs(g, res); err != nil {
		t.Fatal(err)
	}
	return rec
}

// Each width method prunes stories260K (fewer parameters, higher
// perplexity), and extending the ratio sweep reruns no statistics node:
// neither the Taylor gradients, the capture chain, nor the input
// statistics, only the three decisions.
func TestRatioSweepReusesStatistics(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	rec := apply(t, dir, recipe(t, out, 0.2))
	if n := rec.started(inputstats.Op); n != 5 {
		t.Errorf("gathered input statistics of %d blocks, want 5 (shared by wanda-sp and flap)", n)
	}
	if n := rec.started(taylor.Op); n != 1 {
		t.Errorf("ran %d taylor nodes, want 1", n)
	}
	rec = apply(t, dir, recipe(t, out, 0.2, 0.4))
	for _, op := range []string{inputstats.Op, taylor.Op, capture.OpEmbed, capture.OpBlock} {
		if n := rec.started(op); n != 0 {
			t.Errorf("the 0.4 runs reran %d %s nodes", n, op)
		}
	}
	for _, op := range []string{"width.llm-pruner", "width.wanda-sp", "width.flap"} {
		if n := rec.started(op); n != 1 {
			t.Errorf("the 0.4 runs ran %d %s decisions, want 1", n, op)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res ops.Results
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	dense := res.Dense["params"].(float64)
	for _, m := range []string{"llm-pruner", "wanda-sp", "flap"} {
		lo, hi := res.Runs[m+"-2"], res.Runs[m+"-4"]
		if !(hi["params"].(float64) < lo["params"].(float64) && lo["params"].(float64) < dense) {
			t.Errorf("%s: params %v at 0.2, %v at 0.4, dense %v", m, lo["params"], hi["params"], dense)
		}
		if !(lo["perplexity"].(float64) > res.Dense["perplexity"].(float64)) {
			t.Errorf("%s-2: perplexity %v not above dense %v", m, lo["perplexity"], res.Dense["perplexity"])
		}
		if _, err := os.Stat(filepath.Join(out, m+"-4", "model.gguf")); err != nil {
			t.Errorf("%s-4: %v", m, err)
		}
	}
}

// vet rejects a width run without ratio, another method's field and an
// out-of-range ratio, each at the recipe position; planning rejects
// LLM-Pruner's default block range on a model too shallow for it.
func TestVetAndPlanErrors(t *testing.T) {
	model := shareddata.Path(t, "models", "stories260K", "stories260K.bin")
	text := shareddata.Path(t, "text", "tinystories", "tinystories_val.txt")
	head := `model: path: "` + model + `"
calibration: {data: {path: "` + text + `", format: "text"}, samples: 8, seqLen: 64, seed: 1}
dense: false
`
	path := filepath.Join(t.TempDir(), "w.cue")
	write := func(runs string) {
		if err := os.WriteFile(path, []byte(head+runs), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`runs: {
	a: prune: {paradigm: "width", method: "llm-pruner"}
	b: prune: {paradigm: "width", method: "wanda-sp", ratio: 0.3, layerStart: 1}
	c: prune: {paradigm: "width", method: "flap", ratio: 1.5}
}
`)
	err := compiler.Vet(path)
	for _, want := range []string{
		`w.cue:5:12: runs."a".prune.ratio: width pruning needs ratio, the fraction of parameters to remove`,
		`w.cue:6:76: runs."b".prune.layerStart: layerStart is a field of width/llm-pruner; method is width/wanda-sp`,
		`w.cue:7:55: runs."c".prune.ratio: invalid value 1.5 (out of bound <1)`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("vet: %v\nwant %q", err, want)
		}
	}
	write(`runs: d: prune: {paradigm: "width", method: "llm-pruner", ratio: 0.2}
`)
	r, err := compiler.Compile(path)
	if err != nil {
		t.Fatal(err)
	}
	store, err := cache.Open(t.TempDir(), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	_, err = planner.Plan(r, &ops.Env{Files: store})
	if err == nil || !strings.Contains(err.Error(), `runs."d".prune.layerEnd: blocks [4, 3) to prune are empty or outside the model's 5 blocks`) {
		t.Errorf("plan: %v", err)
	}
}
