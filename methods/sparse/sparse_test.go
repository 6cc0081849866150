package sparse_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lrmc/cache"
	"lrmc/compiler"
	"lrmc/compiler/ir"
	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/internal/shareddata"
	"lrmc/kernels/llama2c"
	_ "lrmc/methods/all"
	"lrmc/methods/sparse"
	"lrmc/methods/stats/capture"
	"lrmc/methods/stats/inputstats"
	"lrmc/planner"
)

// recipe is a sweep of sparse runs on the real stories260K, small enough
// for a test: name → prune options.
func recipe(t *testing.T, out string, runs map[string]ir.Options) *ir.Recipe {
	t.Helper()
	model := ir.Model{Path: shareddata.Path(t, "models", "stories260K", "stories260K.bin"), Format: "auto"}
	text := shareddata.Path(t, "text", "tinystories", "tinystories_val.txt")
	eval := []ir.Eval{{Task: "perplexity", Data: ir.Data{Path: text, Format: "text", Split: ir.Split{From: 0.9, To: 1}}, Samples: 8, SeqLen: 128}}
	r := &ir.Recipe{File: "test.cue", Dense: true, DenseModel: model, DenseEval: eval, Output: ir.Output{Dir: out, Formats: []string{"llama2c"}}}
	for name, o := range runs {
		method, _ := o["method"].(string)
		opts := ir.Options{}
		for k, v := range o {
			if k != "method" {
				opts[k] = v
			}
		}
		r.Runs = append(r.Runs, ir.Run{
			Name: name, Model: model, Eval: eval,
			Calibration: ir.Calibration{Data: ir.Data{Path: text, Format: "text", Split: ir.Split{From: 0, To: 0.9}}, Samples: 16, SeqLen: 128, Seed: 1},
			Prune:       ir.Prune{Paradigm: "sparse", Method: method, Options: opts},
		})
	}
	return r
}

