// Package slicegpt is the width method SliceGPT (Ashkboos et al. 2024) as a
// method unit: prune: {paradigm: "width", method: "slicegpt", ratio: s}
// rotates every block's residual stream into the principal components of
// its calibration activations and deletes the fraction s of the width
// (kernels/slicegpt does the work).
//
// Its statistics are its own: after the first block, every covariance is
// measured on the output of blocks already sliced (the reference's
// sequential calibration), so it depends on the ratio and is part of the
// slicing node. The one statistic a ratio sweep shares is the covariance of
// the first block's input (the embeddings), a node of its own keyed by the
// model and the calibration windows only; the windows themselves are the
// shared calibration windows of the run.
//
// The sliced model is not a Llama model (shortcut matrices between blocks),
// so the compiler lets it be evaluated by perplexity only and exported
// only as output format "slicegpt", lrmc's own layout.
package slicegpt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"lrmc/compiler/ir"
	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/kernels/hf"
	"lrmc/kernels/safetensors"
	ksg "lrmc/kernels/slicegpt"
	"lrmc/methods"
	"lrmc/methods/spec"
	"lrmc/planner"
)

// The unit's ops.
const (
	// OpInputCov is the covariance of the first block's input over the
	// calibration windows: independent of the ratio, so a sweep computes
	// it once.
	OpInputCov = "slicegpt.inputcov"
	// OpSlice folds, rotates and slices the model (sequential calibration
	// through the blocks already sliced); its result, the sliced model
	// and its PCA statistics, is cached.
	OpSlice = "slicegpt.slice"
	// OpModel hands the sliced model to evaluation (not cached: a view).
	OpModel = "slicegpt.model"
	// OpExport writes the sliced model in lrmc's layout, with the
	// tokenizer.
	OpExport = "export.slicegpt"
)

// The reference's calibration defaults (run_slicegpt.py: --cal-nsamples
// 128, --cal-max-seqlen 2048); the length is capped at the model's context.
const (
	DefaultSamples = 128
	DefaultSeqLen  = 2048
)

// Format is the output format (and model form) of sliced models.
const Format = "slicegpt"

// CovParams: inputs are the model and the calibration windows.
type CovParams struct {
	Samples int `json:"samples"`
	SeqLen  int `json:"seqLen"`
}

// SliceParams: inputs are the model, the calibration windows and the input
// covariance. Width is d', derived from Ratio and RoundInterval (in the
// key for readability; it adds no freedom).
type SliceParams struct {
	Ratio         float64 `json:"ratio"`
	RoundInterval int     `json:"roundInterval"`
	Width         int     `json:"width"`
	Samples       int     `json:"samples"`
	SeqLen        int     `json:"seqLen"`
}

// ExportParams: inputs are the slicing and the tokenizer source.
type ExportParams struct {
	DType           string `json:"dtype"`
	TokenizerFormat string `json:"tokenizerFormat"`
}

func init() {
	methods.Register(methods.Unit{
		Spec: &spec.Spec{
			Paradigm: "width", Name: "slicegpt", Calibration: true,
			DefaultSamples: DefaultSamples, DefaultSeqLen: DefaultSeqLen, ModelForm: Format,
			Fields: []spec.Field{
				{Name: "ratio", CUE: "number & >0 & <1", Kind: "float",
					Doc: "slicing ratio s: the fraction of the residual width removed (d' = ⌊(1−s)·d⌋, rounded down to roundInterval)"},
				{Name: "roundInterval", CUE: "int & >=1", Default: ksg.DefaultRoundInterval,
					Doc: "the sliced width is rounded down to a multiple of it (the reference's --round-interval)"},
			},
			Check: func(o ir.Options, report func(field, format string, args ...any)) {
				if o.Float("ratio") == 0 {
					report("ratio", "width/slicegpt needs ratio, the slicing ratio: the fraction of the residual width removed")
				}
			},
		},
		Plan: plan,
		Ops:  map[string]executor.Op{OpInputCov: inputCov{}, OpSlice: slice{}, OpModel: model{}, OpExport: export{}},
	})
}

