package compiler

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"lrmc/compiler/ir"
	"lrmc/internal/shareddata"
	"lrmc/kernels/mceval"
	"lrmc/methods/spec"
)

// noRecovery is a run's recovery when no layer switches one on.
var noRecovery = ir.Recovery{Method: "none"}

// TestCompileValid decodes testdata/valid.cue: top-level defaults merged
// into each run (a run overriding only calibration.samples keeps the rest),
// eval replaced whole, split defaults [0, 0.9) for calibration and
// [0.9, 1) for evaluation, paths made absolute, runs sorted by name.
func TestCompileValid(t *testing.T) {
	got, err := Compile("testdata/valid.cue")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	model := ir.Model{Path: filepath.Join(dir, "files/model.bin"), Format: "auto", DType: "float32"}
	text := filepath.Join(dir, "files/stories.txt")
	topCal := ir.Calibration{
		Data:    ir.Data{Path: text, Format: "text", Template: "none", Split: ir.Split{From: 0, To: 0.9}},
		Samples: 64, SeqLen: 256, Seed: 1,
	}
	topEval := []ir.Eval{{
		Name: "perplexity", Field: "eval[0]", Task: "perplexity",
		Data:    ir.Data{Path: text, Format: "text", Template: "none", Split: ir.Split{From: 0.9, To: 1}},
		Samples: 8, SeqLen: 128,
	}}
	want := &ir.Recipe{
		File:       "testdata/valid.cue",
		Dir:        dir,
		Dense:      true,
		DenseModel: model,
		DenseEval:  topEval,
		Runs: []ir.Run{
			{
				Name:     "manual",
				Model:    model,
				Recovery: noRecovery,
				Calibration: ir.Calibration{
					Data: ir.Data{
						Path: filepath.Join(dir, "files/stories.jsonl"), Format: "jsonl", Field: "text", Template: "none",
						Split: ir.Split{From: 0, To: 0.5},
					},
					Samples: 128, SeqLen: 256, Seed: 1,
				},
				Prune: ir.Prune{Paradigm: "depth", Method: "shortgpt", Options: shortgptDefaults, Layers: []int{1, 3}},
				Eval: []ir.Eval{{
					Name: "perplexity", Field: "eval[0]", Task: "perplexity",
					Data:   ir.Data{Path: text, Format: "text", Template: "none", Split: ir.Split{From: 0.8, To: 1}},
					SeqLen: 64,
				}},
			},
			{
				Name: "shortgpt-1", Model: model, Calibration: topCal, Eval: topEval, Recovery: noRecovery,
				Prune: ir.Prune{Paradigm: "depth", Method: "shortgpt", Options: shortgptDefaults, Remove: 1},
			},
			{
				Name: "shortgpt-r", Model: model, Calibration: topCal, Eval: topEval, Recovery: noRecovery,
				Prune: ir.Prune{Paradigm: "depth", Method: "shortgpt", Options: shortgptDefaults, Ratio: 0.4},
			},
		},
		Output: ir.Output{Dir: filepath.Join(dir, "out/depth"), Formats: []string{"llama2c"}, DType: "float32"},
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(ir.Recipe{}, "Positions")); diff != "" {
		t.Errorf("Compile(testdata/valid.cue) mismatch (-want +got):\n%s", diff)
	}

	// Positions point where each value was written: in the run when the run
	// overrides it, at the top level when inherited.
	at := func(line, col int) ir.Pos { return ir.Pos{File: "testdata/valid.cue", Line: line, Col: col} }
	for path, want := range map[string]ir.Pos{
		ir.FieldPath("manual", "calibration.samples"):       at(15, 26),
		ir.FieldPath("manual", "calibration.seqLen"):        at(5, 11),
		ir.FieldPath("manual", "calibration.data.split.to"): at(15, 95),
		ir.FieldPath("manual", "prune.layers"):              at(14, 18),
		ir.FieldPath("manual", "prune.layers[1]"):           at(14, 22),
		ir.FieldPath("manual", "eval[0].seqLen"):            at(16, 92),
		ir.FieldPath("shortgpt-1", "prune.remove"):          at(11, 31),
		ir.FieldPath("shortgpt-1", "prune.method"):          at(9, 36),
		ir.FieldPath("shortgpt-1", "model.path"):            at(1, 14),
		ir.FieldPath("shortgpt-r", "eval[0].task"):          at(8, 15),
		ir.FieldPath("", "calibration.samples"):             at(4, 11),
		ir.FieldPath("", "output.formats[0]"):               at(19, 38),
	} {
		if p, ok := got.Positions[path]; !ok || p != want {
			t.Errorf("Positions[%s] = %v (present %v), want %v", path, p, ok, want)
		}
	}
	// Schema defaults were not written anywhere.
	for _, path := range []string{
		ir.FieldPath("shortgpt-1", "calibration.data.split.from"),
		ir.FieldPath("shortgpt-1", "model.format"),
		"dense",
	} {
		if p, ok := got.Positions[path]; ok {
			t.Errorf("Positions[%s] = %v, want none (a schema default)", path, p)
		}
	}
	if w := got.Where(ir.FieldPath("shortgpt-1", "prune.remove")); w != `testdata/valid.cue:11:31: runs."shortgpt-1".prune.remove` {
		t.Errorf("Where = %q", w)
	}
}

