package slicegpt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"lrmc/cache"
	"lrmc/compiler"
	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/internal/shareddata"
	ksg "lrmc/kernels/slicegpt"
	_ "lrmc/methods/all"
	"lrmc/methods/width/slicegpt"
	"lrmc/planner"
)

// recipe writes a stories260K recipe with the given runs (CUE) and extra
// top-level fields into a temporary directory and returns its path.
func recipe(t *testing.T, runs, extra string) string {
	return recipeFormats(t, runs, extra, `["slicegpt"]`)
}

func recipeFormats(t *testing.T, runs, extra, formats string) string {
	t.Helper()
	model := shareddata.Path(t, "models", "stories260K", "stories260K.bin")
	text := shareddata.Path(t, "text", "tinystories", "tinystories_val.txt")
	dir := t.TempDir()
	src := fmt.Sprintf(`model: path: %q
calibration: data: {path: %q, format: "text", split: {from: 0, to: 0.9}}
eval: ppl: {task: "perplexity", data: {path: %q, format: "text", split: {from: 0.9, to: 1.0}}, samples: 8, seqLen: 128}
runs: {
%s
}
output: {dir: %q, formats: %s}
%s
`, model, text, text, runs, filepath.Join(dir, "out"), formats, extra)
	p := filepath.Join(dir, "r.cue")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestVetRejects: what a sliced model cannot go through is a vet error
// that says why, at the field; so are a missing ratio and a Llama run
// asking for the slicegpt format.
func TestVetRejects(t *testing.T) {
	piqa := shareddata.Path(t, "text", "piqa", "piqa_valid_labeled.jsonl")
	for _, c := range []struct {
		runs, extra, msg string
	}{
		{`s: prune: {paradigm: "width", method: "slicegpt"}`, "",
			"width/slicegpt needs ratio, the slicing ratio"},
		{`s: {prune: {paradigm: "width", method: "slicegpt", ratio: 0.2}, eval: q: {task: "piqa", data: path: "` + piqa + `"}}`, "",
			`task "piqa" scores a Llama model; width/slicegpt makes a slicegpt model, which lrmc evaluates by perplexity only`},
		{`s: {prune: {paradigm: "width", method: "slicegpt", ratio: 0.2}, recovery: {method: "lora", steps: 2}}`, "",
			`recovery "lora" trains a Llama model; width/slicegpt makes a slicegpt model, which lrmc cannot train`},
		{`s: prune: {paradigm: "width", method: "slicegpt", ratio: 0.2}`, "",
			`output format "hf" cannot hold run "s"'s slicegpt model`},
		{`d: {prune: {paradigm: "depth", method: "shortgpt", remove: 1}, calibration: {samples: 4, seqLen: 64}}`, "",
			`output format "slicegpt" writes width/slicegpt models only; run "d" is depth/shortgpt`},
		{`s: prune: {paradigm: "width", method: "slicegpt", ratio: 0.2, roundInterval: 0}`, "", "roundInterval"},
		{`s: prune: {paradigm: "width", method: "slicegpt", ratio: 0.2, remove: 1}`, "",
			"remove is depth pruning's; width/slicegpt does not take it"},
	} {
		formats := `["slicegpt"]`
		if strings.Contains(c.msg, `"hf"`) {
			formats = `["slicegpt", "hf"]`
		}
		_, err := compiler.Compile(recipeFormats(t, c.runs, c.extra, formats))
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("runs %s: vet error\n%v\nwant one containing %q", c.runs, err, c.msg)
		}
	}
}

