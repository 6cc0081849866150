package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"lrmc/kernels/gguf"
)

// SentencePieceVocab is a SentencePiece BPE vocabulary as llama2.c's
// tokenizer.bin (or a GGUF "llama" tokenizer) holds it: one piece and one
// merge score per id.
type SentencePieceVocab struct {
	// Pieces by id. SentencePiece's "▁" may be written as a space, as
	// llama2.c writes it.
	Pieces []string
	Scores []float32
	// Specials maps the ids of the control pieces to the text
	// tokenizer.json gives them (llama2.c: 0 "<unk>", 1 "<s>", 2 "</s>").
	Specials map[int32]string
	// UNK, BOS and EOS are ids of Specials; BOS is added in front of
	// every text by the post-processor (add_special_tokens), as Llama's
	// tokenizer does.
	UNK, BOS, EOS int32
}

// SentencePieceJSON writes the tokenizer.json of a SentencePiece BPE
// vocabulary in the layout of Llama 2's: the normalizer prepends "▁" and
// turns spaces into "▁", there is no pre-tokenizer, unknown characters fall
// back to the <0xXX> byte pieces, and the merges are every way of writing a
// piece as two pieces, ranked by the piece's score (highest first). That is
// the merge rule of llama2.c's encoder (the adjacent pair whose concatenation
// scores highest merges first), so both encoders give the same ids, except
// where two different pairs that make pieces of equal score are adjacent at
// once: llama2.c merges the leftmost, tokenizer.json the pair listed first.
// Pieces scoring -1e10 or less never merge in llama2.c and get no merge.
// As in transformers' Llama tokenizer (and unlike llama2.c), a special
// token written in the text ("<s>") is that token, and a written "▁" is a
// space.
func SentencePieceJSON(v SentencePieceVocab) ([]byte, error) {
	if len(v.Scores) != len(v.Pieces) {
		return nil, fmt.Errorf("sentencepiece: %d scores for %d pieces", len(v.Scores), len(v.Pieces))
	}
	for _, id := range []int32{v.UNK, v.BOS, v.EOS} {
		if _, ok := v.Specials[id]; !ok {
			return nil, fmt.Errorf("sentencepiece: id %d (unk, bos or eos) is not among the special pieces", id)
		}
	}
	vocab := make(map[string]int32, len(v.Pieces))
	text := make([]string, len(v.Pieces)) // the pieces as tokenizer.json writes them
	for id, p := range v.Pieces {
		if s, ok := v.Specials[int32(id)]; ok {
			p = s
		} else {
			p = strings.ReplaceAll(p, " ", "▁")
		}
		if other, dup := vocab[p]; dup {
			return nil, fmt.Errorf("sentencepiece: piece %q is both id %d and id %d; tokenizer.json cannot hold that", p, other, id)
		}
		vocab[p] = int32(id)
		text[id] = p
	}

	type mergeRule struct {
		a, b  string
		score float32
		id    int32
	}
	var merges []mergeRule
	for id, p := range text {
		if _, special := v.Specials[int32(id)]; special || v.Scores[id] <= -1e10 || math.IsNaN(float64(v.Scores[id])) {
			continue
		}
		for k := 0; k < len(p); {
			_, n := utf8.DecodeRuneInString(p[k:])
			k += n
			if k == len(p) {
				break
			}
			a, okA := vocab[p[:k]]
			b, okB := vocab[p[k:]]
			if okA && okB && !isSpecial(v, a) && !isSpecial(v, b) {
				merges = append(merges, mergeRule{p[:k], p[k:], v.Scores[id], int32(id)})
			}
		}
	}
	// Highest score first; then by id and split, so the file is stable.
	slices.SortStableFunc(merges, func(x, y mergeRule) int {
		switch {
		case x.score > y.score:
			return -1
		case x.score < y.score:
			return 1
		}
		return int(x.id - y.id)
	})
	pairs := make([][2]string, len(merges))
	for i, m := range merges {
		pairs[i] = [2]string{m.a, m.b}
	}

	specialIDs := make([]int32, 0, len(v.Specials))
	for id := range v.Specials {
		specialIDs = append(specialIDs, id)
	}
	slices.Sort(specialIDs)
	added := make([]map[string]any, len(specialIDs))
	for i, id := range specialIDs {
		added[i] = map[string]any{"id": id, "content": v.Specials[id], "single_word": false, "lstrip": false,
			"rstrip": false, "normalized": false, "special": true}
	}
	bos := v.Specials[v.BOS]
	seq := func(id string) map[string]any {
		return map[string]any{"Sequence": map[string]any{"id": id, "type_id": 0}}
	}
	spec := map[string]any{"SpecialToken": map[string]any{"id": bos, "type_id": 0}}
	replace := func(from, to string) map[string]any {
		return map[string]any{"type": "Replace", "pattern": map[string]any{"String": from}, "content": to}
	}
	doc := map[string]any{
		"version":      "1.0",
		"truncation":   nil,
		"padding":      nil,
		"added_tokens": added,
		"normalizer": map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "Prepend", "prepend": "▁"}, replace(" ", "▁"),
		}},
		"pre_tokenizer": nil,
		"post_processor": map[string]any{
			"type":           "TemplateProcessing",
			"single":         []any{spec, seq("A")},
			"pair":           []any{spec, seq("A"), spec, seq("B")},
			"special_tokens": map[string]any{bos: map[string]any{"id": bos, "ids": []int32{v.BOS}, "tokens": []string{bos}}},
		},
		"decoder": map[string]any{"type": "Sequence", "decoders": []any{
			replace("▁", " "), map[string]any{"type": "ByteFallback"}, map[string]any{"type": "Fuse"},
			map[string]any{"type": "Strip", "content": " ", "start": 1, "stop": 0},
		}},
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": v.Specials[v.UNK], "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
			"vocab": vocab, "merges": pairs,
		},
	}
	return marshalIndent(doc)
}

