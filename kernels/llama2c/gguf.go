package llama2c

import (
	"fmt"
	"strings"

	"lrmc/kernels/gguf"
)

// GGUF token types (llama.cpp's llama_token_type).
const (
	ggufNormal  int32 = 1
	ggufUnknown int32 = 2
	ggufControl int32 = 3
	ggufByte    int32 = 6
)

// GGUF returns the tokenizer.ggml.* metadata that describes t to llama.cpp:
// a SentencePiece ("llama") vocabulary whose pieces spell spaces as U+2581,
// with t's merge scores, <unk>, <s> and </s> restored at ids 0–2 (run.c's
// file holds "\n<s>\n" and "\n</s>\n" there), and the byte-fallback pieces
// typed as bytes. It is the conversion that made stories260K.gguf from
// tok512.bin, so a model exported to GGUF tokenizes in llama.cpp as here.
func (t *Tokenizer) GGUF() ([]gguf.KV, error) {
	n := len(t.pieces)
	if n < byteOffset+256 {
		return nil, fmt.Errorf("llama2c: tokenizer of %d pieces has no byte-fallback pieces to describe", n)
	}
	tokens := make([]string, n)
	types := make([]int32, n)
	for i, p := range t.pieces {
		switch {
		case i == 0:
			tokens[i], types[i] = "<unk>", ggufUnknown
		case i == bosID:
			tokens[i], types[i] = "<s>", ggufControl
		case i == eosID:
			tokens[i], types[i] = "</s>", ggufControl
		case i < byteOffset+256:
			tokens[i], types[i] = p, ggufByte
		default:
			tokens[i], types[i] = strings.ReplaceAll(p, " ", "\u2581"), ggufNormal
		}
	}
	return []gguf.KV{
		{Key: "tokenizer.ggml.model", Value: "llama"},
		{Key: "tokenizer.ggml.tokens", Value: tokens},
		{Key: "tokenizer.ggml.scores", Value: append([]float32(nil), t.scores...)},
		{Key: "tokenizer.ggml.token_type", Value: types},
		{Key: "tokenizer.ggml.bos_token_id", Value: uint32(bosID)},
		{Key: "tokenizer.ggml.eos_token_id", Value: uint32(eosID)},
		{Key: "tokenizer.ggml.unknown_token_id", Value: uint32(0)},
		{Key: "tokenizer.ggml.add_bos_token", Value: true},
		{Key: "tokenizer.ggml.add_eos_token", Value: false},
	}, nil
}
