package ops_test

import (
	"context"
	"encoding/json"
	"math"
	"testing"

	"lrmc/executor/ops"
)

// A model held in bfloat16 runs the whole pipeline (capture, scores,
// evaluation, export) and lands within bf16 rounding of the float32 run.
func TestBFloat16Pipeline(t *testing.T) {
	out32, out16 := t.TempDir(), t.TempDir()
	if err := apply(t, context.Background(), t.TempDir(), stories(t, out32, 1), &recorder{}); err != nil {
		t.Fatal(err)
	}
	r := stories(t, out16, 1)
	r.DenseModel.DType = "bfloat16"
	for i := range r.Runs {
		r.Runs[i].Model.DType = "bfloat16"
	}
	rec := &recorder{}
	if err := apply(t, context.Background(), t.TempDir(), r, rec); err != nil {
		t.Fatal(err)
	}
	var a, b ops.Results
	json.Unmarshal(readResults(t, out32), &a)
	json.Unmarshal(readResults(t, out16), &b)
	for _, name := range []string{"dense", "shortgpt-1"} {
		pa, pb := a.Dense["perplexity"].(float64), b.Dense["perplexity"].(float64)
		if name != "dense" {
			pa, pb = a.Runs[name]["perplexity"].(float64), b.Runs[name]["perplexity"].(float64)
		}
		if pa == pb {
			t.Errorf("%s: bfloat16 gave exactly the float32 perplexity %g; were the weights converted?", name, pa)
		}
		if math.Abs(pb/pa-1) > 0.02 {
			t.Errorf("%s: perplexity %g in bfloat16 vs %g in float32", name, pb, pa)
		}
	}
	if a.Runs["shortgpt-1"]["removed"].([]any)[0] != b.Runs["shortgpt-1"]["removed"].([]any)[0] {
		t.Errorf("bfloat16 removed %v, float32 %v", b.Runs["shortgpt-1"]["removed"], a.Runs["shortgpt-1"]["removed"])
	}
}
