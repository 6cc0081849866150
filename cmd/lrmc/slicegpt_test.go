package main

import (
	"context"
	"strings"
	"testing"

	"lrmc/kernels/safetensors"
	"lrmc/kernels/slicegpt"
	"lrmc/kernels/synth"
)

// TestInspectSliced: lrmc inspect describes a SliceGPT export (widths,
// parameters counted from its tensors, the format's warning), and
// generate refuses it with the reason instead of "no config.json".
func TestInspectSliced(t *testing.T) {
	m, _, err := synth.New(synth.Spec{Arch: "llama", Layers: 2, Dim: 32, Heads: 4, KVHeads: 2, FFN: 48, Vocab: 64, SeqLen: 64, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	calib := make([]int32, 64)
	for i := range calib {
		calib[i] = int32(i)
	}
	sm, _, err := slicegpt.Slice(context.Background(), m, calib, 32, nil, slicegpt.Options{Sparsity: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := slicegpt.Save(dir, sm, safetensors.DTypeF32); err != nil {
		t.Fatal(err)
	}
	code, out, errs := lrmc(t, "inspect", dir)
	if code != 0 {
		t.Fatalf("inspect: exit %d: %s", code, errs)
	}
	for _, want := range []string{"transformers and llama.cpp cannot load it", "hidden        32 sliced to 24 (ratio 0.25)",
		"block widths  24→24→24, 24→24→32", "parameters    " + commas(sm.Params()), "layers.0.attn_shortcut"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	code, _, errs = lrmc(t, "generate", "--model", dir, "--prompt", "x")
	if code == 0 || !strings.Contains(errs, "holds a SliceGPT-sliced model") {
		t.Fatalf("generate on a SliceGPT export: exit %d, %s", code, errs)
	}
}
