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
