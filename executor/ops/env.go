package ops

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"lrmc/compiler/ir"
	"lrmc/digest"
	"lrmc/kernels/llama2c"
	"lrmc/planner"
)

// Digester hashes files; *cache.Store implements it with a memo keyed by
// the file's identity, so a multi-GB checkpoint is hashed once.
type Digester interface {
	FileDigest(path string) (digest.Digest, error)
}

// Env answers the planner's questions from the file system: file digests
// and model headers.
type Env struct {
	Files Digester
}

// FileDigest implements planner.Env.
func (e Env) FileDigest(path string) (digest.Digest, error) {
	if e.Files == nil {
		return digest.File(path)
	}
	return e.Files.FileDigest(path)
}

// Model implements planner.Env: it detects the format and reads only the
// header, and finds the tokenizer.
func (e Env) Model(m ir.Model) (planner.ModelInfo, error) {
	format, err := DetectFormat(m.Path, m.Format)
	if err != nil {
		return planner.ModelInfo{}, err
	}
	switch format {
	case "llama2c":
		cfg, err := llama2c.ReadConfig(m.Path)
		if err != nil {
			return planner.ModelInfo{}, err
		}
		tok := m.Tokenizer
		if tok == "" {
			if tok, err = llama2c.FindTokenizer(m.Path, cfg.Vocab); err != nil {
				return planner.ModelInfo{}, err
			}
		}
		return planner.ModelInfo{
			Format: "llama2c", Tokenizer: tok, TokenizerFormat: "llama2c",
			Blocks: cfg.Layers, Dim: cfg.Dim, Vocab: cfg.Vocab, SeqLen: cfg.SeqLen,
		}, nil
	}
	return planner.ModelInfo{}, fmt.Errorf("%s: %s models are not supported yet; supported: llama2c", m.Path, format)
}

// DetectFormat resolves "auto" from the path: a directory is a Hugging Face
// checkpoint, a .gguf file GGUF, a .bin file llama2.c.
func DetectFormat(path, format string) (string, error) {
	if format != "" && format != "auto" {
		return format, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if st.IsDir() {
		return "hf", nil
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".gguf":
		return "gguf", nil
	case ".bin":
		return "llama2c", nil
	}
	return "", fmt.Errorf("%s: cannot tell the model format from the name; set model.format", path)
}
