package dynamic

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// Calibrated routers skip, on their calibration tokens, exactly the asked
// fraction of every routed part (the bias sits between two tokens'
// logits; the tokens are distinct, so no two logits tie), and MoD keeps its
// first and last layers dense.
func TestCalibratedHitsSkip(t *testing.T) {
	lm := testModel(t, "qwen3", 4)
	const b, T = 2, 25
	tokens := make([]int32, b*T)
	for i := range tokens {
		tokens[i] = int32((i * 37) % lm.Config.Vocab) // 37 is prime to 61: distinct
	}
	for _, m := range Methods {
		rs, err := Calibrated(lm, m, 0.3, tokens, b, T, 1)
		if err != nil {
			t.Fatal(err)
		}
		dm, err := New(lm, rs)
		if err != nil {
			t.Fatal(err)
		}
		st := dm.Forward(tokens, b, T).Stats
		for i, l := range st.Layers {
			for p, ps := range l {
				want := int64(b*T) - 15
				if m == MoD && (i == 0 || i == 3) {
					want = b * T
				}
				if ps.Executed != want {
					t.Errorf("%s: layer %d part %d ran %d of %d tokens, want %d", m, i, p, ps.Executed, ps.Tokens, want)
				}
			}
		}
	}
	if _, err := Calibrated(lm, "moe", 0.3, tokens, b, T, 1); err == nil || !strings.Contains(err.Error(), `unknown method "moe"`) {
		t.Errorf("unknown method: %v", err)
	}
	if _, err := Calibrated(lm, MoD, 1, tokens, b, T, 1); err == nil || !strings.Contains(err.Error(), "outside [0, 1)") {
		t.Errorf("skip 1: %v", err)
	}
}

func TestMeasureSpeed(t *testing.T) {
	lm := testModel(t, "qwen3", 3)
	tokens := tokensFor(32, lm.Config.Vocab, 9)
	rs, err := Calibrated(lm, DLLM, 0.5, tokens, 1, 32, 1)
	if err != nil {
		t.Fatal(err)
	}
	dm, _ := New(lm, rs)
	sp, err := MeasureSpeed(dm, SpeedOptions{Prefill: 32, Decode: 8, Reps: 2, MinRep: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]float64{"dense prefill": sp.DensePrefill, "routed prefill": sp.RoutedPrefill,
		"dense decode": sp.DenseDecode, "routed decode": sp.RoutedDecode, "prefill ratio": sp.PrefillRatio, "decode ratio": sp.DecodeRatio,
		"prefill CPU ratio": sp.PrefillCPURatio, "decode CPU ratio": sp.DecodeCPURatio} {
		if !(v > 0) || math.IsInf(v, 0) {
			t.Errorf("%s is %v", name, v)
		}
	}
	if sp.Prefill.Layers[1][Attn].Tokens != 32 || sp.Decode.Layers[1][Attn].Tokens != 8 {
		t.Errorf("stats count %d prefill and %d decode tokens, want 32 and 8", sp.Prefill.Layers[1][Attn].Tokens, sp.Decode.Layers[1][Attn].Tokens)
	}
	if s := sp.Prefill.SkippedCompute(); !(s > 0.2 && s < 0.8) {
		t.Errorf("prefill skipped %v of the compute, routers calibrated to 0.5", s)
	}
	if _, err := MeasureSpeed(dm, SpeedOptions{Prefill: 600}); err == nil || !strings.Contains(err.Error(), "exceed the model's context of 512") {
		t.Errorf("too long: %v", err)
	}
}

// Given tokens are the ones measured: the decode meets the prefill's
// decisions at its positions (from 0, or continuing a prompt); too few or
// out-of-vocabulary tokens are refused.
func TestMeasureSpeedTokens(t *testing.T) {
	lm := testModel(t, "qwen3", 3)
	tokens := tokensFor(24, lm.Config.Vocab, 3)
	rs, err := Calibrated(lm, SkipGPT, 0.4, tokens, 1, 24, 1)
	if err != nil {
		t.Fatal(err)
	}
	dm, _ := New(lm, rs)
	sp, err := MeasureSpeed(dm, SpeedOptions{Prefill: 24, Decode: 24, Reps: 1, Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	want := dm.Forward(tokens, 1, 24).Stats
	for i := range want.Layers {
		for p := range 2 {
			if g, w := sp.Decode.Layers[i][p].Executed, want.Layers[i][p].Executed; g != w || sp.Prefill.Layers[i][p].Executed != w {
				t.Errorf("layer %d part %d: decode ran %d and prefill %d tokens, Forward on the tokens %d", i, p, g, sp.Prefill.Layers[i][p].Executed, w)
			}
		}
	}
	// Eight decode steps continue a prompt of the first 16 tokens.
	sp, err = MeasureSpeed(dm, SpeedOptions{Prefill: 24, Decode: 8, Reps: 1, Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	exec := dm.Forward(tokens, 1, 24).Exec
	for i := range exec {
		for p := range 2 {
			var want int64
			for _, e := range exec[i][p][16:] {
				if e {
					want++
				}
			}
			if g := sp.Decode.Layers[i][p]; g.Executed != want || g.Tokens != 8 {
				t.Errorf("layer %d part %d: decode ran %d of %d tokens, Forward %d of positions 16…23", i, p, g.Executed, g.Tokens, want)
			}
		}
	}
	if _, err := MeasureSpeed(dm, SpeedOptions{Prefill: 24, Decode: 30, Tokens: tokens}); err == nil || !strings.Contains(err.Error(), "24 tokens given for 24 prefill tokens and 30 decode steps") {
		t.Errorf("too few tokens: %v", err)
	}
	bad := slices.Clone(tokens)
	bad[5] = 1000
	if _, err := MeasureSpeed(dm, SpeedOptions{Prefill: 24, Decode: 8, Tokens: bad}); err == nil || !strings.Contains(err.Error(), "token 1000 at index 5 is outside the vocabulary [0, 61)") {
		t.Errorf("bad token: %v", err)
	}
}
