package bench

import (
	"os"
	"testing"
)

// TestComputeError: on the stories260K shape bf16 compute changes the
// logits (it is not float32 compute in disguise) but only by bf16 rounding
// of the activations: well under a tenth of their scale, and the most
// likely token mostly agrees. LRMC_BF16_SHAPES=1 also measures the
// SmolLM-135M and Qwen3-0.6B shapes and logs the numbers (the README's
// table; about a minute):
//
//	LRMC_BF16_SHAPES=1 go test -run ComputeError -v ./kernels/bench
func TestComputeError(t *testing.T) {
	shapes := ModelShapes[:1]
	if os.Getenv("LRMC_BF16_SHAPES") != "" {
		shapes = ModelShapes
	}
	for _, s := range shapes {
		e, err := MeasureComputeError(s, 128)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s, %d tokens: max |Δ logit| %.4g, mean %.4g, max |logit| %.4g, top-1 agreement %.3f",
			e.Shape, e.Tokens, e.MaxAbs, e.MeanAbs, e.MaxLogit, e.Top1)
		if !(e.MaxAbs > 0) || !(e.MaxAbs < 0.1*e.MaxLogit) || !(e.Top1 >= 0.9) {
			t.Errorf("%s: bf16 vs f32 compute: %+v", s.Name, e)
		}
	}
}

// TestCompareLogits checks the statistics on a hand-made case.
func TestCompareLogits(t *testing.T) {
	want := []float32{1, 2, 3, -4, 0, 1}
	got := []float32{1, 2.5, 3, -4, 2, 1} // second position's argmax moves
	e := compareLogits("x", 2, 3, want, got)
	if e.MaxAbs != 2 || e.MeanAbs != 2.5/6 || e.MaxLogit != 4 || e.Top1 != 0.5 {
		t.Fatalf("compareLogits = %+v", e)
	}
}