// TestCompileSharedData compiles a recipe in a temporary directory that
// names the real stories260K checkpoint, its tokenizer and TinyStories by
// absolute path, with a dense-only sweep and no output section.
func TestCompileSharedData(t *testing.T) {
	model := shareddata.Path(t, "models", "stories260K", "stories260K.bin")
	tok := shareddata.Path(t, "models", "stories260K", "tok512.bin")
	text := shareddata.Path(t, "text", "tinystories", "tinystories_val.txt")
	dir := t.TempDir()
	file := filepath.Join(dir, "recipe.cue")
	writeFile(t, file, `model: {path: "`+model+`", tokenizer: "`+tok+`", format: "llama2c"}
eval: [{task: "perplexity", data: {path: "`+text+`"}, seqLen: 256, samples: 64}]
`)
	got, err := Compile(file)
	if err != nil {
		t.Fatal(err)
	}
	want := &ir.Recipe{
		File:       file,
		Dir:        dir,
		Dense:      true,
		DenseModel: ir.Model{Path: model, Tokenizer: tok, Format: "llama2c", DType: "float32"},
		DenseEval: []ir.Eval{{
			Name: "perplexity", Field: "eval[0]", Task: "perplexity", Samples: 64, SeqLen: 256,
			Data: ir.Data{Path: text, Format: "text", Template: "none", Split: ir.Split{From: 0.9, To: 1}},
		}},
		Output: ir.Output{Dir: filepath.Join(dir, "out"), Formats: []string{"llama2c"}, DType: "float32"},
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(ir.Recipe{}, "Positions")); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
	if p := got.Positions["model.tokenizer"]; p != (ir.Pos{File: file, Line: 1, Col: 30 + len(model)}) {
		t.Errorf("Positions[model.tokenizer] = %v", p)
	}
}

// TestCompilePackage loads the other files of the recipe's package beside
// it, leaves out files of other packages and files starting with "_", and
// reports positions in the file where a value was written.
func TestCompilePackage(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "model.bin"), "x")
	writeFile(t, filepath.Join(dir, "text.txt"), "x")
	writeFile(t, filepath.Join(dir, "base.cue"), `package sweep

import "strings"

model: path: strings.TrimSpace(" model.bin ")
calibration: {data: path: "text.txt", samples: 4, seqLen: 16}
eval: [{task: "perplexity", data: path: "text.txt", seqLen: 16}]
prune: {paradigm: "depth", method: "shortgpt"}
`)
	writeFile(t, filepath.Join(dir, "other.cue"), "package other\nmodel: path: \"elsewhere.bin\"\n")
	writeFile(t, filepath.Join(dir, "_draft.cue"), "package sweep\nruns: draft: prune: remove: 9\n")
	file := filepath.Join(dir, "recipe.cue")
	writeFile(t, file, "package sweep\n\nruns: one: prune: remove: \"1\"\nruns: two: prune: remove: 2\n")

	_, err := Compile(file)
	want := file + `:3:27: runs."one".prune.remove: conflicting values "1" and int (mismatched types string and int)`
	if err == nil || err.Error() != want {
		t.Fatalf("Compile error:\n%v\nwant:\n%s", err, want)
	}

	writeFile(t, file, "package sweep\n\nruns: one: prune: remove: 1\n")
	got, err := Compile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Runs) != 1 || got.Runs[0].Name != "one" || got.Runs[0].Model.Path != filepath.Join(dir, "model.bin") {
		t.Fatalf("runs = %+v", got.Runs)
	}
	base := filepath.Join(dir, "base.cue")
	if p := got.Positions[ir.FieldPath("one", "calibration.samples")]; p != (ir.Pos{File: base, Line: 6, Col: 48}) {
		t.Errorf("inherited calibration.samples at %v, want %s:6:48", p, base)
	}
}

// TestCompileRelativeDisplay shows errors with the recipe path as given,
// also for another file of its package.
func TestCompileRelativeDisplay(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.cue"), "package p\nmodel: path: 3\n")
	writeFile(t, filepath.Join(dir, "b.cue"), "package p\ndense: \"yes\"\n")
	t.Chdir(filepath.Dir(dir))
	rel := filepath.Join(filepath.Base(dir), "a.cue")
	_, err := Compile(rel)
	b := filepath.Join(filepath.Base(dir), "b.cue")
	want := rel + ":2:14: model.path: conflicting values 3 and string (mismatched types int and string)\n" +
		b + ":2:8: dense: conflicting values bool and \"yes\" (mismatched types bool and string)"
	if err == nil || err.Error() != want {
		t.Fatalf("Compile(%s) error:\n%v\nwant:\n%s", rel, err, want)
	}
}