func plan(mp *planner.MethodPlan) *planner.Pruned {
	pr := mp.Run.Prune
	ratio, round := pr.Options.Float("ratio"), pr.Options.Int("roundInterval")
	width, err := ksg.Width(mp.Info.Dim, ratio, round)
	if err != nil {
		mp.Errorf("prune.ratio", "%v", err)
		return nil
	}
	c := &mp.Run.Calibration
	if c.SeqLen == 0 {
		c.SeqLen = min(DefaultSeqLen, mp.Info.SeqLen)
	}
	windows := mp.Windows()
	if windows == nil {
		return nil
	}
	cov := mp.Add(OpInputCov, CovParams{Samples: c.Samples, SeqLen: c.SeqLen}, "slicegpt: input covariance", mp.Model, windows)
	sl := mp.Add(OpSlice, SliceParams{Ratio: ratio, RoundInterval: round, Width: width, Samples: c.Samples, SeqLen: c.SeqLen},
		fmt.Sprintf("slicegpt: rotate and slice %d → %d", mp.Info.Dim, width), mp.Model, windows, cov)
	out := &planner.Pruned{Model: mp.Add(OpModel, struct{}{}, "sliced model", sl), Decision: sl}
	if o := mp.Output(); slices.Contains(o.Formats, Format) {
		dtype := o.DType
		if dtype == "" {
			dtype = "float32"
		}
		ex := mp.Add(OpExport, ExportParams{DType: dtype, TokenizerFormat: mp.Info.TokenizerFormat},
			"export slicegpt "+dtype, sl, mp.Tokenizer())
		out.Exports = map[string]planner.Export{Format: {Node: ex, Path: "slicegpt", Dir: true}}
	}
	return out
}

// inputCov accumulates the first block's input covariance. Inputs: model,
// calibration windows.
type inputCov struct{}

func (inputCov) Version() int { return 1 }

func (inputCov) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p CovParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	m, err := ops.Input[*ops.Model](c, 0)
	if err != nil {
		return nil, err
	}
	if m.LM == nil {
		return nil, fmt.Errorf("slicegpt needs a Llama model to slice")
	}
	w, err := ops.CalibrationWindows(c, 1, p.Samples, p.SeqLen)
	if err != nil {
		return nil, err
	}
	return ksg.InputCovariance(ctx, m.LM, w.IDs, w.Cols)
}

func (inputCov) Encode(v any) ([]byte, error) {
	cv, ok := v.(*ksg.Cov)
	if !ok {
		return nil, fmt.Errorf("result is %T, want *slicegpt.Cov", v)
	}
	return ksg.EncodeCov(cv)
}

func (inputCov) Decode(b []byte) (any, error) { return ksg.DecodeCov(b) }

// Result is a slicing: the sliced model and how much calibration variance
// its kept coordinates carry.
type Result struct {
	Model *ksg.Model
	Stats ksg.Stats
}

// Metrics are what a slicing adds to its run's metrics: the widths and the
// fraction of each PCA's variance kept.
func (r Result) Metrics() map[string]any {
	return map[string]any{
		"slicedWidth":           r.Model.Width,
		"denseWidth":            r.Model.Config.Dim,
		"keptVarianceEmbedding": r.Stats.Embedding,
		"keptVarianceAttn":      r.Stats.Attn,
		"keptVarianceMLP":       r.Stats.MLP,
	}
}

// slice rotates and slices. Inputs: model, calibration windows, input
// covariance.
type slice struct{}

func (slice) Version() int { return 1 }

