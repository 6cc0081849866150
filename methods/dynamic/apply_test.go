package dynamic_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lrmc/cache"
	"lrmc/compiler"
	"lrmc/compiler/ir"
	"lrmc/executor"
	"lrmc/executor/ops"
	kdyn "lrmc/kernels/dynamic"
	"lrmc/kernels/llama2c"
	"lrmc/methods/dynamic"
	"lrmc/planner"
)

// small is a stories260K recipe short enough for a test: SkipGPT with both
// stages and MoD, checkpointing every 2 steps.
func small(t *testing.T, out string) *ir.Recipe {
	t.Helper()
	src := head(t) + `runs: {
	skipgpt: prune: {paradigm: "dynamic", method: "skipgpt", ratio: 0.4, routerSteps: 8, routerBatch: 4, loraSteps: 6, checkpointEvery: 2}
	mod: prune: {paradigm: "dynamic", method: "mod", ratio: 0.4, routerSteps: 6, routerBatch: 4}
}
`
	path := filepath.Join(t.TempDir(), "d.cue")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := compiler.Compile(path)
	if err != nil {
		t.Fatal(err)
	}
	r.Output.Dir = out
	return r
}

// prepare plans r and makes an executor on the cache in dir; every event
// goes to onEv (nil: none). done closes the cache.
func prepare(t *testing.T, dir string, r *ir.Recipe, onEv func(executor.Event)) (g *planner.Graph, ex *executor.Executor, done func()) {
	t.Helper()
	store, err := cache.Open(dir, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	env := &ops.Env{Files: store}
	if g, err = planner.Plan(r, env); err != nil {
		t.Fatal(err)
	}
	if ex, err = executor.New(ops.Registry(), store, executor.Options{Events: onEv, Sources: env}); err != nil {
		t.Fatal(err)
	}
	return g, ex, func() { store.Close() }
}

// applyCtx plans and runs r against the cache in dir, writing outputs.
func applyCtx(t *testing.T, ctx context.Context, dir string, r *ir.Recipe, onEv func(executor.Event)) error {
	t.Helper()
	g, ex, done := prepare(t, dir, r, onEv)
	defer done()
	res, err := ex.Run(ctx, g)
	if err != nil {
		return err
	}
	_, err = ex.WriteOutputs(g, res)
	return err
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A stage interrupted mid-training resumes from its last checkpoint (stage
// 1 at step 4 after being stopped at 5, stage 2 at step 2 after 3) and
// ends bit-identical to an uninterrupted training: the same routers file,
// the same adapters, losses and evaluation.
func TestInterruptedTrainingResumesBitIdentical(t *testing.T) {
	refOut := t.TempDir()
	if err := applyCtx(t, context.Background(), t.TempDir(), small(t, refOut), func(executor.Event) {}); err != nil {
		t.Fatal(err)
	}
	dir, out := t.TempDir(), t.TempDir()
	var routersResumedAt int64 = -1
	for _, stop := range []struct {
		op   string
		step int64
	}{{dynamic.OpRouters, 5}, {dynamic.OpLoRA, 3}} {
		ctx, cancel := context.WithCancel(context.Background())
		err := applyCtx(t, ctx, dir, small(t, out), func(e executor.Event) {
			skipgpt := strings.HasPrefix(e.Label, "skipgpt:")
			if e.Event == executor.EventProgress && e.Op == stop.op && skipgpt && e.Done == stop.step {
				cancel()
			}
			if e.Event == executor.EventResumed && e.Op == dynamic.OpRouters && skipgpt {
				routersResumedAt = e.Done
			}
		})
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("apply interrupted in %s: %v", stop.op, err)
		}
	}
	resumed := map[string]int64{}
	first := map[string]int64{}
	err := applyCtx(t, context.Background(), dir, small(t, out), func(e executor.Event) {
		if !strings.HasPrefix(e.Label, "skipgpt:") {
			return
		}
		switch {
		case e.Event == executor.EventResumed:
			resumed[e.Op] = e.Done
		case e.Event == executor.EventProgress && first[e.Op] == 0:
			first[e.Op] = e.Done
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// Stage 1 resumed and finished during the second apply; stage 2
	// resumes now.
	if routersResumedAt != 4 {
		t.Errorf("stage 1 resumed at step %d, want the checkpoint of step 4", routersResumedAt)
	}
	if _, again := resumed[dynamic.OpRouters]; again {
		t.Error("stage 1 ran again after finishing")
	}
	if resumed[dynamic.OpLoRA] != 2 || first[dynamic.OpLoRA] != 3 {
		t.Errorf("stage 2 resumed at step %d with first step %d; want the checkpoint of step 2 and step 3 next", resumed[dynamic.OpLoRA], first[dynamic.OpLoRA])
	}
	for _, f := range []string{"results.json", "skipgpt/routers.safetensors", "skipgpt/hf/model.safetensors", "mod/routers.safetensors"} {
		if !bytes.Equal(read(t, filepath.Join(out, f)), read(t, filepath.Join(refOut, f))) {
			t.Errorf("%s of the resumed trainings differs from an uninterrupted one's", f)
		}
	}
	checkOutputs(t, refOut)
}

// checkOutputs reloads the exported MoD model (model.bin) with its routers
// (routers.safetensors beside it) and recomputes the held-out perplexity
// and skip ratios the results report, with a float64 log-softmax of the
// routed forward pass's logits over the same windows.
func checkOutputs(t *testing.T, out string) {
	t.Helper()
	var res ops.Results
	if err := json.Unmarshal(read(t, filepath.Join(out, "results.json")), &res); err != nil {
		t.Fatal(err)
	}
	lm, err := llama2c.Load(filepath.Join(out, "mod", "model.bin"))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := kdyn.Load(filepath.Join(out, "mod", kdyn.FileName), lm.Config.Layers, lm.Config.Dim)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Method != kdyn.MoD || rs.Skip != 0.4 {
		t.Errorf("routers.safetensors: %s at %g, want mod at 0.4", rs.Method, rs.Skip)
	}
	var cfg dynamic.Config
	if err := json.Unmarshal(read(t, filepath.Join(out, "mod", dynamic.ConfigName)), &cfg); err != nil || cfg.Method != "mod" || cfg.Ratio != 0.4 || cfg.KVRule != "absent" {
		t.Errorf("routers.json: %+v, %v", cfg, err)
	}
	dm, err := kdyn.New(lm, rs)
	if err != nil {
		t.Fatal(err)
	}
	// The held-out windows, as the recipe cuts them (4 of 64 tokens).
	r := small(t, out)
	w := evalWindows(t, r)
	var sum float64
	var n int
	var executed, tokens int64
	for i := range w.Rows {
		win := w.IDs[i*w.Cols : (i+1)*w.Cols]
		fr := dm.Forward(win, 1, w.Cols)
		for p := 0; p+1 < w.Cols; p++ {
			sum += nll64(fr.Logits[p*lm.Config.Vocab:(p+1)*lm.Config.Vocab], win[p+1])
			n++
		}
		for li, l := range fr.Stats.Layers {
			if li == 0 || li == len(fr.Stats.Layers)-1 {
				if l[kdyn.Attn].Executed != l[kdyn.Attn].Tokens || l[kdyn.MLP].Executed != l[kdyn.MLP].Tokens {
					t.Errorf("MoD skipped tokens in its dense layer %d", li)
				}
				continue
			}
			for _, p := range l {
				executed, tokens = executed+p.Executed, tokens+p.Tokens
			}
		}
	}
	task := res.Runs["mod"]["tasks"].(map[string]any)["perplexity"].(map[string]any)
	if got, want := task["perplexity"].(float64), math.Exp(sum/float64(n)); math.Abs(got-want) > 1e-6*want {
		t.Errorf("reported perplexity %v, recomputed from the outputs %v", got, want)
	}
	d := task["dynamic"].(map[string]any)
	if got, want := d["skip"].(float64), 1-float64(executed)/float64(tokens); got != want || !(want > 0) {
		t.Errorf("reported realised skip %v, recomputed %v (want > 0)", got, want)
	}
	if s := d["flopSaving"].(float64); !(s > 0 && s < d["skip"].(float64)) {
		t.Errorf("MACs saved %v: want between 0 and the skip ratio (dense first and last layers, classifier)", s)
	}
	if m := res.Runs["skipgpt"]["dynamic"].(map[string]any); m["loraLoss"] == nil || m["routerLoss"] == nil || m["method"] != "skipgpt" {
		t.Errorf("skipgpt's metrics lack a training curve: %v", m)
	}
}

// evalWindows cuts the recipe's held-out windows as the planner does.
func evalWindows(t *testing.T, r *ir.Recipe) ops.Tokens {
	t.Helper()
	g, ex, done := prepare(t, t.TempDir(), r, nil)
	defer done()
	for _, n := range g.Nodes {
		if n.Op == planner.OpEvalWindows {
			g.Targets, g.Outputs = []*planner.Node{n}, nil
			res, err := ex.Run(context.Background(), g)
			if err != nil {
				t.Fatal(err)
			}
			v, _ := res.Value(n)
			return v.(ops.Tokens)
		}
	}
	t.Fatal("no evaluation windows planned")
	return ops.Tokens{}
}

// nll64 is −log softmax(logits)[target] in float64.
func nll64(logits []float32, target int32) float64 {
	m := math.Inf(-1)
	for _, v := range logits {
		m = math.Max(m, float64(v))
	}
	var s float64
	for _, v := range logits {
		s += math.Exp(float64(v) - m)
	}
	return m + math.Log(s) - float64(logits[target])
}
