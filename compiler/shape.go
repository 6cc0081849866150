package compiler

import (
	"os"
	"path/filepath"

	"lrmc/compiler/ir"
	"lrmc/kernels/ggufmodel"
	"lrmc/kernels/hf"
	"lrmc/kernels/llama"
	"lrmc/kernels/llama2c"
	"lrmc/kernels/modelref"
	"lrmc/methods/spec"
)

// shapeOf reads what vet can know of a model without its weights: a
// synthetic model's fields, or a checkpoint's header (a llama2.c header,
// a Hugging Face config.json, GGUF metadata). ok is false when there is
// no shape to read: a missing model or path is reported where it was
// written, and a header that does not parse is the plan's to report,
// where the model is inspected.
func shapeOf(m ir.Model) (spec.Shape, bool) {
	if s := m.Synthetic; s != nil {
		return spec.Shape{Blocks: s.Layers, Dim: s.Dim}, s.Layers > 0
	}
	if m.Path == "" {
		return spec.Shape{}, false
	}
	kind := map[string]modelref.Kind{"hf": modelref.HFDir, "gguf": modelref.GGUF, "llama2c": modelref.Llama2c}[m.Format]
	if kind == 0 {
		res, err := modelref.Resolve(m.Path)
		if err != nil {
			return spec.Shape{}, false
		}
		kind = res.Kind
	}
	// Only regular files are read: a named pipe would block vet (file
	// reports it where the path is written).
	header := m.Path
	if kind == modelref.HFDir {
		header = filepath.Join(m.Path, "config.json")
	}
	if st, err := os.Stat(header); err != nil || !st.Mode().IsRegular() {
		return spec.Shape{}, false
	}
	var cfg llama.Config
	var err error
	switch kind {
	case modelref.Llama2c:
		cfg, err = llama2c.ReadConfig(m.Path)
	case modelref.HFDir:
		var c *hf.Config
		if c, err = hf.ReadConfig(m.Path); err == nil {
			cfg, err = c.LlamaConfig()
		}
	case modelref.GGUF:
		cfg, _, err = ggufmodel.ReadConfig(m.Path)
	default:
		return spec.Shape{}, false
	}
	if err != nil || cfg.Layers <= 0 {
		return spec.Shape{}, false
	}
	return spec.Shape{Blocks: cfg.Layers, Dim: cfg.Dim}, true
}

// checkShape runs the method's checks against the model's shape (depth:
// the amount removed against the model's blocks), reporting each problem
// where the field was written.
func (r *resolver) checkShape(m ir.Model, p ir.Prune) {
	s, ok := spec.Lookup(p.Paradigm, p.Method)
	if !ok || s.CheckShape == nil {
		return
	}
	shape, ok := shapeOf(m)
	if !ok {
		return
	}
	s.CheckShape(p, shape, func(field, format string, args ...any) {
		if h, ok := r.get(field); ok && !h.def {
			r.c.errs.add(h.pos, h.path, format, args...)
			return
		}
		r.c.errs.add(r.missingPos(field), r.msgPath(field), format, args...)
	})
}
