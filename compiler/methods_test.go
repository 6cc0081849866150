package compiler

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"lrmc/compiler/ir"
	// The compiler checks method names and fields against the registry
	// the method packages fill.
	_ "lrmc/methods/all"
	"lrmc/methods/spec"
)

// A method's own fields come from its spec: the schema checks each where
// it is written, the compiler fills defaults, runs the method's check,
// and rejects fields of other methods.
func TestMethodFields(t *testing.T) {
	spec.Register(spec.Spec{
		Paradigm: "depth", Name: "fieldtest", Calibration: true,
		Fields: []spec.Field{
			{Name: "window", CUE: "#Count & >=1", Default: 3, Doc: "a count with a default"},
			{Name: "note", CUE: "string", Kind: "string", Doc: "optional, no default"},
			{Name: "skip", CUE: "[...#Count & >=0]", Kind: "[]int", Doc: "a list"},
			{Name: "scale", CUE: "number & >0", Default: 0.5},
		},
		Check: func(o ir.Options, report func(field, format string, args ...any)) {
			if o.Int("window") > 10 {
				report("window", "window %d is above 10", o.Int("window"))
			}
		},
	})
	t.Cleanup(func() { spec.Unregister("depth/fieldtest") })

	files, err := filepath.Abs("testdata/files")
	if err != nil {
		t.Fatal(err)
	}
	head := `model: path: "` + files + `/model.bin"
calibration: {data: path: "` + files + `/stories.txt", samples: 8, seqLen: 32}
eval: [{task: "perplexity", data: path: "` + files + `/stories.txt", seqLen: 32}]
prune: {paradigm: "depth", method: "fieldtest", remove: 1}
`
	write := func(body string) string {
		p := filepath.Join(t.TempDir(), "r.cue")
		if err := os.WriteFile(p, []byte(head+body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	r, err := Compile(write(`runs: {
	a: {}
	b: prune: {window: 5, skip: [1, 2], note: "x", scale: 2}
}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]ir.Options{
		"a": {"window": 3, "scale": 0.5},
		"b": {"window": 5, "skip": []int{1, 2}, "note": "x", "scale": 2.0},
	}
	for _, run := range r.Runs {
		if !reflect.DeepEqual(run.Prune.Options, want[run.Name]) {
			t.Errorf("run %s options = %#v, want %#v", run.Name, run.Prune.Options, want[run.Name])
		}
	}

	p := write(`runs: {
	zero: prune: window: 0
	big: prune: window: 11
	other: prune: {method: "shortgpt", window: 2}
}
`)
	_, err = Compile(p)
	if err == nil {
		t.Fatal("bad method fields accepted")
	}
	got := strings.ReplaceAll(err.Error(), p, "r.cue")
	for _, w := range []string{
		`r.cue:6:23: runs."zero".prune.window: invalid value 0 (out of bound >=1)`,
		`r.cue:7:22: runs."big".prune.window: window 11 is above 10`,
		`r.cue:8:45: runs."other".prune.window: window is a field of depth/fieldtest; method is depth/shortgpt`,
	} {
		if !strings.Contains(got, w) {
			t.Errorf("errors lack %q:\n%s", w, got)
		}
	}
}

// The built-in methods are registered, and the planned ones say so.
func TestRegisteredMethods(t *testing.T) {
	for _, k := range []string{"depth/shortgpt", "depth/shortened-ppl", "depth/shortened-taylor", "depth/sleb",
		"width/llm-pruner", "width/wanda-sp", "width/flap", "width/slicegpt",
		"sparse/magnitude", "sparse/wanda", "sparse/sparsegpt", "dynamic/mod", "dynamic/dllm", "dynamic/skipgpt"} {
		p, n, _ := strings.Cut(k, "/")
		if s, ok := spec.Lookup(p, n); !ok || s.Planned {
			t.Errorf("%s is not registered as built", k)
		}
	}
}

// shortgptDefaults are the options a compiled shortgpt run carries.
var shortgptDefaults = ir.Options{"finalNorm": false}

// Each depth method's own fields default as documented: the reference
// codes' barriers (Shortened LLaMA's Taylor+ keeps the first 4 and last 2
// blocks, SLEB the first and the last) and ShortGPT scoring the last block
// on its own output.
func TestDepthMethodDefaults(t *testing.T) {
	files, err := filepath.Abs("testdata/files")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "r.cue")
	src := `model: path: "` + files + `/model.bin"
calibration: {data: path: "` + files + `/stories.txt", samples: 8, seqLen: 32}
eval: [{task: "perplexity", data: path: "` + files + `/stories.txt", seqLen: 32}]
runs: {
	taylor: prune: {paradigm: "depth", method: "shortened-taylor", remove: 1}
	sleb: prune: {paradigm: "depth", method: "sleb", remove: 1}
	sgpt: prune: {paradigm: "depth", method: "shortgpt", remove: 1}
	ppl: prune: {paradigm: "depth", method: "shortened-ppl", remove: 1}
	set: prune: {paradigm: "depth", method: "sleb", remove: 1, earlyBarrier: 0, latterBarrier: 2}
	norm: prune: {paradigm: "depth", method: "shortgpt", remove: 1, finalNorm: true}
}
`
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]ir.Options{
		"taylor": {"earlyBarrier": 4, "latterBarrier": 2},
		"sleb":   {"earlyBarrier": 1, "latterBarrier": 1},
		"sgpt":   {"finalNorm": false},
		"ppl":    nil,
		"set":    {"earlyBarrier": 0, "latterBarrier": 2},
		"norm":   {"finalNorm": true},
	}
	for _, run := range r.Runs {
		if !reflect.DeepEqual(run.Prune.Options, want[run.Name]) {
			t.Errorf("%s: options %#v, want %#v", run.Name, run.Prune.Options, want[run.Name])
		}
	}
}

// speed is measured only when asked for; #Defaults fill what the recipe
// leaves out, and the schema checks each field where it is written.
func TestSpeed(t *testing.T) {
	files, err := filepath.Abs("testdata/files")
	if err != nil {
		t.Fatal(err)
	}
	head := `model: path: "` + files + `/model.bin"
eval: [{task: "perplexity", data: path: "` + files + `/stories.txt", seqLen: 32}]
`
	compile := func(body string) (*ir.Recipe, string, error) {
		p := filepath.Join(t.TempDir(), "r.cue")
		if err := os.WriteFile(p, []byte(head+body), 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := Compile(p)
		return r, p, err
	}
	r, _, err := compile("")
	if err != nil || r.Speed != nil {
		t.Fatalf("no speed field: %+v, %v", r.Speed, err)
	}
	r, _, err = compile("speed: {decode: 8}\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := (ir.Speed{Prefill: 128, Decode: 8, Reps: 3, Threads: 0}); r.Speed == nil || *r.Speed != want {
		t.Errorf("speed = %+v, want %+v", r.Speed, want)
	}
	_, p, err := compile("speed: {prefill: 0}\n")
	if err == nil || !strings.Contains(strings.ReplaceAll(err.Error(), p, "r.cue"), "r.cue:3:18: speed.prefill: invalid value 0 (out of bound >=1)") {
		t.Errorf("prefill 0: %v", err)
	}
}
