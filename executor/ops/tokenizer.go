package ops

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"lrmc/kernels/chattemplate"
	"lrmc/kernels/ggufmodel"
	"lrmc/kernels/llama2c"
	"lrmc/kernels/tokenizer"
)

// textTokenizer is what the data ops need from any tokenizer.
type textTokenizer interface {
	// Encode encodes a plain document (textdata.Encoder).
	Encode(text string, bos, eos bool) []int32
	// EncodeRendered encodes text produced by a chat template, which
	// already holds every special token the model expects.
	EncodeRendered(text string) []int32
	// Pieces returns the vocabulary's text of each id ("▁Hello",
	// "Ġworld", "<|im_start|>"), for previews.
	Pieces(ids []int32) []string
	// Text decodes ids back to text, special tokens included.
	Text(ids []int32) string
}

// tokenizerFiles is a loaded tokenizer with its chat template, if any.
type tokenizerFiles struct {
	tok      textTokenizer
	template *chattemplate.Template // nil when the tokenizer has none
	specials chattemplate.Specials
}

// openTokenizer loads a tokenizer of the given format: a llama2.c
// tokenizer file, or a Hugging Face directory (tokenizer.json and
// tokenizer_config.json, whose chat_template is loaded when present).
func openTokenizer(format, path string, vocab int) (*tokenizerFiles, error) {
	switch format {
	case "llama2c":
		t, err := llama2c.LoadTokenizer(path, vocab)
		if err != nil {
			return nil, err
		}
		return &tokenizerFiles{tok: llama2cTokenizer{t}}, nil
	case "hf":
		t, err := tokenizer.Load(path)
		if err != nil {
			return nil, err
		}
		tf := &tokenizerFiles{tok: hfTokenizer{t}}
		tmpl, sp, err := chattemplate.FromTokenizerConfig(filepath.Join(path, "tokenizer_config.json"))
		switch {
		case err == nil:
			tf.template, tf.specials = tmpl, sp
		case errors.Is(err, chattemplate.ErrNoTemplate):
		default:
			return nil, err
		}
		return tf, nil
	case "gguf":
		_, meta, err := ggufmodel.ReadConfig(path)
		if err != nil {
			return nil, err
		}
		t, err := tokenizer.FromGGUF(meta.Tokenizer)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		tf := &tokenizerFiles{tok: hfTokenizer{t}}
		for _, kv := range meta.Tokenizer {
			if src, ok := kv.Value.(string); ok && kv.Key == "tokenizer.chat_template" && src != "" {
				if tf.template, err = chattemplate.New(src); err != nil {
					return nil, fmt.Errorf("%s: tokenizer.chat_template: %w", path, err)
				}
			}
		}
		if id, ok := t.BOS(); ok {
			tf.specials.BOS = t.Tokens([]int32{id})[0]
		}
		if id, ok := t.EOS(); ok {
			tf.specials.EOS = t.Tokens([]int32{id})[0]
		}
		return tf, nil
	}
	return nil, fmt.Errorf("%s: tokenizer format %q is not supported", path, format)
}

type llama2cTokenizer struct{ *llama2c.Tokenizer }

func (t llama2cTokenizer) EncodeRendered(text string) []int32 {
	return t.Tokenizer.Encode(text, false, false)
}

// hfTokenizer separates documents with BOS where the model has one, and
// otherwise (Qwen, for one) ends each document with EOS, as such models are
// pretrained.
func (t llama2cTokenizer) Pieces(ids []int32) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = t.Token(id)
	}
	return out
}

func (t llama2cTokenizer) Text(ids []int32) string {
	var b strings.Builder
	prev := int32(-1)
	for _, id := range ids {
		// run.c never prints BOS and EOS, whose pieces are "\n<s>\n" and
		// "\n</s>\n"; nor does a preview.
		if id != t.BOS() && id != t.EOS() {
			b.WriteString(t.Piece(prev, id))
		}
		prev = id
	}
	return b.String()
}

type hfTokenizer struct{ *tokenizer.Tokenizer }

func (t hfTokenizer) Encode(text string, bos, eos bool) []int32 {
	if _, ok := t.BOS(); !ok && bos {
		bos, eos = false, true
	}
	return t.EncodeDoc(text, bos, eos)
}

func (t hfTokenizer) EncodeRendered(text string) []int32 { return t.Tokenizer.Encode(text, false) }

func (t hfTokenizer) Pieces(ids []int32) []string { return t.Tokens(ids) }

func (t hfTokenizer) Text(ids []int32) string { return t.Decode(ids, false) }
