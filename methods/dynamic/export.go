package dynamic

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"lrmc/executor"
	"lrmc/executor/ops"
	kdyn "lrmc/kernels/dynamic"
	"lrmc/planner"
)

// ConfigName is the routers' configuration file beside routers.safetensors:
// the method, the ratio and the KV rule in JSON, and the note that only
// lrmc runs the routers.
const ConfigName = "routers.json"

// Config is routers.json.
type Config struct {
	Method   string  `json:"method"`
	Ratio    float64 `json:"ratio"`
	KVRule   string  `json:"kv_rule"`
	Layers   int     `json:"layers"`
	Routers  string  `json:"routers"`
	Note     string  `json:"note"`
	Paradigm string  `json:"paradigm"`
}

// NewConfig describes rs.
func NewConfig(rs *kdyn.Routers) Config {
	return Config{Paradigm: "dynamic", Method: string(rs.Method), Ratio: rs.Skip, KVRule: rs.Method.KVRule().String(),
		Layers: len(rs.Layers), Routers: kdyn.FileName, Note: kdyn.Note}
}

// FilesParams name the file a files node writes (routers.safetensors or
// routers.json). Input: the routed model.
type FilesParams struct {
	File string `json:"file"`
}

// HFParams are the core HF export's. Inputs: routed model, tokenizer
// source.
type HFParams = planner.ExportParams

// exports plans the routers beside every exported model: inside the
// Hugging Face directory (its own export), beside model.bin and
// model.gguf (files under the run's directory).
func exports(mp *planner.MethodPlan, routed *planner.Node) (map[string]planner.Export, []planner.Export) {
	o := mp.Output()
	var own map[string]planner.Export
	if slices.Contains(o.Formats, "hf") {
		dtype := o.DType
		if dtype == "" {
			dtype = "float32"
		}
		ex := mp.Add(OpHF, HFParams{DType: dtype, TokenizerFormat: mp.Info.TokenizerFormat}, "export hf "+dtype+" with routers", routed, mp.Tokenizer())
		own = map[string]planner.Export{"hf": {Node: ex, Path: "hf", Dir: true}}
	}
	var files []planner.Export
	if slices.Contains(o.Formats, "llama2c") || slices.Contains(o.Formats, "gguf") {
		for _, f := range []string{kdyn.FileName, ConfigName} {
			files = append(files, planner.Export{Node: mp.Add(OpFiles, FilesParams{File: f}, "write "+f, routed), Path: f})
		}
	}
	return own, files
}

// exportHF is the core Hugging Face export with the routers' two files
// added to the directory. Inputs: routed model, tokenizer source.
type exportHF struct{ ops.RawBytes }

func (exportHF) Version() int { return 1 }

func (exportHF) Run(ctx context.Context, c *executor.Call) (any, error) {
	m, err := routedInput(c)
	if err != nil {
		return nil, err
	}
	v, err := ops.Registry()[planner.OpExportHF].Run(ctx, c)
	if err != nil {
		return nil, err
	}
	bundle, ok := v.([]byte)
	if !ok {
		return nil, fmt.Errorf("the HF export returned %T, want a bundle", v)
	}
	add := map[string][]byte{}
	for _, f := range []string{kdyn.FileName, ConfigName} {
		if add[f], err = routerFile(m.Routers, f); err != nil {
			return nil, err
		}
	}
	return addToBundle(bundle, add)
}

// addToBundle adds files to a bundle: unpacked into a temporary directory
// and packed again by executor.PackDir, which keeps the bundle's form.
func addToBundle(bundle []byte, add map[string][]byte) ([]byte, error) {
	dir, err := os.MkdirTemp("", "lrmc-export-dynamic-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	tr := tar.NewReader(bytes.NewReader(bundle))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("bundle: %s: %w", h.Name, err)
		}
		if _, clash := add[h.Name]; clash || filepath.Base(h.Name) != h.Name {
			return nil, fmt.Errorf("bundle: unexpected entry %q", h.Name)
		}
		add[h.Name] = b
	}
	for n, b := range add {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			return nil, err
		}
	}
	return executor.PackDir(dir)
}
