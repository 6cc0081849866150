package main

import (
	"encoding/json"
	"strings"
	"testing"

	"lrmc/internal/shareddata"
)

// bench eval --json prints one object per task and one for generation,
// with the counts asked for and ratios that are their times' ratios.
func TestBenchEvalJSON(t *testing.T) {
	shareddata.Dir(t)
	code, out, errs := lrmc(t, "bench", "eval", "--task", "piqa,hellaswag", "--items", "2", "--reps", "1", "--gen-tokens", "4", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), out)
	}
	for i, task := range []string{"piqa", "hellaswag"} {
		var r struct {
			Kind, Model, Task string
			Items, Choices    int
			FedTokens         int     `json:"fed_tokens"`
			Seconds           float64 `json:"seconds"`
			PrefillSeconds    float64 `json:"prefill_seconds"`
			Ratio             float64 `json:"ratio"`
			StepsSeconds      float64 `json:"steps_seconds"`
		}
		if err := json.Unmarshal([]byte(lines[i]), &r); err != nil {
			t.Fatal(err)
		}
		choices := map[string]int{"piqa": 4, "hellaswag": 8}[task]
		if r.Kind != "mc" || r.Task != task || r.Model != "stories260K.bin" || r.Items != 2 || r.Choices != choices ||
			r.FedTokens <= 0 || !(r.Seconds > 0) || r.Ratio != r.Seconds/r.PrefillSeconds || !(r.StepsSeconds > 0) {
			t.Errorf("line %d: %s", i, lines[i])
		}
	}
	var g struct {
		Kind   string
		Tokens int
		Prompt int `json:"prompt_tokens"`
	}
	if err := json.Unmarshal([]byte(lines[2]), &g); err != nil || g.Kind != "generate" || g.Tokens != 4 || g.Prompt < 2 {
		t.Errorf("generation line %s: %v", lines[2], err)
	}
}

func TestBenchEvalErrors(t *testing.T) {
	shareddata.Dir(t) // the checks after the first need the data folder
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--task", "boolq"}, `bench: unknown task "boolq" (have piqa, hellaswag)`},
		{[]string{"--items", "0"}, "bench eval: --items 0 and --reps 3 must be positive"},
		{[]string{"--shape", "smollm-135m"}, `bench eval: --shape "smollm-135m": only qwen3-0.6b has a tokenizer in the shared data`},
		{[]string{"--shape", "qwen3-0.6b", "--model", "x.bin"}, "bench eval: --model and --shape exclude each other"},
	} {
		code, _, errs := lrmc(t, append([]string{"bench", "eval"}, c.args...)...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, code, errs, c.want)
		}
	}
}
