package dynamic_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/internal/shareddata"
	kdyn "lrmc/kernels/dynamic"
	"lrmc/kernels/llama2c"
	"lrmc/kernels/safetensors"
	"lrmc/methods/dynamic"
	"lrmc/methods/internal/optest"
	"lrmc/planner"
)

// routers returns SkipGPT-shaped routers for a model of layers×dim whose
// weights are a simple function of their position.
func routers(layers, dim int) *kdyn.Routers {
	rs := &kdyn.Routers{Method: kdyn.SkipGPT, Skip: 0.4, Layers: make([]kdyn.Layer, layers)}
	for i := range rs.Layers {
		a, m := kdyn.NewRouter(dim, 2), kdyn.NewRouter(dim, 2)
		for j := range a.W {
			a.W[j], m.W[j] = float32(i*j%7)/10, -float32(j%5)/10
		}
		a.B[1], m.B[1] = 0.5, float32(i)
		rs.Layers[i].Attn, rs.Layers[i].MLP = a, m
	}
	return rs
}

func untar(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name], _ = io.ReadAll(tr)
	}
}

// The Hugging Face export of a routed model is the dense export (weights,
// config) with routers.safetensors, which loads back to the same routers,
// and routers.json, which names the method, the ratio and the KV rule and
// says that llama.cpp and transformers run the model dense.
func TestExportHFWithRouters(t *testing.T) {
	lm, err := llama2c.Load(shareddata.Path(t, "models", "stories260K", "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	tok := shareddata.Path(t, "models", "stories260K", "tok512.bin")
	rs := routers(lm.Config.Layers, lm.Config.Dim)
	m := &ops.Model{LM: lm, Routers: rs}
	v, err := optest.Run(t, dynamic.OpHF, planner.ExportParams{DType: "float32", TokenizerFormat: "llama2c"}, m, tok)
	if err != nil {
		t.Fatal(err)
	}
	files := untar(t, v.([]byte))
	for _, f := range []string{"config.json", "model.safetensors", kdyn.FileName, dynamic.ConfigName} {
		if files[f] == nil {
			t.Errorf("the export lacks %s (has %d files)", f, len(files))
		}
	}
	got, _, err := kdyn.Decode(files[kdyn.FileName])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rs, got); diff != "" {
		t.Errorf("routers.safetensors (-want +got):\n%s", diff)
	}
	var cfg dynamic.Config
	if err := json.Unmarshal(files[dynamic.ConfigName], &cfg); err != nil {
		t.Fatal(err)
	}
	want := dynamic.Config{Paradigm: "dynamic", Method: "skipgpt", Ratio: 0.4, KVRule: "from-input", Layers: lm.Config.Layers, Routers: kdyn.FileName, Note: kdyn.Note}
	if cfg != want {
		t.Errorf("routers.json: %+v, want %+v", cfg, want)
	}
	// The weights are the dense export's, byte for byte.
	dense, err := optest.Run(t, planner.OpExportHF, planner.ExportParams{DType: "float32", TokenizerFormat: "llama2c"}, &ops.Model{LM: lm}, tok)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(untar(t, dense.([]byte))["model.safetensors"], files["model.safetensors"]) {
		t.Error("the weights differ from the dense export's")
	}
	// routers.safetensors beside model.bin: the same bytes.
	f, err := optest.Run(t, dynamic.OpFiles, dynamic.FilesParams{File: kdyn.FileName}, m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.([]byte), files[kdyn.FileName]) {
		t.Error("routers.safetensors beside model.bin differs from the one in hf/")
	}
	st, err := safetensors.Decode(f.([]byte))
	if err != nil || st.Metadata["note"] != kdyn.Note {
		t.Errorf("routers.safetensors header: %v, %v", st, err)
	}
	if _, err := optest.Run(t, dynamic.OpFiles, dynamic.FilesParams{File: kdyn.FileName}, &ops.Model{LM: lm}); err == nil {
		t.Error("writing the routers of a model without routers succeeded")
	}
}

// The routed model op validates the routers against the model and hands
// them on with the weights untouched when there is no stage 2.
func TestModelOp(t *testing.T) {
	lm, err := llama2c.Load(shareddata.Path(t, "models", "stories260K", "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	rs := routers(lm.Config.Layers, lm.Config.Dim)
	text := ops.Tokens{IDs: []int32{1, 2, 3, 4, 5, 6}, Rows: 2, Cols: 3}
	v, err := runEphemeral(t, dynamic.OpModel, dynamic.ModelParams{}, &ops.Model{LM: lm}, text, dynamic.Trained{Routers: rs})
	if err != nil {
		t.Fatal(err)
	}
	if m := v.(*ops.Model); m.LM != lm || m.Routers != rs || !slices.Equal(m.Text, text.IDs) {
		t.Error("the routed model is not the base model with its routers and calibration text")
	}
	_, err = runEphemeral(t, dynamic.OpModel, dynamic.ModelParams{}, &ops.Model{LM: lm}, text, dynamic.Trained{Routers: routers(lm.Config.Layers+1, lm.Config.Dim)})
	if err == nil {
		t.Error("routers for another depth were accepted")
	}
}

// runEphemeral runs an op whose result is never encoded (not cached).
func runEphemeral(t *testing.T, op string, params any, inputs ...any) (any, error) {
	t.Helper()
	p, _ := json.Marshal(params)
	c := &executor.Call{Node: &planner.Node{Op: op, Params: p}, Inputs: inputs, Progress: func(int64, int64) {}}
	return ops.Registry()[op].Run(context.Background(), c)
}

// A recipe reading an exported routed model (its Hugging Face directory)
// gets the routers with the weights: model.load attaches them, so
// perplexity and speed route it.
func TestLoadExportedRouters(t *testing.T) {
	lm, err := llama2c.Load(shareddata.Path(t, "models", "stories260K", "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	rs := routers(lm.Config.Layers, lm.Config.Dim)
	v, err := optest.Run(t, dynamic.OpHF, planner.ExportParams{DType: "float32", TokenizerFormat: "llama2c"},
		&ops.Model{LM: lm, Routers: rs}, shareddata.Path(t, "models", "stories260K", "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, b := range untar(t, v.([]byte)) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := runEphemeral(t, planner.OpModelLoad, planner.ModelLoadParams{Format: "hf", TokenizerFormat: "llama2c"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rs, m.(*ops.Model).Routers); diff != "" {
		t.Errorf("loaded routers (-want +got):\n%s", diff)
	}
	os.Remove(filepath.Join(dir, kdyn.FileName))
	if m, err := runEphemeral(t, planner.OpModelLoad, planner.ModelLoadParams{Format: "hf", TokenizerFormat: "llama2c"}, dir); err != nil || m.(*ops.Model).Routers != nil {
		t.Errorf("without routers.safetensors: %v, routers %v", err, m)
	}
}