func TestCompileMissingRecipe(t *testing.T) {
	err := Vet("testdata/no-such-recipe.cue")
	want := "testdata/no-such-recipe.cue: cannot read recipe: no such file or directory"
	if err == nil || err.Error() != want {
		t.Fatalf("Vet error = %v, want %q", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Pos.File != "testdata/no-such-recipe.cue" {
		t.Fatalf("errors.As(*Error) = %v", e)
	}
}

// TestCompileConcurrent compiles from several goroutines: each compilation
// owns its cue.Context, which is not safe for concurrent use.
func TestCompileConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			r, err := Compile("testdata/valid.cue")
			if err == nil && len(r.Runs) != 3 {
				err = errors.New("wrong number of runs")
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
}

func TestErrorsFormat(t *testing.T) {
	es := Errors{
		{Pos: ir.Pos{File: "r.cue", Line: 9, Col: 2}, Path: "b", Msg: "second"},
		{Pos: ir.Pos{File: "r.cue", Line: 3, Col: 7}, Path: `runs."x".a`, Msg: "first"},
		{Pos: ir.Pos{File: "r.cue", Line: 9, Col: 2}, Path: "b", Msg: "second"},
		{Pos: ir.Pos{File: "r.cue"}, Msg: "whole file"},
	}.sortDedup()
	want := strings.Join([]string{
		"r.cue: whole file",
		`r.cue:3:7: runs."x".a: first`,
		"r.cue:9:2: b: second",
	}, "\n")
	if got := es.Error(); got != want {
		t.Errorf("Errors:\n%s\nwant:\n%s", got, want)
	}
}

func TestRegistry(t *testing.T) {
	// The lists grow as methods are built (lrmc/methods/all); what they
	// must say is pinned here. Every known method is built, so a planned
	// one is registered for the test.
	spec.Register(spec.Spec{Paradigm: "dynamic", Name: "planned-test", Planned: true})
	defer spec.Unregister("dynamic/planned-test")
	depth := "depth/shortened-ppl, depth/shortened-taylor, depth/shortgpt, depth/sleb"
	for _, tc := range []struct{ paradigm, method, prefix, contains string }{
		{"depth", "shortgpt", "", ""},
		{"depth", "sleb", "", ""},
		{"dynamic", "mod", "", ""},
		{"dynamic", "planned-test", `method "planned-test" (dynamic) is not built yet; built methods: ` + depth, ""},
		{"width", "shortgpt", `unknown method "shortgpt"; built methods: ` + depth, "; planned: dynamic/planned-test"},
	} {
		got := checkMethod(tc.paradigm, tc.method)
		if !strings.HasPrefix(got, tc.prefix) || !strings.Contains(got, tc.contains) || (tc.prefix == "") != (got == "") {
			t.Errorf("checkMethod(%s, %s) = %q, want %q…%q", tc.paradigm, tc.method, got, tc.prefix, tc.contains)
		}
	}
	if got := checkMethod("dynamic", "planned-test"); strings.Contains(got, "dynamic/planned-test") {
		t.Errorf("a planned method is listed as built: %q", got)
	}
	spec.Unregister("dynamic/planned-test")
	if got := checkMethod("width", "shortgpt"); strings.Contains(got, "planned") {
		t.Errorf("with no planned method, the message still lists them: %q", got)
	}
	if got := evalTasks.check("mmlu"); got != `unknown task "mmlu"; built tasks: perplexity` {
		t.Errorf("evalTasks.check(mmlu) = %q", got)
	}
	if got := dataFormats.check("csv"); got != `unknown data format "csv"; built data formats: text, jsonl, chat, instruction` {
		t.Errorf("dataFormats.check(csv) = %q", got)
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCompileParadigmSwitch: the layer that sets prune.paradigm chooses the
// method, so a run can switch to "none" under a top-level depth method.
func TestCompileParadigmSwitch(t *testing.T) {
	got, err := Compile("testdata/valid_switch.cue")
	if err != nil {
		t.Fatal(err)
	}
	var prunes []ir.Prune
	for _, r := range got.Runs {
		prunes = append(prunes, r.Prune)
	}
	want := []ir.Prune{
		{Paradigm: "depth", Method: "shortgpt", Options: shortgptDefaults, Layers: []int{0}},
		{Paradigm: "depth", Method: "shortgpt", Options: shortgptDefaults, Remove: 3},
		{Paradigm: "none"},
	}
	if diff := cmp.Diff(want, prunes); diff != "" {
		t.Errorf("prunes of again, deeper, unpruned (-want +got):\n%s", diff)
	}
	if got.Dense || got.DenseEval != nil || got.Output.Formats == nil || len(got.Output.Formats) != 0 {
		t.Errorf("Dense %v, DenseEval %v, Formats %#v; want false, nil, empty", got.Dense, got.DenseEval, got.Output.Formats)
	}
	e := got.Runs[2].Eval[0].Data
	if e.Format != "jsonl" || e.Field != "story" || got.Runs[2].Calibration.Seed != 9223372036854775807 {
		t.Errorf("eval data %+v, seed %d", e, got.Runs[2].Calibration.Seed)
	}
}

// TestCompileStories compiles the example sweep whose paths reach the shared
// data relative to testdata/, when the data sits beside the repository.
func TestCompileStories(t *testing.T) {
	data := shareddata.Dir(t)
	if beside, _ := filepath.Abs("../../shared/data"); beside != data {
		t.Skipf("shared data at %s, not beside the repository", data)
	}
	got, err := Compile("testdata/valid_stories.cue")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range got.Runs {
		names = append(names, r.Name)
	}
	if want := []string{"long-cal", "manual", "shortgpt-1", "shortgpt-2", "shortgpt-r"}; !slices.Equal(names, want) {
		t.Fatalf("runs %v, want %v", names, want)
	}
	longCal := got.Runs[0]
	if longCal.Calibration.Samples != 128 || longCal.Calibration.SeqLen != 256 || longCal.Calibration.Seed != 1 {
		t.Errorf("long-cal calibration %+v: want samples overridden, seqLen and seed inherited", longCal.Calibration)
	}
	if p := got.Runs[0].Model.Path; p != filepath.Join(data, "models/stories260K/stories260K.bin") {
		t.Errorf("model path %s", p)
	}
}

// TestCompileIdioms: comprehensions, pattern constraints, definitions and
// hidden fields of the user's own are plain CUE and merge like written
// fields; positions point where the value came from.
func TestCompileIdioms(t *testing.T) {
	got, err := Compile("testdata/valid_idioms.cue")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Runs) != 2 {
		t.Fatalf("%d runs, want 2", len(got.Runs))
	}
	for i, r := range got.Runs {
		want := ir.Prune{Paradigm: "depth", Method: "shortgpt", Options: shortgptDefaults, Remove: i + 1}
		if diff := cmp.Diff(want, r.Prune); diff != "" || r.Calibration.Seed != 7 || r.Calibration.Samples != 8 {
			t.Errorf("run %s: prune (-want +got):\n%s calibration %+v", r.Name, diff, r.Calibration)
		}
	}
	at := func(line, col int) ir.Pos { return ir.Pos{File: "testdata/valid_idioms.cue", Line: line, Col: col} }
	for path, want := range map[string]ir.Pos{
		ir.FieldPath("r2", "prune.method"):     at(2, 37),
		ir.FieldPath("r2", "prune.remove"):     at(6, 59),
		ir.FieldPath("r2", "calibration.seed"): at(7, 31),
	} {
		if p := got.Positions[path]; p != want {
			t.Errorf("Positions[%s] = %v, want %v", path, p, want)
		}
	}
}

// TestCompileChatSynthetic decodes testdata/valid_chat.cue: a synthetic
// qwen3 model whose fields merge leaf by leaf into a run, replaced whole by
// a run's path; chat data with thinking off and the model's template;
// instruction data taking the template by default; a bfloat16 export.
func TestCompileChatSynthetic(t *testing.T) {
	got, err := Compile("testdata/valid_chat.cue")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(dir, "files/chattok")
	synthetic := func(layers int) ir.Model {
		return ir.Model{Tokenizer: tok, DType: "float32", Synthetic: &ir.Synthetic{
			Arch: "qwen3", Layers: layers, Dim: 64, Heads: 4, KVHeads: 2, HeadDim: 32,
			FFN: 192, SeqLen: 128, Tie: true, Seed: 7,
		}}
	}
	thinking := false
	cal := ir.Calibration{
		Data: ir.Data{
			Path: filepath.Join(dir, "files/chat.jsonl"), Format: "chat", Template: "model", Thinking: &thinking,
			Split: ir.Split{From: 0, To: 0.9},
		},
		Samples: 8, SeqLen: 64,
	}
	eval := []ir.Eval{{
		Name: "perplexity", Field: "eval[0]", Task: "perplexity", SeqLen: 64,
		Data: ir.Data{Path: filepath.Join(dir, "files/alpaca.jsonl"), Format: "instruction", Template: "model", Split: ir.Split{From: 0.9, To: 1}},
	}}
	prune := ir.Prune{Paradigm: "depth", Method: "shortgpt", Options: shortgptDefaults, Remove: 1}
	want := &ir.Recipe{
		File: "testdata/valid_chat.cue",
		Dir:  dir,
		Runs: []ir.Run{
			{
				Name:        "checkpoint",
				Model:       ir.Model{Path: filepath.Join(dir, "files/model.bin"), Tokenizer: tok, Format: "auto", DType: "float32"},
				Calibration: cal, Prune: prune, Eval: eval, Recovery: noRecovery,
			},
			{Name: "deeper", Model: synthetic(8), Calibration: cal, Prune: prune, Eval: eval, Recovery: noRecovery},
		},
		Output: ir.Output{Dir: filepath.Join(dir, "out"), Formats: []string{"hf", "gguf"}, DType: "bfloat16"},
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(ir.Recipe{}, "Positions")); diff != "" {
		t.Errorf("Compile(testdata/valid_chat.cue) mismatch (-want +got):\n%s", diff)
	}
	at := func(line, col int) ir.Pos { return ir.Pos{File: "testdata/valid_chat.cue", Line: line, Col: col} }
	for path, want := range map[string]ir.Pos{
		ir.FieldPath("deeper", "model.synthetic.layers"):      at(14, 36),
		ir.FieldPath("deeper", "model.synthetic.kvHeads"):     at(6, 68),
		ir.FieldPath("deeper", "calibration.data.thinking"):   at(8, 74),
		ir.FieldPath("checkpoint", "model.path"):              at(16, 27),
		ir.FieldPath("checkpoint", "model.tokenizer"):         at(5, 13),
		ir.FieldPath("", "output.dtype"):                      at(18, 42),
		ir.FieldPath("checkpoint", "calibration.data.format"): at(8, 56),
	} {
		if p, ok := got.Positions[path]; !ok || p != want {
			t.Errorf("Positions[%s] = %v (present %v), want %v", path, p, ok, want)
		}
	}
	// The run's path replaced the synthetic group: none of its fields is
	// the checkpoint run's.
	if p, ok := got.Positions[ir.FieldPath("checkpoint", "model.synthetic.layers")]; ok {
		t.Errorf("checkpoint has a synthetic position %v", p)
	}
}

// TestCompileHFReference resolves hf: references offline through a hub
// cache under $HF_HOME/hub: the default revision main and a branch through
// refs/, a commit hash directly.
func TestCompileHFReference(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HF_HOME", home)
	repo := filepath.Join(home, "hub", "models--Qwen--Qwen3-0.6B")
	const mainHash, devHash = "c1899de289a04d12100db370d81485cdf75e47ca", "0000000000000000000000000000000000000abc"
	for _, h := range []string{mainHash, devHash} {
		if err := os.MkdirAll(filepath.Join(repo, "snapshots", h), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(repo, "snapshots", h, "config.json"), "{}")
	}
	if err := os.MkdirAll(filepath.Join(repo, "refs", "pr"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(repo, "refs", "main"), mainHash) // huggingface_hub writes no newline
	writeFile(t, filepath.Join(repo, "refs", "pr", "1"), devHash+"\n")

	dir := t.TempDir()
	file := filepath.Join(dir, "recipe.cue")
	writeFile(t, file, `model: {path: "hf:Qwen/Qwen3-0.6B", format: "hf"}
dense: false
runs: {
	pr: {model: path: "hf:Qwen/Qwen3-0.6B@pr/1", prune: paradigm: "none"}
	pinned: {model: path: "hf:Qwen/Qwen3-0.6B@`+devHash+`", prune: paradigm: "none"}
	main: prune: paradigm: "none"
}
`)
	got, err := Compile(file)
	if err != nil {
		t.Fatal(err)
	}
	snap := func(h string) ir.Model {
		return ir.Model{Path: filepath.Join(repo, "snapshots", h), Format: "hf", DType: "float32"}
	}
	var models []ir.Model
	for _, r := range got.Runs {
		models = append(models, r.Model)
	}
	want := []ir.Model{snap(mainHash), snap(devHash), snap(devHash)} // main, pinned, pr
	if diff := cmp.Diff(want, models); diff != "" {
		t.Errorf("models of main, pinned, pr (-want +got):\n%s", diff)
	}

	// The error names the cache, where it came from and the path looked for.
	writeFile(t, file, "model: path: \"hf:Qwen/Qwen3-8B\"\ndense: false\nruns: x: prune: paradigm: \"none\"\n")
	_, err = Compile(file)
	wantErr := file + `:1:14: model.path: modelref: "hf:Qwen/Qwen3-8B": not in the local hub cache ` + filepath.Join(home, "hub") +
		` (from HF_HOME): no ` + filepath.Join(home, "hub", "models--Qwen--Qwen3-8B")
	if err == nil || err.Error() != wantErr {
		t.Errorf("Compile error:\n%v\nwant:\n%s", err, wantErr)
	}
}

// TestCompileRecovery decodes testdata/valid_recovery.cue: the top-level
// LoRA recovery merged field by field into each run, with every default
// filled; a run switching to full fine-tuning keeps the shared fields but
// neither the top level's LoRA settings nor its lr (its own, or full's
// default 2e-5), and no LoRA defaults; distillation defaults only for loss
// kd; method none zero throughout.
func TestCompileRecovery(t *testing.T) {
	got, err := Compile("testdata/valid_recovery.cue")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	thinking := false
	chat := ir.Data{
		Path: filepath.Join(dir, "files/chat.jsonl"), Format: "chat", Template: "model", Thinking: &thinking,
		Split: ir.Split{From: 0, To: 0.9},
	}
	shared := ir.Recovery{
		Data: chat, Steps: 200, Batch: 4, Accumulation: 8, SeqLen: 256,
		Warmup: 0.1, Schedule: "cosine", MaxGradNorm: 1, Loss: "lm",
	}
	lora := shared
	lora.Method, lora.LR, lora.Rank, lora.Alpha, lora.Dropout, lora.Targets = "lora", 1e-4, 8, 32, 0.1, []string{"q", "v", "gate"}
	full := shared
	full.Method, full.LR = "full", 1e-5

	// edit returns a copy of base changed by f.
	edit := func(base ir.Recovery, f func(*ir.Recovery)) ir.Recovery { f(&base); return base }
	want := map[string]ir.Recovery{
		"lora": edit(lora, func(r *ir.Recovery) { r.Steps, r.Seed = 100, 3 }),
		"full": full,
		"full-default": edit(full, func(r *ir.Recovery) {
			r.LR, r.WeightDecay, r.CheckpointEvery = 2e-5, 0.01, 50
		}),
		"kd": edit(lora, func(r *ir.Recovery) {
			r.Loss, r.Temperature, r.TopK, r.Schedule = "kd", 2, 64, "constant"
			r.Data.Split.To = 0.5
		}),
		"off": noRecovery,
	}
	gotRec := map[string]ir.Recovery{}
	for _, r := range got.Runs {
		gotRec[r.Name] = r.Recovery
	}
	if diff := cmp.Diff(want, gotRec); diff != "" {
		t.Errorf("recoveries by run (-want +got):\n%s", diff)
	}

	at := func(line, col int) ir.Pos { return ir.Pos{File: "testdata/valid_recovery.cue", Line: line, Col: col} }
	for path, want := range map[string]ir.Pos{
		ir.FieldPath("lora", "recovery.method"):              at(10, 10),
		ir.FieldPath("lora", "recovery.steps"):               at(19, 26),
		ir.FieldPath("lora", "recovery.rank"):                at(15, 16),
		ir.FieldPath("lora", "recovery.targets[2]"):          at(16, 22),
		ir.FieldPath("lora", "recovery.data.path"):           at(11, 15),
		ir.FieldPath("lora", "recovery.data.thinking"):       at(11, 61),
		ir.FieldPath("full", "recovery.method"):              at(20, 27),
		ir.FieldPath("full", "recovery.lr"):                  at(20, 39),
		ir.FieldPath("full", "recovery.steps"):               at(12, 16),
		ir.FieldPath("full-default", "recovery.weightDecay"): at(21, 58),
		ir.FieldPath("kd", "recovery.data.split.to"):         at(22, 78),
		ir.FieldPath("kd", "recovery.lr"):                    at(14, 16),
		ir.FieldPath("off", "recovery.method"):               at(23, 25),
	} {
		if p, ok := got.Positions[path]; !ok || p != want {
			t.Errorf("Positions[%s] = %v (present %v), want %v", path, p, ok, want)
		}
	}
	// Defaults were written nowhere, and nothing of the top level's LoRA
	// recovery reaches a run that chose another method.
	for _, path := range []string{
		ir.FieldPath("lora", "recovery.batch"),
		ir.FieldPath("full", "recovery.rank"),
		ir.FieldPath("full-default", "recovery.lr"),
		ir.FieldPath("kd", "recovery.temperature"),
		ir.FieldPath("off", "recovery.steps"),
		ir.FieldPath("off", "recovery.data.path"),
	} {
		if p, ok := got.Positions[path]; ok {
			t.Errorf("Positions[%s] = %v, want none", path, p)
		}
	}
}

// TestCompileOutputDir: a relative output.dir resolves against the
// recipe's directory and must stay inside it; outside it takes an absolute
// path, written as such.
func TestCompileOutputDir(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "recipes")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(sub, "model.bin"), "x")
	writeFile(t, filepath.Join(sub, "text.txt"), "x")
	file := filepath.Join(sub, "recipe.cue")
	for _, c := range []struct{ dir, want, err string }{
		{"out/x", filepath.Join(sub, "out", "x"), ""},
		{"./out/../out/y", filepath.Join(sub, "out", "y"), ""},
		{".", sub, ""},
		{filepath.Join(dir, "elsewhere"), filepath.Join(dir, "elsewhere"), ""},
		{"../out/x", "", file + `:3:14: output.dir: "../out/x" leaves the recipe's directory; a relative output.dir must stay inside it (write an absolute path to put outputs elsewhere)`},
		{"out/../..", "", file + `:3:14: output.dir: "out/../.." leaves the recipe's directory; a relative output.dir must stay inside it (write an absolute path to put outputs elsewhere)`},
	} {
		writeFile(t, file, `model: path: "model.bin"
eval: [{task: "perplexity", data: path: "text.txt", seqLen: 16}]
output: dir: "`+c.dir+`"
`)
		got, err := Compile(file)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("output.dir %q: error\n%v\nwant\n%s", c.dir, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("output.dir %q: %v", c.dir, err)
			continue
		}
		if got.Output.Dir != c.want {
			t.Errorf("output.dir %q resolved to %s, want %s", c.dir, got.Output.Dir, c.want)
		}
	}
}

// TestCompileNamedEvals decodes testdata/valid_mc.cue: evaluations by name
// (a map, in the order written) and a run's list item named by its task; a
// multiple-choice task reads its jsonl file whole by default.
func TestCompileNamedEvals(t *testing.T) {
	got, err := Compile("testdata/valid_mc.cue")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	piqa := filepath.Join(dir, "files/piqa.jsonl")
	text := filepath.Join(dir, "files/stories.txt")
	piqaDef := &ir.TaskDef{Text: "Question: {{goal}}\nAnswer:", Choices: []string{"{{sol1}}", "{{sol2}}"}, Gold: "label"}
	wantDense := []ir.Eval{
		{Name: "ppl", Field: "eval.ppl", Task: "perplexity", SeqLen: 32,
			Data: ir.Data{Path: text, Format: "text", Template: "none", Split: ir.Split{From: 0.9, To: 1}}},
		{Name: "piqa", Field: "eval.piqa", Task: "piqa", Samples: 2, Fewshot: 1, Seed: 7,
			Data: ir.Data{Path: piqa, Format: "jsonl", Split: ir.Split{From: 0, To: 1}}, Def: piqaDef},
		{Name: "mine", Field: "eval.mine", Task: "yesno",
			Data: ir.Data{Path: piqa, Format: "jsonl", Split: ir.Split{From: 0, To: 1}},
			Def:  &ir.TaskDef{Text: "{{goal}}?", Choices: []string{"no", "yes"}, Gold: "label", Delimiter: "\n"}},
	}
	if diff := cmp.Diff(wantDense, got.DenseEval); diff != "" {
		t.Errorf("dense evals (-want +got):\n%s", diff)
	}
	wantRun := []ir.Eval{{Name: "piqa", Field: "eval[0]", Task: "piqa",
		Data: ir.Data{Path: piqa, Format: "jsonl", Split: ir.Split{From: 0, To: 0.5}}, Def: piqaDef}}
	if diff := cmp.Diff(wantRun, got.Runs[0].Eval); diff != "" {
		t.Errorf("run evals (-want +got):\n%s", diff)
	}
	if p := got.Positions[`eval.piqa.fewshot`]; p.Line != 7 {
		t.Errorf("position of eval.piqa.fewshot = %v, want line 7", p)
	}
}

// The built-in tasks of schema #Tasks give each family's context and
// continuations as lm-eval's yaml writes them.
func TestBuiltinTasks(t *testing.T) {
	c, err := newCompiler("testdata/valid_mc.cue")
	if err != nil {
		t.Fatal(err)
	}
	if c.compile(); len(c.errs.errs) > 0 {
		t.Fatal(c.errs.errs)
	}
	if got := c.tasks.check("arc"); got != `unknown task "arc"; built tasks: perplexity, arc_challenge, arc_easy, boolq, commonsense_qa, gsm8k, hellaswag, openbookqa, piqa, swag, winogrande, yesno` {
		t.Errorf("tasks.check(arc) = %q", got)
	}
	for _, tc := range []struct {
		task    string
		doc     mceval.Doc
		context string
		conts   []string
		gold    int
	}{
		{"piqa", mceval.Doc{"goal": "g", "sol1": "a", "sol2": "b", "label": 1.0}, "Question: g\nAnswer:", []string{" a", " b"}, 1},
		{"hellaswag", mceval.Doc{"ctx": "Home: [header] How to x [title] Do  it.", "endings": []any{" a [step] b ", "c"}, "label": 1.0},
			"Home: How to x. Do it.", []string{" a b", " c"}, 1},
		{"commonsense_qa", mceval.Doc{"question": " Where? ", "choices": []any{"bank", "mall", "c", "d", "e"}, "answer": 0.0},
			"Question: Where?\nA. bank\nB. mall\nC. c\nD. d\nE. e\nAnswer:", []string{" A", " B", " C", " D", " E"}, 0},
		{"swag", mceval.Doc{"startphrase": "She", "choices": []any{"runs.", "sits."}, "answer": 1.0},
			"She", []string{" runs.", " sits."}, 1},
		{"boolq", mceval.Doc{"passage": "P.", "question": "q", "answer": false},
			"P.\nQuestion: q?\nAnswer:", []string{" no", " yes"}, 0},
		{"yesno", mceval.Doc{"goal": "g", "label": 1.0}, "g?", []string{"\nno", "\nyes"}, 1},
		// ARC's choices and labels are lists in a group; the answer is the
		// label's position, numeric labels included.
		{"arc_easy", mceval.Doc{"question": "Why?", "choices": map[string]any{"text": []any{"x", "y", "z"}, "label": []any{"A", "B", "C"}}, "answerKey": "C"},
			"Question: Why?\nAnswer:", []string{" x", " y", " z"}, 2},
		{"arc_challenge", mceval.Doc{"question": "How?", "choices": map[string]any{"text": []any{"x", "y", "z", "w"}, "label": []any{"1", "2", "3", "4"}}, "answerKey": "2"},
			"Question: How?\nAnswer:", []string{" x", " y", " z", " w"}, 1},
		{"openbookqa", mceval.Doc{"question_stem": "The sun is", "choices": map[string]any{"text": []any{"cold", "hot", "wet", "blue"}, "label": []any{"A", "B", "C", "D"}}, "answerKey": " B"},
			"The sun is", []string{" cold", " hot", " wet", " blue"}, 1},
	} {
		task, err := mceval.FromSpec(tc.task, specOf(c.taskDefs[tc.task]))
		if err != nil {
			t.Fatalf("%s: %v", tc.task, err)
		}
		items, err := mceval.Items(task, []mceval.Doc{tc.doc}, 0, 0, 0)
		if err != nil {
			t.Fatalf("%s: %v", tc.task, err)
		}
		it := items[0]
		var conts []string
		for i := range it.Choices {
			conts = append(conts, it.Continuation(i))
		}
		if it.Context != tc.context || strings.Join(conts, "|") != strings.Join(tc.conts, "|") || it.Gold != tc.gold {
			t.Errorf("%s: context %q, continuations %q, gold %d; want %q, %q, %d", tc.task, it.Context, conts, it.Gold, tc.context, tc.conts, tc.gold)
		}
	}
	// WinoGrande: each option fills the blank and ends its context; the
	// rest of the sentence is the one continuation (lm-eval's
	// preprocess_winogrande: sentence[:idx] + option, and
	// " " + sentence[idx+1:].strip()); answer "2" is choice 1.
	wg, err := mceval.FromSpec("winogrande", specOf(c.taskDefs["winogrande"]))
	if err != nil {
		t.Fatal(err)
	}
	items, err := mceval.Items(wg, []mceval.Doc{{"sentence": "Ian fed the cat but _ was still hungry _ later.", "option1": "Ian", "option2": "the cat", "answer": "2"}}, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	it := items[0]
	if !it.Partial || it.Gold != 1 || it.ContextOf(0) != "Ian fed the cat but Ian" || it.ContextOf(1) != "Ian fed the cat but the cat" ||
		it.Continuation(0) != " was still hungry _ later." || it.Continuation(1) != it.Continuation(0) {
		t.Errorf("winogrande item %+v: contexts %q, %q; continuation %q", it, it.ContextOf(0), it.ContextOf(1), it.Continuation(0))
	}
	if d := c.taskDefs["winogrande"]; !slices.Equal(d.Metrics, []string{"acc"}) || c.taskDefs["arc_easy"].Metrics != nil {
		t.Errorf("metrics: winogrande %q, arc_easy %q", d.Metrics, c.taskDefs["arc_easy"].Metrics)
	}
}

// TestCompileGeneration decodes testdata/valid_gen.cue: the built-in
// gsm8k task as lm-eval's yaml has it, with the eval's maxNewTokens over
// the task's, and a recipe's own generation task whose seed applies when
// the eval sets none.
func TestCompileGeneration(t *testing.T) {
	got, err := Compile("testdata/valid_gen.cue")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	piqa := filepath.Join(dir, "files/piqa.jsonl")
	data := ir.Data{Path: piqa, Format: "jsonl", Split: ir.Split{From: 0, To: 1}}
	want := []ir.Eval{
		{Name: "gsm", Field: "eval.gsm", Task: "gsm8k", Data: data, Samples: 2, Fewshot: 1, Seed: 7,
			Gen: &ir.GenTask{Text: "Question: {{question}}\nAnswer:", Target: "{{answer}}",
				Stop: []string{"Question:", "</s>", "<|im_end|>"}, MaxNewTokens: 32, Extraction: "gsm8k", N: 1, TopP: 1}},
		{Name: "mine", Field: "eval.mine", Task: "first", Data: data, Seed: 5,
			Gen: &ir.GenTask{Text: "{{goal}}\n", Target: "{{sol1}}", Stop: []string{"\n"}, MaxNewTokens: 256,
				Extraction: "regex", Regex: `^\s*(\w+)`, IgnoreCase: true, N: 2, Temperature: 0.8, TopP: 0.9}},
	}
	if diff := cmp.Diff(want, got.DenseEval); diff != "" {
		t.Errorf("evals (-want +got):\n%s", diff)
	}
	if e := got.DenseEval[0]; e.MultipleChoice() || !e.Generation() {
		t.Errorf("gsm8k: multiple choice %v, generation %v", e.MultipleChoice(), e.Generation())
	}
}
