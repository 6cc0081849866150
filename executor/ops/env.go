package ops

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"lrmc/compiler/ir"
	"lrmc/digest"
	"lrmc/kernels/ggufmodel"
	"lrmc/kernels/hf"
	"lrmc/kernels/llama2c"
	"lrmc/kernels/synth"
	"lrmc/kernels/tokenizer"
	"lrmc/planner"
)

// Digester hashes files; *cache.Store implements it with a memo keyed by
// the file's identity, so a multi-GB checkpoint is hashed once.
type Digester interface {
	FileDigest(path string) (digest.Digest, error)
}

// Env answers the planner's questions from the file system: content
// digests and model headers.
type Env struct {
	Files Digester
}

// FileDigest implements planner.Env. A directory (a Hugging Face
// checkpoint or tokenizer) is digested as the sorted list of its regular,
// non-hidden files' names and digests.
func (e Env) FileDigest(path string) (digest.Digest, error) {
	st, err := os.Stat(path)
	if err != nil {
		return digest.Digest{}, err
	}
	if !st.IsDir() {
		return e.file(path)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return digest.Digest{}, err
	}
	var names []string
	for _, en := range entries {
		if en.Type().IsRegular() && !strings.HasPrefix(en.Name(), ".") {
			names = append(names, en.Name())
		}
	}
	sort.Strings(names)
	h := digest.New()
	for _, n := range names {
		d, err := e.file(filepath.Join(path, n))
		if err != nil {
			return digest.Digest{}, err
		}
		fmt.Fprintf(h, "%s\x00%s\n", n, d)
	}
	return h.Digest(), nil
}

func (e Env) file(path string) (digest.Digest, error) {
	if e.Files == nil {
		return digest.File(path)
	}
	return e.Files.FileDigest(path)
}

// Model implements planner.Env: it detects the format, reads only the
// header or config, and finds the tokenizer.
func (e Env) Model(m ir.Model) (planner.ModelInfo, error) {
	if s := m.Synthetic; s != nil {
		return syntheticInfo(m)
	}
	format, err := DetectFormat(m.Path, m.Format)
	if err != nil {
		return planner.ModelInfo{}, err
	}
	info := planner.ModelInfo{Format: format}
	switch format {
	case "llama2c":
		cfg, err := llama2c.ReadConfig(m.Path)
		if err != nil {
			return info, err
		}
		info.Blocks, info.Dim, info.Vocab, info.SeqLen = cfg.Layers, cfg.Dim, cfg.Vocab, cfg.SeqLen
		if m.Tokenizer == "" {
			if info.Tokenizer, err = llama2c.FindTokenizer(m.Path, cfg.Vocab); err != nil {
				return info, err
			}
			info.TokenizerFormat = "llama2c"
		}
	case "hf":
		cfg, err := hf.ReadConfig(m.Path)
		if err != nil {
			return info, err
		}
		lc, err := cfg.LlamaConfig()
		if err != nil {
			return info, fmt.Errorf("%s: %w", m.Path, err)
		}
		info.Blocks, info.Dim, info.Vocab, info.SeqLen = lc.Layers, lc.Dim, lc.Vocab, lc.SeqLen
		if m.Tokenizer == "" {
			if _, err := os.Stat(filepath.Join(m.Path, "tokenizer.json")); err != nil {
				return info, fmt.Errorf("%s: no tokenizer.json in the checkpoint; name one with model.tokenizer", m.Path)
			}
			info.Tokenizer, info.TokenizerFormat = m.Path, "hf"
		}
	case "gguf":
		cfg, _, err := ggufmodel.ReadConfig(m.Path)
		if err != nil {
			return info, err
		}
		info.Blocks, info.Dim, info.Vocab, info.SeqLen = cfg.Layers, cfg.Dim, cfg.Vocab, cfg.SeqLen
		if m.Tokenizer == "" {
			info.Tokenizer, info.TokenizerFormat = m.Path, "gguf"
		}
	default:
		return info, fmt.Errorf("%s: model format %q is not supported; supported: llama2c, hf, gguf", m.Path, format)
	}
	if m.Tokenizer != "" {
		info.Tokenizer = m.Tokenizer
		if info.TokenizerFormat, err = tokenizerFormat(m.Tokenizer); err != nil {
			return info, err
		}
	}
	return info, nil
}

// syntheticInfo sizes a synthetic model; its vocabulary defaults to the
// tokenizer's.
func syntheticInfo(m ir.Model) (planner.ModelInfo, error) {
	s := m.Synthetic
	info := planner.ModelInfo{Format: "synthetic", Tokenizer: m.Tokenizer, TokenizerFormat: "hf",
		Blocks: s.Layers, Dim: s.Dim, Vocab: s.Vocab, SeqLen: s.SeqLen}
	if info.Vocab == 0 {
		t, err := tokenizer.Load(m.Tokenizer)
		if err != nil {
			return info, err
		}
		info.Vocab = t.Vocab()
	}
	// Check the shape now, so a bad one is a plan error, not a run failure.
	_, err := synth.Config(synth.Spec{Arch: s.Arch, Layers: s.Layers, Dim: s.Dim, Heads: s.Heads, KVHeads: s.KVHeads,
		HeadDim: s.HeadDim, FFN: s.FFN, Vocab: info.Vocab, SeqLen: s.SeqLen, Tie: s.Tie})
	return info, err
}

// tokenizerFormat tells a named tokenizer's format from its path.
func tokenizerFormat(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	switch {
	case st.IsDir():
		return "hf", nil
	case strings.EqualFold(filepath.Ext(path), ".gguf"):
		return "gguf", nil
	case strings.EqualFold(filepath.Ext(path), ".bin"):
		return "llama2c", nil
	}
	return "", fmt.Errorf("%s: cannot tell the tokenizer's format: want a Hugging Face directory, a .gguf or a llama2.c .bin", path)
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