// marshalIndent writes "<s>" as such, not as "\u003cs\u003e".
func marshalIndent(doc any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// ErrNotSentencePiece is SentencePieceFromGGUF's error for a GGUF tokenizer
// of another kind.
var ErrNotSentencePiece = errors.New("not a SentencePiece (llama) tokenizer")

func isSpecial(v SentencePieceVocab, id int32) bool {
	_, ok := v.Specials[id]
	return ok
}

// SentencePieceConfig writes the tokenizer_config.json that goes with
// SentencePieceJSON's tokenizer.json: Llama's special tokens, BOS added,
// no clean-up of decoded spaces (SentencePiece keeps them), and
// model_max_length the model's context, and the chat template when there
// is one ("" for none).
func SentencePieceConfig(v SentencePieceVocab, context int, chatTemplate string) ([]byte, error) {
	doc := map[string]any{
		"tokenizer_class":              "LlamaTokenizerFast",
		"bos_token":                    v.Specials[v.BOS],
		"eos_token":                    v.Specials[v.EOS],
		"unk_token":                    v.Specials[v.UNK],
		"pad_token":                    nil,
		"add_bos_token":                true,
		"add_eos_token":                false,
		"clean_up_tokenization_spaces": false,
		"legacy":                       true,
		"model_max_length":             context,
	}
	if chatTemplate != "" {
		doc["chat_template"] = chatTemplate
	}
	return marshalIndent(doc)
}

// Llama2cVocab is what SentencePieceFromLlama2c reads of a llama2.c
// tokenizer (*llama2c.Tokenizer).
type Llama2cVocab interface {
	Vocab() int
	Token(id int32) string
	Score(id int32) float32
	BOS() int32
	EOS() int32
}

// SentencePieceFromLlama2c is a llama2.c tokenizer's vocabulary, with the
// fixed control pieces of its layout: 0 <unk>, BOS <s> and EOS </s> (which
// tokenizer.bin writes "\n<s>\n" and "\n</s>\n").
func SentencePieceFromLlama2c(t Llama2cVocab) SentencePieceVocab {
	v := SentencePieceVocab{Specials: map[int32]string{0: "<unk>", t.BOS(): "<s>", t.EOS(): "</s>"}, UNK: 0, BOS: t.BOS(), EOS: t.EOS()}
	for id := range int32(t.Vocab()) {
		v.Pieces = append(v.Pieces, t.Token(id))
		v.Scores = append(v.Scores, t.Score(id))
	}
	return v
}

// SentencePieceFromGGUF reads the vocabulary of a GGUF "llama"
// (SentencePiece) tokenizer: its tokens, scores, and as specials its
// control and unknown tokens. A GGUF tokenizer of another kind ("gpt2"
// byte-level BPE) is an error naming tokenizer.ggml.model.
func SentencePieceFromGGUF(kvs []gguf.KV) (SentencePieceVocab, error) {
	var v SentencePieceVocab
	md, err := newGGUFMeta(kvs)
	if err != nil {
		return v, err
	}
	if kind, _, err := md.str(keyModel); err != nil {
		return v, err
	} else if kind != "llama" {
		return v, fmt.Errorf("%s: %q is %w", keyModel, kind, ErrNotSentencePiece)
	}
	if v.Pieces, _, err = array[string](md, keyTokens, -1); err != nil {
		return v, err
	}
	n := len(v.Pieces)
	if n == 0 {
		return v, fieldError(keyTokens, "missing or empty")
	}
	types, hasTypes, err := array[int32](md, keyTokenType, n)
	if err != nil {
		return v, err
	}
	if v.Scores, _, err = array[float32](md, keyScores, n); err != nil {
		return v, err
	}
	if v.Scores == nil {
		v.Scores = make([]float32, n)
	}
	v.Specials = map[int32]string{}
	for i, s := range v.Pieces {
		if hasTypes && (types[i] == typeControl || types[i] == typeUnknown) {
			v.Specials[int32(i)] = s
		}
	}
	// llama.cpp's defaults, as FromGGUF.
	if v.BOS, err = md.tokenID(keyBOS, n, min(1, int32(n)-1)); err != nil {
		return v, err
	}
	if v.EOS, err = md.tokenID(keyEOS, n, min(2, int32(n)-1)); err != nil {
		return v, err
	}
	if v.UNK, err = md.tokenID(keyUnknown, n, 0); err != nil {
		return v, err
	}
	for _, id := range []int32{v.BOS, v.EOS, v.UNK} {
		if _, ok := v.Specials[id]; !ok {
			v.Specials[id] = v.Pieces[id]
		}
	}
	return v, nil
}

// GGUFToJSON writes the tokenizer.json and tokenizer_config.json of a GGUF
// file's tokenizer (its tokenizer.* metadata), which Load reads back into a
// tokenizer that encodes as FromGGUF's does: a SentencePiece ("llama") one
// through SentencePieceJSON, a byte-level BPE ("gpt2") one with its merges
// and the split regexes its tokenizer.ggml.pre names. context is the
// model's, for model_max_length; the chat template is carried over.
func GGUFToJSON(kvs []gguf.KV, context int) (tokJSON, config []byte, err error) {
	md, err := newGGUFMeta(kvs)
	if err != nil {
		return nil, nil, err
	}
	template, _, err := md.str(keyChatTemplate)
	if err != nil {
		return nil, nil, err
	}
	if kind, _, err := md.str(keyModel); err != nil {
		return nil, nil, err
	} else if kind != "gpt2" {
		v, err := SentencePieceFromGGUF(kvs)
		if err != nil {
			return nil, nil, err
		}
		if tokJSON, err = SentencePieceJSON(v); err != nil {
			return nil, nil, err
		}
		config, err = SentencePieceConfig(v, context, template)
		return tokJSON, config, err
	}
	// FromGGUF checks everything (types, ids, merges, pre-tokenizer).
	t, err := FromGGUF(kvs)
	if err != nil {
		return nil, nil, err
	}
	pre, ok, _ := md.str(keyPre)
	if !ok {
		pre = "default"
	}
	tokens, _, _ := array[string](md, keyTokens, -1)
	types, hasTypes, _ := array[int32](md, keyTokenType, len(tokens))
	merges, _, _ := array[string](md, keyMerges, -1)

	vocab := map[string]int32{}
	var added []map[string]any
	for i, s := range tokens {
		typ := int32(typeNormal)
		if hasTypes {
			typ = types[i]
		}
		switch typ {
		case typeUndefined, typeNormal, typeByte:
			vocab[s] = int32(i) // as FromGGUF: the last of duplicates wins
		case typeControl, typeUnknown, typeUserDefined:
			added = append(added, map[string]any{"id": i, "content": s, "single_word": false, "lstrip": false,
				"rstrip": false, "normalized": false, "special": typ != typeUserDefined})
		}
	}
	// llama.cpp keeps a repeated merge's first rank, Load its last: list
	// each pair once.
	seen := map[string]bool{}
	pairs := make([][2]string, 0, len(merges))
	for _, s := range merges {
		sp := strings.IndexByte(s[1:], ' ') + 1 // from the second byte, as llama.cpp (FromGGUF checked)
		if !seen[s] {
			seen[s] = true
			pairs = append(pairs, [2]string{s[:sp], s[sp+1:]})
		}
	}
	var pretoks []any
	for _, e := range ggufPre[pre] {
		pretoks = append(pretoks, map[string]any{"type": "Split", "pattern": map[string]any{"Regex": e}, "behavior": "Isolated", "invert": false})
	}
	pretoks = append(pretoks, map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false})
	var post any = map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true}
	if len(t.template) > 0 {
		var single []any
		special := map[string]any{}
		for _, it := range t.template {
			if it.sequence {
				single = append(single, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}})
				continue
			}
			name := t.tokens[it.ids[0]]
			single = append(single, map[string]any{"SpecialToken": map[string]any{"id": name, "type_id": 0}})
			special[name] = map[string]any{"id": name, "ids": it.ids, "tokens": []string{name}}
		}
		post = map[string]any{"type": "TemplateProcessing", "single": single, "pair": single, "special_tokens": special}
	}
	doc := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil,
		"added_tokens":   added,
		"normalizer":     nil,
		"pre_tokenizer":  map[string]any{"type": "Sequence", "pretokenizers": pretoks},
		"post_processor": post,
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "", "end_of_word_suffix": "",
			"fuse_unk": false, "byte_fallback": false, "ignore_merges": t.model.ignoreMerges,
			"vocab": vocab, "merges": pairs,
		},
	}
	if tokJSON, err = marshalIndent(doc); err != nil {
		return nil, nil, err
	}
	name := func(id int32, ok bool) any {
		if !ok {
			return nil
		}
		return t.tokens[id]
	}
	cfg := map[string]any{
		"tokenizer_class":              "PreTrainedTokenizerFast",
		"bos_token":                    name(t.BOS()),
		"eos_token":                    name(t.EOS()),
		"clean_up_tokenization_spaces": ggufCleanSpaces(pre),
		"model_max_length":             context,
	}
	if template != "" {
		cfg["chat_template"] = template
	}
	config, err = marshalIndent(cfg)
	return tokJSON, config, err
}
