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
	for _, f := range []string{"dense", "model", "calibration", "output", "recovery"} {
		rec = rec.FillPath(cue.ParsePath(f), s.Defaults.LookupPath(cue.ParsePath(f)))
	}
	if err := s.Recipe.Unify(rec).Validate(cue.Concrete(true), cue.Final()); err != nil {
		t.Fatalf("#Defaults does not satisfy #Recipe: %v", errors.Details(err, nil))
	}
	// The per-method and per-loss defaults are recoveries of their own.
	for _, f := range []string{"recoveryMethod.lora", "recoveryMethod.full", "recoveryLoss.lm", "recoveryLoss.kd"} {
		rec := ctx.CompileString("{}").FillPath(cue.ParsePath("recovery"), s.Defaults.LookupPath(cue.ParsePath(f)))
		if err := s.Recipe.Unify(rec).Validate(cue.Concrete(true), cue.Final()); err != nil {
			t.Errorf("#Defaults.%s does not satisfy #Recovery: %v", f, errors.Details(err, nil))
		}
	}
	if got, err := s.Defaults.LookupPath(cue.ParsePath("output.dtype")).String(); err != nil || got != "float32" {
		t.Errorf("#Defaults.output.dtype = %q (%v), want float32", got, err)
	}
	for path, want := range map[string]float64{
		"calibration.data.split.from": 0, "calibration.data.split.to": 0.9,
		"eval.data.split.from": 0.9, "eval.data.split.to": 1,
		"recovery.data.split.from": 0, "recovery.data.split.to": 0.9,
		"recoveryMethod.lora.lr": 4e-4, "recoveryMethod.full.lr": 2e-5,
		"recoveryMethod.lora.alpha": 32, "recoveryMethod.lora.dropout": 0.1,
		"recovery.warmup": 0.1, "recovery.maxGradNorm": 1, "recoveryLoss.kd.temperature": 2,
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
		{`eval: {piqa: {task: "piqa", fewshot: 5, seed: 1, samples: 200}, ppl: {task: "perplexity", seqLen: 64}}`, ""},
		{`eval: {piqa: {fewshot: -1}}`, "out of bound >=0"},
		{`eval: {piqa: {shots: 1}}`, "field not allowed"},
		{`runs: x: eval: [{name: "a", task: "piqa"}]`, ""},
		{`runs: x: eval: [{sample: 1}]`, "field not allowed"},
		{`runs: x: eval: {a: {seqLen: 1}}`, "out of bound >=2"},
		{`eval: "piqa"`, "conflicting values"},
		{`tasks: t: {text: "{{q}}", choices: ["a", "b"], gold: "g", preprocess: "hellaswag", delimiter: " ", fewshotDelimiter: "\n"}`, ""},
		{`tasks: t: {text: "{{q}}", choices: ["a"]}`, "list.MinItems"},
		{`tasks: t: {txt: "{{q}}"}`, "field not allowed"},
		{`output: {formats: ["hf", "gguf"], dtype: "bfloat16"}`, ""},
		{`output: dtype: 16`, "conflicting values"},
		{`recovery: {method: "lora", data: {path: "x", format: "chat", thinking: false}, steps: 200, batch: 4, accumulation: 8, seqLen: 256, lr: 4e-4, warmup: 0.1, schedule: "cosine", weightDecay: 0, maxGradNorm: 1.0, rank: 16, alpha: 32, dropout: 0.1, targets: ["q", "v"], loss: "kd", temperature: 2.0, topK: 0, seed: -3, checkpointEvery: 0}`, ""},
		{`runs: x: recovery: {method: "full", lr: 1e-5}`, ""},
		{`recovery: steps: 0`, "out of bound >0"},
		{`recovery: accumulation: 0`, "out of bound >=1"},
		{`recovery: seqLen: 1`, "out of bound >=2"},
		{`recovery: lr: 0`, "out of bound >0"},
		{`recovery: warmup: 1`, "out of bound <1"},
		{`recovery: weightDecay: -0.1`, "out of bound >=0"},
		{`recovery: maxGradNorm: -1`, "out of bound >=0"},
		{`recovery: dropout: 1.0`, "out of bound <1"},
		{`recovery: rank: 8.5`, "conflicting values"},
		{`recovery: targets: []`, "list.MinItems"},
		{`recovery: temperature: 0`, "out of bound >0"},
		{`recovery: topK: -1`, "out of bound >=0"},
		{`recovery: checkpointEvery: -1`, "out of bound >=0"},
		{`runs: x: recovery: epochs: 1`, "field not allowed"},
	} {
		user := ctx.CompileString(tc.src)
		v := s.For(user).Unify(user)
		err := v.Validate(cue.Concrete(true), cue.Final())
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.src, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one containing %q", tc.src, err, tc.want)
		}
	}
}