// env opens a cache in dir for planning and running.
func env(t *testing.T, dir string) (*cache.Store, *ops.Env) {
	t.Helper()
	store, err := cache.Open(dir, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store, &ops.Env{Files: store}
}

// TestCalibrationDefaults: without samples and seqLen a SliceGPT run takes
// the reference's 128 windows of 2048 tokens, the length capped at the
// model's context (512 for stories260K).
func TestCalibrationDefaults(t *testing.T) {
	r, err := compiler.Compile(recipe(t, `s: prune: {paradigm: "width", method: "slicegpt", ratio: 0.25}`, ""))
	if err != nil {
		t.Fatal(err)
	}
	if c := r.Runs[0].Calibration; c.Samples != 128 || c.SeqLen != 0 {
		t.Fatalf("calibration %d×%d, want 128 × the method's default", c.Samples, c.SeqLen)
	}
	_, e := env(t, t.TempDir())
	g, err := planner.Plan(r, e)
	if err != nil {
		t.Fatal(err)
	}
	var sl slicegpt.SliceParams
	for _, n := range g.Nodes {
		if n.Op == slicegpt.OpSlice {
			if err := json.Unmarshal(n.Params, &sl); err != nil {
				t.Fatal(err)
			}
		}
	}
	if sl.Samples != 128 || sl.SeqLen != 512 || sl.Width != 48 || sl.RoundInterval != 8 {
		t.Fatalf("planned slicing %+v, want 128×512 windows, width 48, round 8", sl)
	}
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

func apply(t *testing.T, dir, path string) *recorder {
	t.Helper()
	r, err := compiler.Compile(path)
	if err != nil {
		t.Fatal(err)
	}
	store, e := env(t, dir)
	g, err := planner.Plan(r, e)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	ex, err := executor.New(ops.Registry(), store, executor.Options{Events: rec.add, Sources: e})
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
	store.Close()
	return rec
}

// TestSweep applies SliceGPT at 0.2, then adds 0.4: the second apply
// reuses the calibration windows and the input covariance and slices
// once. Perplexity is evaluated through the normal path and rises with the
// ratio; the export loads back.
func TestSweep(t *testing.T) {
	cacheDir := t.TempDir()
	cal := `calibration: {samples: 8, seqLen: 128, seed: 1}`
	one := recipe(t, `"s20": prune: {paradigm: "width", method: "slicegpt", ratio: 0.2}`, cal+"\ndense: true")
	rec := apply(t, cacheDir, one)
	for op, want := range map[string]int{slicegpt.OpInputCov: 1, slicegpt.OpSlice: 1, slicegpt.OpExport: 1} {
		if n := rec.started(op); n != want {
			t.Errorf("first apply ran %s %d times, want %d", op, n, want)
		}
	}
	two := recipe(t, `"s20": prune: {paradigm: "width", method: "slicegpt", ratio: 0.2}
"s40": prune: {paradigm: "width", method: "slicegpt", ratio: 0.4}`, cal+"\ndense: true")
	rec = apply(t, cacheDir, two)
	for op, want := range map[string]int{slicegpt.OpInputCov: 0, planner.OpCalibWindows: 0, planner.OpTokens: 0, slicegpt.OpSlice: 1} {
		if n := rec.started(op); n != want {
			t.Errorf("adding ratio 0.4 ran %s %d times, want %d", op, n, want)
		}
	}
	out := filepath.Join(filepath.Dir(two), "out")
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res ops.Results
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	ppl := func(m ops.Metrics) float64 { v, _ := m["perplexity"].(float64); return v }
	dense, s20, s40 := ppl(res.Dense), ppl(res.Runs["s20"]), ppl(res.Runs["s40"])
	t.Logf("stories260K perplexity: dense %.3f, slicegpt 0.2 %.3f, 0.4 %.3f", dense, s20, s40)
	if !(dense > 1 && dense < s20 && s20 < s40) {
		t.Fatalf("perplexity dense %g, 0.2 %g, 0.4 %g: want increasing", dense, s20, s40)
	}
	if w, _ := res.Runs["s40"]["slicedWidth"].(float64); w != 32 {
		t.Fatalf("s40 sliced width %v, want 32", res.Runs["s40"]["slicedWidth"])
	}
	m, err := ksg.Load(filepath.Join(out, "s40", "slicegpt"))
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := res.Runs["s40"]["params"].(float64); m.Width != 32 || float64(m.Params()) != p {
		t.Fatalf("exported model: width %d, %d params; metrics say %v", m.Width, m.Params(), res.Runs["s40"]["params"])
	}
	if _, err := os.Stat(filepath.Join(out, "s40", "slicegpt", "tok512.bin")); err != nil {
		t.Fatalf("the tokenizer is not beside the exported model: %v", err)
	}
}
