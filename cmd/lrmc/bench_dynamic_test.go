package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestBenchDynamicJSON(t *testing.T) {
	code, out, errs := lrmc(t, "bench", "dynamic", "--shape", "stories260k", "--method", "mod", "--skip", "0.5",
		"--prefill", "16", "--decode", "4", "--reps", "1", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r dynamicBench
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	if r.Shape != "stories260k" || r.Method != "mod" || r.DType != "bfloat16" || r.Prefill != 16 || r.Decode != 4 || r.Reps != 1 {
		t.Errorf("result %+v", r)
	}
	if !(r.DensePrefill > 0 && r.RoutedPrefill > 0 && r.DenseDecode > 0 && r.RoutedDecode > 0 && r.PrefillRatio > 0 && r.DecodeRatio > 0 && r.PrefillCPU > 0 && r.DecodeCPU > 0) {
		t.Errorf("speeds %+v", r)
	}
	// stories260k has 5 layers; MoD keeps the first and last dense, and
	// the routers are calibrated on the measured prefill: the others skip
	// exactly half of its 16 tokens.
	want := []float64{0, 0.5, 0.5, 0.5, 0}
	if !slices.Equal(r.AttnSkip, want) || !slices.Equal(r.MLPSkip, want) || !(r.PrefillSkipped > 0) || len(r.DecodeAttnSkip) != 5 {
		t.Errorf("skip per layer %v / %v (decode %v), skipped compute %v", r.AttnSkip, r.MLPSkip, r.DecodeAttnSkip, r.PrefillSkipped)
	}
}

func TestBenchDynamicTableAndErrors(t *testing.T) {
	code, out, errs := lrmc(t, "bench", "dynamic", "--shape", "stories260k", "--prefill", "8", "--decode", "2", "--reps", "1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"biases calibrated to skip 0.40", "routed/dense", "by CPU time", "prefill", "decode", "realised skip ratio per layer (prefill)", "realised skip ratio per layer (decode)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, c := range []struct{ args, want string }{
		{"--method moe", `--method "moe" is not one of [mod dllm skipgpt]`},
		{"--skip 1", "--skip 1 is outside [0, 1)"},
		{"--dtype int8", "bench dynamic: --dtype"},
		{"--shape gpt5", `unknown model shape "gpt5"`},
	} {
		code, _, errs := lrmc(t, append([]string{"bench", "dynamic", "--reps", "1"}, strings.Fields(c.args)...)...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%s: exit %d, stderr %q, want %q", c.args, code, errs, c.want)
		}
	}
}