// apply plans and runs r on the cache in dir, writes its outputs, and
// returns the ops that started, counted by name.
func apply(t *testing.T, dir string, r *ir.Recipe) (map[string]int, error) {
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
	started := map[string]int{}
	ex, err := executor.New(ops.Registry(), store, executor.Options{Sources: env, Events: func(e executor.Event) {
		if e.Event == executor.EventStarted {
			started[e.Op]++
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := ex.Run(context.Background(), g)
	if err != nil {
		return started, err
	}
	_, err = ex.WriteOutputs(g, res)
	return started, err
}

func results(t *testing.T, out string) ops.Results {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res ops.Results
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// TestSweepReusesStatistics: a first apply computes each block's
// statistics once per kind (norms; norms and XᵀX) on one shared capture
// chain; a second recipe with other sparsities and patterns, on the same
// cache, runs pruning and evaluation again but no statistics and no
// capture, as the event stream shows. The pruned models reach the asked
// sparsity exactly, Wanda and SparseGPT beat magnitude on held-out
// perplexity, and the exported llama2.c files hold the zeros.
func TestSweepReusesStatistics(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	started, err := apply(t, dir, recipe(t, out, map[string]ir.Options{
		"magnitude-50": {"method": "magnitude", "sparsity": 0.5},
		"wanda-50":     {"method": "wanda", "sparsity": 0.5},
		"sparsegpt-50": {"method": "sparsegpt", "sparsity": 0.5, "blockSize": 128, "dampening": 0.01},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if started[inputstats.Op] != 10 || started[capture.OpBlock] != 4 || started[capture.OpEmbed] != 1 {
		t.Errorf("first apply: %d statistics (want 5 blocks × 2 kinds), %d block captures (want 4), %d embeddings (want 1)",
			started[inputstats.Op], started[capture.OpBlock], started[capture.OpEmbed])
	}
	res := results(t, out)
	dense := res.Dense["perplexity"].(float64)
	ppl := map[string]float64{}
	for name, m := range res.Runs {
		ppl[name] = m["perplexity"].(float64)
		if m["sparsity"] != 0.5 || m["sparsityTarget"] != "0.5" {
			t.Errorf("%s: sparsity %v (target %v), want exactly 0.5", name, m["sparsity"], m["sparsityTarget"])
		}
		if ppl[name] <= dense {
			t.Errorf("%s: perplexity %v not above dense %v", name, ppl[name], dense)
		}
		// The export is the pruned model: dense tensors with the zeros.
		m2, err := llama2c.Load(filepath.Join(out, name, "model.bin"))
		if err != nil {
			t.Fatal(err)
		}
		var zeros int64
		for i := range m2.Layers {
			l := &m2.Layers[i]
			for _, w := range [][]float32{l.Wq, l.Wk, l.Wv, l.Wo, l.W1, l.W2, l.W3} {
				for _, v := range w {
					if v == 0 {
						zeros++
					}
				}
			}
		}
		if float64(zeros) != m["zeroWeights"] {
			t.Errorf("%s: exported model has %d zero projection weights, metrics say %v", name, zeros, m["zeroWeights"])
		}
	}
	t.Logf("perplexity: dense %.3f, magnitude %.3f, wanda %.3f, sparsegpt %.3f", dense, ppl["magnitude-50"], ppl["wanda-50"], ppl["sparsegpt-50"])
	if !(ppl["wanda-50"] < ppl["magnitude-50"] && ppl["sparsegpt-50"] < ppl["magnitude-50"]) {
		t.Errorf("calibrated methods do not beat magnitude: %v", ppl)
	}

	out2 := t.TempDir()
	started, err = apply(t, dir, recipe(t, out2, map[string]ir.Options{
		"wanda-2of4":     {"method": "wanda", "pattern": "2:4"},
		"wanda-30":       {"method": "wanda", "sparsity": 0.3},
		"sparsegpt-2of4": {"method": "sparsegpt", "pattern": "2:4", "blockSize": 128, "dampening": 0.01},
		"sparsegpt-70":   {"method": "sparsegpt", "sparsity": 0.7, "blockSize": 128, "dampening": 0.01},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if started[inputstats.Op] != 0 || started[capture.OpBlock] != 0 || started[capture.OpEmbed] != 0 {
		t.Errorf("the sweep reran %d statistics, %d captures, %d embeddings; want none", started[inputstats.Op], started[capture.OpBlock], started[capture.OpEmbed])
	}
	if started[sparse.OpPrune] != 4 || started[sparse.OpSummary] != 4 {
		t.Errorf("the sweep pruned %d models and summarized %d, want 4 each", started[sparse.OpPrune], started[sparse.OpSummary])
	}
	res = results(t, out2)
	if res.Dense["perplexity"] != dense {
		t.Errorf("dense perplexity changed: %v then %v (pruning must work on a copy)", dense, res.Dense["perplexity"])
	}
	for name, want := range map[string]float64{"wanda-2of4": 0.5, "sparsegpt-2of4": 0.5} {
		if got := res.Runs[name]["sparsity"].(float64); got != want {
			t.Errorf("%s: sparsity %v, want %v", name, got, want)
		}
	}
	// Wanda prunes ⌊0.3·inputs⌋ of every row: stories260K's projections
	// (q, k, v, o, gate, up, down of 64, 32, 32, 64, 172, 172, 64 rows over
	// 64 inputs, down over 172) lose 19 of 64 and 51 of 172 per row.
	const rows64, weights = 64 + 32 + 32 + 64 + 172 + 172, 5 * (64*64*2 + 32*64*2 + 172*64*3)
	if got, want := res.Runs["wanda-30"]["zeroWeights"], float64(5*(rows64*19+64*51)); got != want {
		t.Errorf("wanda-30: %v zero weights, want %v of %d", got, want, weights)
	}
	// SparseGPT prunes ⌊0.7·rows·columns⌋ of every block of 128 columns.
	want70 := 0
	for _, rc := range [][2]int{{64, 64}, {32, 64}, {32, 64}, {64, 64}, {172, 64}, {172, 64}, {64, 128}, {64, 44}} {
		want70 += int(float64(rc[0]*rc[1]) * 0.7)
	}
	if got := res.Runs["sparsegpt-70"]["zeroWeights"]; got != float64(5*want70) {
		t.Errorf("sparsegpt-70: %v zero weights, want %d", got, 5*want70)
	}
}

// TestHessianBound: the XᵀX bound is read from the environment, refuses a
// block whose matrices exceed it with the numbers, and is no part of the
// statistics' key.
func TestHessianBound(t *testing.T) {
	t.Setenv(inputstats.MaxHessianEnv, "1KiB")
	_, err := apply(t, t.TempDir(), recipe(t, t.TempDir(), map[string]ir.Options{
		"sparsegpt": {"method": "sparsegpt", "pattern": "2:4", "blockSize": 128, "dampening": 0.01},
	}))
	if err == nil || !strings.Contains(err.Error(), "need 334976 bytes") || !strings.Contains(err.Error(), "above the bound of 1024 bytes") {
		t.Fatalf("bound: %v", err)
	}
	t.Setenv(inputstats.MaxHessianEnv, "lots")
	_, err = apply(t, t.TempDir(), recipe(t, t.TempDir(), map[string]ir.Options{
		"sparsegpt": {"method": "sparsegpt", "pattern": "2:4", "blockSize": 128, "dampening": 0.01},
	}))
	if err == nil || !strings.Contains(err.Error(), `LRMC_MAX_HESSIAN_BYTES="lots" is not a positive size`) {
		t.Fatalf("bad bound: %v", err)
	}
}

// TestVet: the recipe fields are checked where they are written.
func TestVet(t *testing.T) {
	files, err := filepath.Abs("../../compiler/testdata/files")
	if err != nil {
		t.Fatal(err)
	}
	head := `model: path: "` + files + `/model.bin"
calibration: {data: path: "` + files + `/stories.txt", samples: 8, seqLen: 32}
eval: [{task: "perplexity", data: {path: "` + files + `/stories.txt", split: {from: 0.9, to: 1}}, seqLen: 32}]
`
	compile := func(body string) error {
		p := filepath.Join(t.TempDir(), "r.cue")
		if err := os.WriteFile(p, []byte(head+body), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := compiler.Compile(p)
		return err
	}
	if err := compile(`runs: {
	a: prune: {paradigm: "sparse", method: "magnitude", sparsity: 0.5}
	b: prune: {paradigm: "sparse", method: "sparsegpt", pattern: "4:8", blockSize: 64}
}
`); err != nil {
		t.Fatalf("good recipe: %v", err)
	}
	for _, c := range []struct{ body, want string }{
		{`prune: {paradigm: "sparse", method: "wanda"}`, "prune.sparsity: sparse pruning needs one of sparsity"},
		{`prune: {paradigm: "sparse", method: "wanda", sparsity: 0.5, pattern: "2:4"}`, "prune.pattern: pattern conflicts with sparsity"},
		{`prune: {paradigm: "sparse", method: "wanda", sparsity: 1}`, "prune.sparsity"},
		{`prune: {paradigm: "sparse", method: "wanda", pattern: "2-4"}`, "prune.pattern"},
		{`prune: {paradigm: "sparse", method: "wanda", pattern: "4:4"}`, `sparsity pattern "4:4" needs 1 ≤ N < M`},
		{`prune: {paradigm: "sparse", method: "sparsegpt", pattern: "2:4", blockSize: 6}`, "blockSize 6 must be a multiple of 4 under pattern 2:4"},
		{`prune: {paradigm: "sparse", method: "wanda", sparsity: 0.5, blockSize: 64}`, "blockSize is a field of sparse/sparsegpt; method is sparse/wanda"},
		{`prune: {paradigm: "sparse", method: "obs", sparsity: 0.5}`, "prune.method"},
	} {
		err := compile("runs: x: " + c.body + "\n")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got %v\nwant an error containing %q", c.body, err, c.want)
		}
		if err != nil && !strings.Contains(err.Error(), "r.cue:4:") {
			t.Errorf("%s: error %q does not point at line 4", c.body, err)
		}
	}
}

// TestPlanChecksPatternWidth: a pattern the model's width cannot hold is a
// plan error at the field (stories260K is 64 wide; 3:5 groups do not fit).
func TestPlanChecksPatternWidth(t *testing.T) {
	r := recipe(t, t.TempDir(), map[string]ir.Options{"x": {"method": "magnitude", "pattern": "3:5"}})
	store, err := cache.Open(t.TempDir(), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	_, err = planner.Plan(r, &ops.Env{Files: store})
	if err == nil || !strings.Contains(err.Error(), "prune.pattern: 3:5 sparsity needs the model's width 64 to be a multiple of 5") {
		t.Fatalf("plan: %v", err)
	}
}

// TestBFloat16: a model held in bfloat16 is pruned in float32 and rounded
// back; the zeros survive the rounding, and the dense model is untouched.
func TestBFloat16(t *testing.T) {
	out := t.TempDir()
	r := recipe(t, out, map[string]ir.Options{"wanda-2of4": {"method": "wanda", "pattern": "2:4"}})
	r.Runs[0].Model.DType = "bfloat16"
	r.DenseModel.DType = "bfloat16"
	if _, err := apply(t, t.TempDir(), r); err != nil {
		t.Fatal(err)
	}
	res := results(t, out)
	if m := res.Runs["wanda-2of4"]; m["sparsity"] != 0.5 {
		t.Fatalf("bfloat16 wanda 2:4: sparsity %v", m["sparsity"])
	}
	if d, p := res.Dense["perplexity"].(float64), res.Runs["wanda-2of4"]["perplexity"].(float64); !(p > d) {
		t.Fatalf("pruned perplexity %v not above dense %v", p, d)
	}
}
