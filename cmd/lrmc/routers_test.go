package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"lrmc/internal/shareddata"
	"lrmc/kernels/dynamic"
	"lrmc/kernels/llama2c"
)

// A model with routers.safetensors beside it generates with its routers:
// the ids are the greedy tokens of the routed model recomputed here by
// full compute-skipping forward passes over the growing sequence (not the
// decoder generate uses), stderr says that only lrmc runs the routers and
// --json reports what they skipped; --dense generates as the plain model.
func TestGenerateWithRouters(t *testing.T) {
	src := shareddata.Path(t, "models", "stories260K", "stories260K.bin")
	tok := shareddata.Path(t, "models", "stories260K", "tok512.bin")
	dir := t.TempDir()
	bin := filepath.Join(dir, "model.bin")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o644); err != nil {
		t.Fatal(err)
	}
	lm, err := llama2c.Load(bin)
	if err != nil {
		t.Fatal(err)
	}
	// SkipGPT routers that skip a token's MLP in layer 2 when its first
	// residual feature is positive, and never skip elsewhere.
	rs := &dynamic.Routers{Method: dynamic.SkipGPT, Skip: 0.2, Layers: make([]dynamic.Layer, lm.Config.Layers)}
	for i := range rs.Layers {
		a, m := dynamic.NewRouter(lm.Config.Dim, 2), dynamic.NewRouter(lm.Config.Dim, 2)
		a.B[1], m.B[1] = 1, 1
		if i == 2 {
			m.B[1], m.W[0] = 0, 1 // [skip, execute]: skip iff x₀ > 0
		}
		rs.Layers[i].Attn, rs.Layers[i].MLP = a, m
	}
	if err := dynamic.Save(filepath.Join(dir, dynamic.FileName), rs); err != nil {
		t.Fatal(err)
	}
	args := []string{"generate", "--json", "--model", bin, "--tokenizer", tok, "--prompt", "Once upon a time", "--max-new-tokens", "24"}
	code, out, errs := lrmc(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var g struct {
		genJSON
		Routers struct {
			Skip   float64 `json:"skip"`
			Layers []struct {
				Attn, MLP float64
			} `json:"layers"`
		} `json:"routers"`
	}
	if err := json.Unmarshal([]byte(out), &g); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errs, dynamic.Note) || !strings.Contains(errs, "skipgpt routers trained for skip ratio 0.2") {
		t.Errorf("stderr does not say which routers run and that only lrmc runs them:\n%s", errs)
	}
	dm, err := dynamic.New(lm, rs)
	if err != nil {
		t.Fatal(err)
	}
	seq := slices.Clone(g.PromptIDs)
	var want []int32
	for range 24 {
		logits := dm.ForwardLast(seq, 1, len(seq)).Logits
		next := int32(0)
		for i, v := range logits {
			if v > logits[next] {
				next = int32(i)
			}
		}
		want = append(want, next)
		seq = append(seq, next)
	}
	if !slices.Equal(g.IDs, want) {
		t.Errorf("routed generation:\n%v\nwant (full routed forward passes):\n%v", g.IDs, want)
	}
	if l := g.Routers.Layers; len(l) != lm.Config.Layers || !(l[2].MLP > 0 && l[2].MLP < 1) || l[1].MLP != 0 || l[2].Attn != 0 {
		t.Errorf("realised skip ratios per layer: %+v; want only layer 2's MLP to skip, some tokens", l)
	}
	dense := generateJSON(t, "--model", bin, "--tokenizer", tok, "--prompt", "Once upon a time", "--max-new-tokens", "24", "--dense")
	if slices.Equal(dense.IDs, g.IDs) {
		t.Error("--dense generated the routed model's tokens: the routers changed nothing, the test proves nothing")
	}
}
