package schema

import (
	"strings"
	"testing"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/errors"
)

// TestDefaultsAreRecipes checks #Defaults against the definitions it fills:
// a default outside the schema's ranges would fail here, not in a recipe.
func TestDefaultsAreRecipes(t *testing.T) {
	ctx := cuecontext.New()
	s, err := Compile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	top := s.Defaults.LookupPath(cue.ParsePath("eval"))
	rec := ctx.CompileString("{}").FillPath(cue.ParsePath("eval"), []any{top})
	for _, f := range []string{"dense", "model", "calibration", "output"} {
		rec = rec.FillPath(cue.ParsePath(f), s.Defaults.LookupPath(cue.ParsePath(f)))
	}
	if err := s.Recipe.Unify(rec).Validate(cue.Concrete(true), cue.Final()); err != nil {
		t.Fatalf("#Defaults does not satisfy #Recipe: %v", errors.Details(err, nil))
	}
	if got, err := s.Defaults.LookupPath(cue.ParsePath("output.dtype")).String(); err != nil || got != "float32" {
		t.Errorf("#Defaults.output.dtype = %q (%v), want float32", got, err)
	}
	for path, want := range map[string]float64{
		"calibration.data.split.from": 0, "calibration.data.split.to": 0.9,
		"eval.data.split.from": 0.9, "eval.data.split.to": 1,
	} {
		got, err := s.Defaults.LookupPath(cue.ParsePath(path)).Float64()
		if err != nil || got != want {
			t.Errorf("#Defaults.%s = %v (%v), want %v", path, got, err, want)
		}
	}
}

// TestRecipeChecks runs the schema alone on fields it must accept and reject.
func TestRecipeChecks(t *testing.T) {
	ctx := cuecontext.New()
	s, err := Compile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		src  string
		want string // substring of the error, "" for valid
	}{
		{`runs: x: calibration: samples: 128`, ""},
		{`runs: x: prune: {paradigm: "depth", method: "shortgpt", layers: [0, 2]}`, ""},
		{`runs: x: prune: layers: [2, 2]`, "list.UniqueItems"},
		{`runs: x: prune: ratio: 0.0`, "out of bound >0"},
		{`calibration: data: split: from: 1`, "out of bound <1"},
		{`eval: [{seqLen: 1}]`, "out of bound >=2"},
		{`output: dirs: "x"`, "field not allowed"},
		{`runs: x: dense: true`, "field not allowed"},
		{`model: synthetic: {arch: "qwen3", layers: 2, dim: 64, heads: 4, kvHeads: 2, headDim: 16, ffn: 128, vocab: 512, seqLen: 32, tie: true, seed: -1}`, ""},
		{`model: synthetic: headDim: 0`, "out of bound >=1"},
		{`model: synthetic: layers: 2.5`, "conflicting values"},
		{`model: synthetic: hidden: 64`, "field not allowed"},
		{`runs: x: model: {path: "hf:Qwen/Qwen3-0.6B", format: "hf"}`, ""},
		{`calibration: data: {format: "chat", template: "model", thinking: true}`, ""},
		{`eval: [{data: thinking: "yes"}]`, "conflicting values"},
		{`output: {formats: ["hf", "gguf"], dtype: "bfloat16"}`, ""},
		{`output: dtype: 16`, "conflicting values"},
	} {
		v := s.Recipe.Unify(ctx.CompileString(tc.src))
		err := v.Validate(cue.Concrete(true), cue.Final())
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.src, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one containing %q", tc.src, err, tc.want)
		}
	}
}
