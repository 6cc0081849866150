package ops

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"lrmc/executor"
	"lrmc/kernels/chattemplate"
	"lrmc/kernels/gguf"
	"lrmc/kernels/ggufmodel"
	"lrmc/kernels/hf"
	"lrmc/kernels/llama2c"
	"lrmc/kernels/tokenizer"
	"lrmc/planner"
)

// hfToGGUF maps Hugging Face architectures to llama.cpp's.
var hfToGGUF = map[string]string{hf.ArchLlama: "llama", hf.ArchMistral: "llama", hf.ArchQwen2: "qwen2", hf.ArchQwen3: "qwen3"}

// ggufDTypes maps output.dtype to GGUF's names.
var ggufDTypes = map[string]string{"float32": "f32", "bfloat16": "bf16", "float16": "f16"}

// exportGGUF writes a model as a GGUF file with its tokenizer, for
// llama.cpp. Inputs: model, tokenizer source.
type exportGGUF struct{ rawBytes }

func (exportGGUF) Version() int { return 1 }

func (exportGGUF) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.ExportParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	m, err := llamaInput(c, 0)
	if err != nil {
		return nil, err
	}
	tokPath, err := input[string](c, 1)
	if err != nil {
		return nil, err
	}
	dtype, ok := ggufDTypes[p.DType]
	if !ok {
		return nil, fmt.Errorf("dtype %q cannot be written to GGUF (want float32, bfloat16 or float16)", p.DType)
	}
	meta := m.GGUF
	if meta == nil {
		meta = &ggufmodel.Meta{Architecture: "llama"}
		if m.HF != nil {
			arch, ok := hfToGGUF[m.HF.Architecture]
			if !ok {
				return nil, fmt.Errorf("architecture %s has no GGUF counterpart here", m.HF.Architecture)
			}
			meta.Architecture = arch
		}
		if meta.Tokenizer, err = ggufTokenizer(p.TokenizerFormat, tokPath, m.LM.Config.Vocab); err != nil {
			return nil, err
		}
	}
	tmp, err := os.MkdirTemp("", "lrmc-export-gguf-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	path := filepath.Join(tmp, "model.gguf")
	if err := ggufmodel.Save(path, m.LM, meta, dtype); err != nil {
		return nil, err
	}
	return os.ReadFile(path)
}

// ggufTokenizer describes a tokenizer as GGUF metadata, chat template included.
func ggufTokenizer(format, path string, vocab int) ([]gguf.KV, error) {
	switch format {
	case "llama2c":
		t, err := llama2c.LoadTokenizer(path, vocab)
		if err != nil {
			return nil, err
		}
		return t.GGUF()
	case "hf":
		t, err := tokenizer.Load(path)
		if err != nil {
			return nil, err
		}
		src, err := chattemplate.SourceFromTokenizerConfig(filepath.Join(path, "tokenizer_config.json"))
		if err != nil && !errors.Is(err, chattemplate.ErrNoTemplate) {
			return nil, err
		}
		return tokenizer.ToGGUF(t, src)
	}
	return nil, fmt.Errorf("%s: tokenizer format %q cannot be described in GGUF", path, format)
}
