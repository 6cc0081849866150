// Package tokenizer implements Hugging Face tokenizer.json tokenizers in pure
// Go: byte-level BPE (GPT-2 style: Llama 3, Qwen2/3, DeepSeek-V3) and
// SentencePiece-style BPE with byte fallback (Llama 2, Mistral; legacy
// Prepend/Replace normalizers or Metaspace), reproducing the ids of the
// reference implementations exactly.
//
// Encoding follows tokenizers' pipeline: added tokens are cut out of the raw
// text, the rest is normalized (and searched again for added tokens marked
// "normalized"), pre-tokenized into pieces, each piece is BPE-encoded, and
// the post-processor's template adds special tokens when asked. The
// regex-driven splitting lives in the pretok sub-package.
//
// The same Tokenizer also reads and writes the tokenizer.* metadata of GGUF
// files (FromGGUF, ToGGUF), tokenizing as llama.cpp does.
//
// A Tokenizer is safe for concurrent use.
package tokenizer

import (
	"slices"
	"strings"
)

// Tokenizer encodes text into token ids and decodes them back.
type Tokenizer struct {
	model *bpe

	tokens    []string // id → token text, added tokens included; "" for unused ids
	added     map[string]int32
	special   map[int32]bool
	rawAdded  *addedMatcher // added tokens matched in the raw text
	normAdded *addedMatcher // added tokens matched in the normalized text

	normalizer normalizer // nil: none
	preTok     preTokenizer
	template   []templateItem // post-processor for one sequence; nil: none
	decoder    decoder        // nil: tokens joined by spaces

	cleanUp  func(string) string // transformers' or llama.cpp's space clean-up; nil: none
	bos, eos int32
}

// templateItem is one element of a TemplateProcessing "single" template:
// either the sequence itself or fixed ids.
type templateItem struct {
	sequence bool
	ids      []int32
}

// Encode returns the ids of text. With addSpecial it applies the
// post-processor's template, as transformers' add_special_tokens=True does:
// Mistral gets its BOS, while Llama 3, Qwen3 and DeepSeek-V3, whose
// tokenizer.json post-processor adds nothing, get none (use EncodeDoc).
func (t *Tokenizer) Encode(text string, addSpecial bool) []int32 {
	var ids []int32
	for i, seg := range t.rawAdded.split(nil, text) {
		if seg.id >= 0 {
			ids = append(ids, seg.id)
			continue
		}
		s := seg.text
		if t.normalizer != nil {
			s = t.normalizer.normalize(s)
		}
		for j, seg2 := range t.normAdded.split(nil, s) {
			if seg2.id >= 0 {
				ids = append(ids, seg2.id)
				continue
			}
			// Segments are never empty, so the first ones start the text.
			ids = t.encodePieces(ids, seg2.text, i == 0 && j == 0)
		}
	}
	if addSpecial && t.template != nil {
		var out []int32
		for _, it := range t.template {
			if it.sequence {
				out = append(out, ids...)
			} else {
				out = append(out, it.ids...)
			}
		}
		return out
	}
	return ids
}

func (t *Tokenizer) encodePieces(dst []int32, s string, atStart bool) []int32 {
	if t.preTok.byteLevel {
		t.preTok.each(s, atStart, func(piece string) { dst = t.model.appendRaw(dst, piece) })
	} else {
		t.preTok.each(s, atStart, func(piece string) { dst = t.model.appendText(dst, piece) })
	}
	return dst
}

// EncodeDoc encodes text without the post-processor and adds the model's BOS
// and EOS ids (from tokenizer_config.json) when asked and when the model has
// them, as a calibration or training stream of documents needs.
func (t *Tokenizer) EncodeDoc(text string, bos, eos bool) []int32 {
	ids := t.Encode(text, false)
	if bos && t.bos >= 0 {
		ids = append([]int32{t.bos}, ids...)
	}
	if eos && t.eos >= 0 {
		ids = append(ids, t.eos)
	}
	return ids
}

// Decode returns the text of ids, dropping special tokens when skipSpecial
// is set and ids outside the vocabulary always.
func (t *Tokenizer) Decode(ids []int32, skipSpecial bool) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		if id < 0 || int(id) >= len(t.tokens) || t.tokens[id] == "" {
			continue
		}
		if skipSpecial && t.special[id] {
			continue
		}
		toks = append(toks, t.tokens[id])
	}
	var s string
	if t.decoder != nil {
		s = strings.Join(t.decoder.decode(toks), "")
	} else {
		s = strings.Join(toks, " ")
	}
	if t.cleanUp != nil {
		s = t.cleanUp(s)
	}
	return s
}

// Tokens returns the token text of each id ("" for an id outside the
// vocabulary), in the vocabulary's alphabet ("Ġworld", "▁Hello").
func (t *Tokenizer) Tokens(ids []int32) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		if id >= 0 && int(id) < len(t.tokens) {
			out[i] = t.tokens[id]
		}
	}
	return out
}

// TokenID returns the id of a token text (added tokens included).
func (t *Tokenizer) TokenID(s string) (int32, bool) {
	if id, ok := t.added[s]; ok {
		return id, true
	}
	id, ok := t.model.vocab[s]
	return id, ok
}

// Vocab returns the number of ids, added tokens included: one more than the
// largest id, which is the row count an embedding table needs.
func (t *Tokenizer) Vocab() int { return len(t.tokens) }

// Specials returns the ids of the special tokens (those Decode can skip),
// in increasing order.
func (t *Tokenizer) Specials() []int32 {
	ids := make([]int32, 0, len(t.special))
	for id := range t.special {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// BOS returns the beginning-of-sequence id named by tokenizer_config.json.
func (t *Tokenizer) BOS() (int32, bool) { return t.bos, t.bos >= 0 }

// EOS returns the end-of-sequence id named by tokenizer_config.json.
func (t *Tokenizer) EOS() (int32, bool) { return t.eos, t.eos >= 0 }
