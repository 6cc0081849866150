package bench

import (
	"fmt"
	"os"
	"path/filepath"

	"lrmc/kernels/gguf"
	"lrmc/kernels/ggufmodel"
	"lrmc/kernels/llama"
)

// GGUF token types (llama.cpp's llama_token_type).
const (
	tokenNormal  int32 = 1
	tokenUnknown int32 = 2
	tokenControl int32 = 3
	tokenByte    int32 = 6
)

// SyntheticVocab returns tokenizer.ggml.* entries for a SentencePiece
// ("llama") vocabulary of n tokens — <unk>, <s>, </s>, the 256 byte pieces,
// then "▁t3", "▁t4", … — so that llama.cpp loads a synthetic model (it
// refuses a file without a vocabulary of the model's size). The benchmark
// feeds token ids, never text, so what the pieces spell does not matter.
func SyntheticVocab(n int) ([]gguf.KV, error) {
	const bytesAt = 3
	if n < bytesAt+256 {
		return nil, fmt.Errorf("bench: synthetic vocabulary of %d tokens has no room for the 3 special and 256 byte pieces", n)
	}
	tokens := make([]string, n)
	types := make([]int32, n)
	scores := make([]float32, n)
	tokens[0], types[0] = "<unk>", tokenUnknown
	tokens[1], types[1] = "<s>", tokenControl
	tokens[2], types[2] = "</s>", tokenControl
	for i := bytesAt; i < n; i++ {
		if i < bytesAt+256 {
			tokens[i], types[i] = fmt.Sprintf("<0x%02X>", i-bytesAt), tokenByte
			continue
		}
		tokens[i], types[i], scores[i] = fmt.Sprintf("\u2581t%d", i), tokenNormal, -float32(i)
	}
	return []gguf.KV{
		{Key: "tokenizer.ggml.model", Value: "llama"},
		{Key: "tokenizer.ggml.tokens", Value: tokens},
		{Key: "tokenizer.ggml.scores", Value: scores},
		{Key: "tokenizer.ggml.token_type", Value: types},
		{Key: "tokenizer.ggml.bos_token_id", Value: uint32(1)},
		{Key: "tokenizer.ggml.eos_token_id", Value: uint32(2)},
		{Key: "tokenizer.ggml.unknown_token_id", Value: uint32(0)},
		{Key: "tokenizer.ggml.add_bos_token", Value: false},
		{Key: "tokenizer.ggml.add_eos_token", Value: false},
	}, nil
}

// ExportGGUF writes m, built from shape s, to dir/<name>.gguf with f32
// weights, the GGUF architecture of s.Spec.Arch and a synthetic
// vocabulary, for running the same model in llama.cpp. It returns the
// file's path.
func ExportGGUF(dir string, s ModelShape, m *llama.Model) (string, error) {
	return ExportGGUFDType(dir, s, m, "f32")
}

// ExportGGUFDType is ExportGGUF with the GGUF weight type dtype ("f32",
// "f16" or "bf16", as ggufmodel.Save takes it), for comparing 16-bit
// runs with llama.cpp on the same weights.
func ExportGGUFDType(dir string, s ModelShape, m *llama.Model, dtype string) (string, error) {
	vocab, err := SyntheticVocab(m.Config.Vocab)
	if err != nil {
		return "", fmt.Errorf("bench: export %s: %w", s.Name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("bench: export %s: %w", s.Name, err)
	}
	path := filepath.Join(dir, s.Name+".gguf")
	meta := &ggufmodel.Meta{Architecture: s.Spec.Arch, Name: "lrmc synthetic " + s.Name, Tokenizer: vocab}
	if err := ggufmodel.Save(path, m, meta, dtype); err != nil {
		return "", fmt.Errorf("bench: export %s: %w", s.Name, err)
	}
	return path, nil
}