func (slice) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p SliceParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	m, err := ops.Input[*ops.Model](c, 0)
	if err != nil {
		return nil, err
	}
	if m.LM == nil {
		return nil, fmt.Errorf("slicegpt needs a Llama model to slice")
	}
	w, err := ops.CalibrationWindows(c, 1, p.Samples, p.SeqLen)
	if err != nil {
		return nil, err
	}
	cov, err := ops.Input[*ksg.Cov](c, 2)
	if err != nil {
		return nil, err
	}
	sm, st, err := ksg.Slice(ctx, m.LM, w.IDs, w.Cols, cov, ksg.Options{
		Sparsity: p.Ratio, RoundInterval: p.RoundInterval,
		Progress: func(done, total int) { c.Progress(int64(done), int64(total)) },
	})
	if err != nil {
		return nil, err
	}
	if sm.Width != p.Width {
		return nil, fmt.Errorf("sliced to width %d, planned %d", sm.Width, p.Width)
	}
	return Result{Model: sm, Stats: *st}, nil
}

// A Result is stored as the length of its statistics' JSON (8 bytes,
// little-endian), that JSON, and the model's encoding.
func (slice) Encode(v any) ([]byte, error) {
	r, ok := v.(Result)
	if !ok {
		return nil, fmt.Errorf("result is %T, want slicegpt.Result", v)
	}
	st, err := json.Marshal(r.Stats)
	if err != nil {
		return nil, err
	}
	mb, err := ksg.Encode(r.Model)
	if err != nil {
		return nil, err
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(st)))
	return append(append(out, st...), mb...), nil
}

func (slice) Decode(b []byte) (any, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("slicegpt result: %d bytes", len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > uint64(len(b)-8) {
		return nil, fmt.Errorf("slicegpt result: statistics of %d bytes in %d", n, len(b)-8)
	}
	var r Result
	if err := json.Unmarshal(b[8:8+n], &r.Stats); err != nil {
		return nil, fmt.Errorf("slicegpt result: %w", err)
	}
	m, err := ksg.Decode(b[8+n:])
	if err != nil {
		return nil, err
	}
	r.Model = m
	return r, nil
}

// model hands a slicing's model to evaluation. Input: the slicing.
type model struct{ ops.Ephemeral }

func (model) Version() int { return 1 }

func (model) Run(ctx context.Context, c *executor.Call) (any, error) {
	r, err := ops.Input[Result](c, 0)
	if err != nil {
		return nil, err
	}
	return &ops.Model{Sliced: r.Model}, nil
}

// export writes the sliced model (kernels/slicegpt.Save: config, weights,
// a README saying what reads it) and the tokenizer beside it. Inputs: the
// slicing, the tokenizer source.
type export struct{}

func (export) Version() int { return 1 }

func (export) Encode(v any) ([]byte, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, fmt.Errorf("result is %T, want []byte", v)
	}
	return b, nil
}

func (export) Decode(b []byte) (any, error) { return b, nil }

func (export) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p ExportParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	r, err := ops.Input[Result](c, 0)
	if err != nil {
		return nil, err
	}
	tok, err := ops.Input[string](c, 1)
	if err != nil {
		return nil, err
	}
	dtype, ok := map[string]safetensors.DType{"float32": safetensors.DTypeF32, "bfloat16": safetensors.DTypeBF16,
		"float16": safetensors.DTypeF16}[p.DType]
	if !ok {
		return nil, fmt.Errorf("dtype %q is not float32, bfloat16 or float16", p.DType)
	}
	tmp, err := os.MkdirTemp("", "lrmc-export-slicegpt-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, Format)
	if err := ksg.Save(dir, r.Model, dtype); err != nil {
		return nil, err
	}
	// The tokenizer travels with the model: a llama2.c tokenizer file, or
	// a Hugging Face directory's tokenizer files. A GGUF's tokenizer is
	// inside the GGUF, which is not copied.
	st, err := os.Stat(tok)
	switch {
	case err != nil:
		return nil, err
	case st.IsDir():
		for _, name := range hf.CompanionFiles {
			if _, err := os.Stat(filepath.Join(tok, name)); err == nil {
				if err := ops.CopyFile(filepath.Join(tok, name), filepath.Join(dir, name)); err != nil {
					return nil, err
				}
			}
		}
	case p.TokenizerFormat == "llama2c":
		if err := ops.CopyFile(tok, filepath.Join(dir, filepath.Base(tok))); err != nil {
			return nil, err
		}
	}
	return executor.PackDir(dir)
}
