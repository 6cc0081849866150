package tokenizer

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"lrmc/kernels/gguf"
	"lrmc/kernels/tokenizer/pretok"
)

// The tokenizer.* metadata keys of a GGUF file, as llama.cpp names them.
const (
	keyModel          = "tokenizer.ggml.model"
	keyPre            = "tokenizer.ggml.pre"
	keyTokens         = "tokenizer.ggml.tokens"
	keyScores         = "tokenizer.ggml.scores"
	keyTokenType      = "tokenizer.ggml.token_type"
	keyMerges         = "tokenizer.ggml.merges"
	keyBOS            = "tokenizer.ggml.bos_token_id"
	keyEOS            = "tokenizer.ggml.eos_token_id"
	keyUnknown        = "tokenizer.ggml.unknown_token_id"
	keyAddBOS         = "tokenizer.ggml.add_bos_token"
	keyAddEOS         = "tokenizer.ggml.add_eos_token"
	keyAddSpacePrefix = "tokenizer.ggml.add_space_prefix"
	keyChatTemplate   = "tokenizer.chat_template"
)

// llama.cpp's token types (tokenizer.ggml.token_type values).
const (
	typeUndefined   = 0
	typeNormal      = 1
	typeUnknown     = 2
	typeControl     = 3
	typeUserDefined = 4
	typeUnused      = 5
	typeByte        = 6
)

// ggufPre maps each supported tokenizer.ggml.pre to the split regexes of
// the Hugging Face pre-tokenizer it stands for, in the order tokenizer.json
// applies them (each Isolated, then ByteLevel without its own regex).
var ggufPre = map[string][]string{
	"llama-bpe":   {pretok.Llama3Regex},
	"llama3":      {pretok.Llama3Regex},
	"qwen2":       {pretok.Qwen2Regex},
	"deepseek-v3": {pretok.DeepSeekV3DigitsRegex, pretok.DeepSeekV3CJKRegex, pretok.DeepSeekV3Regex},
	"default":     llamaCppDefaultPre,
	"gpt-2":       {pretok.GPT2Regex},
	"gpt2":        {pretok.GPT2Regex},
}

// llamaCppDefaultPre is llama.cpp's pre-tokenizer for "default" (and an
// absent tokenizer.ggml.pre): runs of punctuation and a few ASCII symbols
// split off first, then the GPT-2 regex, then digit runs, which are cut
// into threes from the left. (llama.cpp spells the GPT-2 regex without its
// final "|\s+", but runs both spellings through the same hand-written
// splitter.)
var llamaCppDefaultPre = []string{`[\p{P}\$\+<=>\^~\|]+`, pretok.GPT2Regex, `\p{N}+`, `[0-9][0-9][0-9]`}

// ggufPreNames is the order ToGGUF tries the names in: the first whose
// regexes match is written, so "llama-bpe" rather than "llama3" (what
// llama.cpp's converter writes) and "gpt-2", llama.cpp's spelling.
var ggufPreNames = []string{"llama-bpe", "qwen2", "deepseek-v3", "gpt-2", "llama3", "gpt2", "default"}

// ggufCleanSpaces is whether llama.cpp's detokenizer cleans up spaces
// before punctuation for a pre-tokenizer (its clean_spaces, true unless
// the pre-tokenizer turns it off).
func ggufCleanSpaces(pre string) bool { return pre != "qwen2" && pre != "deepseek-v3" }

// ggufMeta indexes the tokenizer entries by key.
type ggufMeta map[string]any

func newGGUFMeta(kvs []gguf.KV) (ggufMeta, error) {
	m := make(ggufMeta, len(kvs))
	for _, kv := range kvs {
		if _, dup := m[kv.Key]; dup {
			return nil, fieldError(kv.Key, "appears twice")
		}
		m[kv.Key] = kv.Value
	}
	return m, nil
}

func (m ggufMeta) str(key string) (string, bool, error) {
	v, ok := m[key]
	if !ok {
		return "", false, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", false, fieldError(key, "has Go type %T, want string", v)
	}
	return s, true, nil
}

func (m ggufMeta) boolean(key string, def bool) (bool, error) {
	v, ok := m[key]
	if !ok {
		return def, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, fieldError(key, "has Go type %T, want bool", v)
	}
	return b, nil
}

// tokenID reads a token id of any integer type (converters write uint32,
// some int32), checking it against the vocabulary size; def when absent.
func (m ggufMeta) tokenID(key string, n int, def int32) (int32, error) {
	v, ok := m[key]
	if !ok {
		return def, nil
	}
	id, ok := gguf.Int64(v)
	if !ok {
		return 0, fieldError(key, "is %v (Go type %T), want an integer token id", v, v)
	}
	if id < 0 || id >= int64(n) {
		return 0, fieldError(key, "id %d is outside the %d tokens", id, n)
	}
	return int32(id), nil
}

// array reads an array of T whose length, when want >= 0, must be want.
func array[T any](m ggufMeta, key string, want int) ([]T, bool, error) {
	v, ok := m[key]
	if !ok {
		return nil, false, nil
	}
	a, ok := v.([]T)
	if !ok {
		var zero T
		return nil, false, fieldError(key, "has Go type %T, want []%T", v, zero)
	}
	if want >= 0 && len(a) != want {
		return nil, false, fieldError(key, "%d values for %d tokens", len(a), want)
	}
	return a, true, nil
}

// FromGGUF builds the tokenizer described by the tokenizer.* metadata of a
// GGUF file (ggufmodel.Meta.Tokenizer), tokenizing as llama.cpp does:
//
//   - tokenizer.ggml.model "llama" is SentencePiece (llm_tokenizer_spm): a
//     space is prepended to each run of text (add_space_prefix, default
//     true), spaces become "▁", the text is split into characters, and the
//     adjacent pair whose concatenation is the highest-scoring token is
//     merged (the leftmost on ties) until none is left; characters without
//     a token fall back to <0xXX> byte tokens.
//   - "gpt2" is byte-level BPE over tokenizer.ggml.merges, with the
//     pre-tokenizer tokenizer.ggml.pre names: llama-bpe/llama3, qwen2,
//     deepseek-v3, gpt-2/gpt2, or default (llama.cpp's own, which is not
//     GPT-2's). Decode cleans up spaces before punctuation as llama.cpp
//     does, except for qwen2 and deepseek-v3.
//
// Control, user-defined and unknown tokens (token types 3, 4 and 2) are
// cut out of the text whole before anything else, as llama.cpp does when
// parsing special tokens and as Hugging Face tokenizers always does; control
// and unknown ones are the special tokens Decode can skip. Encode with
// addSpecial adds BOS and EOS as add_bos_token and add_eos_token say.
//
// Errors name the key at fault, e.g. "tokenizer.ggml.scores: 511 values for
// 512 tokens".
func FromGGUF(kvs []gguf.KV) (*Tokenizer, error) {
	md, err := newGGUFMeta(kvs)
	if err != nil {
		return nil, err
	}
	kind, ok, err := md.str(keyModel)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fieldError(keyModel, "missing")
	}
	if kind != "llama" && kind != "gpt2" {
		return nil, fieldError(keyModel, "%q is not supported (only llama and gpt2)", kind)
	}
	tokens, ok, err := array[string](md, keyTokens, -1)
	if err != nil {
		return nil, err
	}
	if !ok || len(tokens) == 0 {
		return nil, fieldError(keyTokens, "missing or empty")
	}
	n := len(tokens)
	if n > math.MaxInt32 {
		return nil, fieldError(keyTokens, "%d tokens do not fit int32 ids", n)
	}
	types, hasTypes, err := array[int32](md, keyTokenType, n)
	if err != nil {
		return nil, err
	}
	scores, _, err := array[float32](md, keyScores, n)
	if err != nil {
		return nil, err
	}

	t := &Tokenizer{
		tokens:  make([]string, n),
		added:   map[string]int32{},
		special: map[int32]bool{},
	}
	// The model's vocabulary: normal and byte tokens. As in llama.cpp's
	// token_to_id, the last of duplicate texts wins.
	vocab := make(map[string]int32, n)
	var added []*addedToken
	for i, s := range tokens {
		id := int32(i)
		typ := int32(typeNormal)
		if hasTypes {
			typ = types[i]
		}
		switch typ {
		case typeUndefined, typeNormal, typeByte:
			t.tokens[id] = s
			vocab[s] = id
		case typeUnused:
			// llama.cpp renders unused ids (the converter's "[PAD{id}]"
			// fillers) as nothing.
		case typeControl, typeUnknown, typeUserDefined:
			t.tokens[id] = s
			if s == "" {
				return nil, fieldError(fmt.Sprintf("%s[%d]", keyTokens, i), "empty text for a token of type %d", typ)
			}
			a := &addedToken{id: id, content: s, special: typ != typeUserDefined}
			added = append(added, a)
			if _, dup := t.added[s]; !dup {
				t.added[s] = id
			}
			if a.special {
				t.special[id] = true
			}
		default:
			return nil, fieldError(fmt.Sprintf("%s[%d]", keyTokenType, i), "%d is not a llama.cpp token type (0-6)", typ)
		}
	}
	if len(added) > 0 {
		t.rawAdded = newAddedMatcher(added)
	}

	// llama.cpp's defaults when the ids are absent: SentencePiece's layout
	// for "llama"; GPT-2's id 11 for "gpt2" is a quirk not worth copying.
	defBOS, defEOS, defUnk := int32(-1), int32(-1), int32(-1)
	if kind == "llama" {
		defBOS, defEOS, defUnk = min(1, int32(n)-1), min(2, int32(n)-1), 0
	}
	if t.bos, err = md.tokenID(keyBOS, n, defBOS); err != nil {
		return nil, err
	}
	if t.eos, err = md.tokenID(keyEOS, n, defEOS); err != nil {
		return nil, err
	}
	unk, err := md.tokenID(keyUnknown, n, defUnk)
	if err != nil {
		return nil, err
	}

	var addBOSDefault bool
	switch kind {
	case "llama":
		addBOSDefault = true
		if err := t.spmFromGGUF(md, vocab, scores, unk); err != nil {
			return nil, err
		}
	case "gpt2":
		pre, err := t.bpeFromGGUF(md, vocab)
		if err != nil {
			return nil, err
		}
		addBOSDefault = pre == "llama-bpe" || pre == "llama3"
	}
	addBOS, err := md.boolean(keyAddBOS, addBOSDefault)
	if err != nil {
		return nil, err
	}
	addEOS, err := md.boolean(keyAddEOS, false)
	if err != nil {
		return nil, err
	}
	if addBOS && t.bos < 0 {
		return nil, fieldError(keyAddBOS, "true but %s is absent", keyBOS)
	}
	if addEOS && t.eos < 0 {
		return nil, fieldError(keyAddEOS, "true but %s is absent", keyEOS)
	}
	if addBOS || addEOS {
		if addBOS {
			t.template = append(t.template, templateItem{ids: []int32{t.bos}})
		}
		t.template = append(t.template, templateItem{sequence: true})
		if addEOS {
			t.template = append(t.template, templateItem{ids: []int32{t.eos}})
		}
	}
	return t, nil
}

// spmFromGGUF sets up SentencePiece tokenizing. llama.cpp merges by the
// score of the token a pair concatenates to; that is rewritten here as the
// pair table the bpe model merges by: every way of writing a normal token
// as two vocabulary tokens is a merge, ranked by the token's score (higher
// first, equal scores sharing a rank so that the leftmost pair wins, as in
// llama.cpp's queue).
func (t *Tokenizer) spmFromGGUF(md ggufMeta, vocab map[string]int32, scores []float32, unk int32) error {
	addSpace, err := md.boolean(keyAddSpacePrefix, true)
	if err != nil {
		return err
	}
	m := &bpe{vocab: vocab, byteFallback: true, unk: -1}
	if unk >= 0 {
		m.unk = unk
	}
	for b := range 256 {
		m.fallback[b] = -1
		if id, ok := vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			m.fallback[b] = id
		}
	}
	// Only normal tokens are merge results: byte tokens stand for a byte,
	// not for their text "<0x41>", and the others were cut out before.
	score := func(id int32) float32 {
		if scores == nil {
			return 0
		}
		return scores[id]
	}
	var results []int32
	for s, id := range vocab {
		if _, isByte := parseByteToken(s); !isByte && utf8.RuneCountInString(s) > 1 {
			results = append(results, id)
		}
	}
	slices.SortFunc(results, func(a, b int32) int { return cmp.Compare(score(b), score(a)) })
	m.merges = make(map[uint64]merge)
	rank := int32(-1)
	for i, id := range results {
		if i == 0 || score(id) != score(results[i-1]) {
			rank++
		}
		s := t.tokens[id]
		for k := range s {
			if k == 0 {
				continue
			}
			a, okA := vocab[s[:k]]
			b, okB := vocab[s[k:]]
			if okA && okB {
				m.merges[pairKey(a, b)] = merge{rank: rank, id: id}
			}
		}
	}
	m.initMetaSplit()
	t.model = m

	seq := normSequence{replaceNorm{" ", meta}}
	dec := decoderSequence{replaceDecoder{meta, " "}, byteFallbackDecoder{}, fuseDecoder{}}
	if addSpace {
		seq = append(normSequence{prependNorm{meta}}, seq...)
		dec = append(dec, stripDecoder{" ", 1, 0})
	}
	t.normalizer = seq
	t.decoder = dec
	return nil
}

// bpeFromGGUF sets up byte-level BPE and returns the pre-tokenizer name.
func (t *Tokenizer) bpeFromGGUF(md ggufMeta, vocab map[string]int32) (string, error) {
	pre, ok, err := md.str(keyPre)
	if err != nil {
		return "", err
	}
	if !ok {
		pre = "default" // what llama.cpp assumes, with a warning
	}
	exprs, ok := ggufPre[pre]
	if !ok {
		return "", fieldError(keyPre, "%q is not supported (llama-bpe, llama3, qwen2, deepseek-v3, default, gpt-2, gpt2)", pre)
	}
	strs, ok, err := array[string](md, keyMerges, -1)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fieldError(keyMerges, "missing")
	}
	m := &bpe{vocab: vocab, unk: -1, merges: make(map[uint64]merge, len(strs))}
	for b := range 256 {
		m.fallback[b] = -1
	}
	for rank, s := range strs {
		path := fmt.Sprintf("%s[%d]", keyMerges, rank)
		// llama.cpp looks for the separating space from the second byte on.
		sp := -1
		if len(s) > 1 {
			sp = strings.IndexByte(s[1:], ' ')
		}
		if sp < 0 {
			return "", fieldError(path, "%q is not two tokens separated by a space", s)
		}
		l, r := s[:sp+1], s[sp+2:]
		a, okA := vocab[l]
		b, okB := vocab[r]
		ab, okAB := vocab[l+r]
		switch {
		case !okA:
			return "", fieldError(path, "token %q is not in the vocabulary", l)
		case !okB:
			return "", fieldError(path, "token %q is not in the vocabulary", r)
		case !okAB:
			return "", fieldError(path, "merged token %q is not in the vocabulary", l+r)
		}
		if _, dup := m.merges[pairKey(a, b)]; !dup { // llama.cpp keeps the first rank
			m.merges[pairKey(a, b)] = merge{rank: int32(rank), id: ab}
		}
	}
	// llama.cpp's Llama 3 pre-tokenizer takes a piece that is a token whole.
	m.ignoreMerges = pre == "llama-bpe" || pre == "llama3"
	m.initByteIDs()
	if m.byteIDs == nil {
		return "", fieldError(keyTokens, "byte-level vocabulary lacks some of the 256 byte runes")
	}
	t.model = m
	t.preTok = preTokenizer{byteLevel: true}
	for _, e := range exprs {
		pat, err := pretok.Compile(e)
		if err != nil {
			return "", fieldError(keyPre, "%v", err)
		}
		t.preTok.splits = append(t.preTok.splits, splitStep{pat, pretok.Isolated, e})
	}
	t.decoder = byteLevelDecoder{}
	if ggufCleanSpaces(pre) {
		t.cleanUp = llamaCppCleanUpSpaces
	}
	return pre, nil
}

// ToGGUF returns the tokenizer.* metadata with which llama.cpp tokenizes
// as t does, plus tokenizer.chat_template when chatTemplate is not empty.
//
// A byte-level BPE tokenizer becomes model "gpt2" with the pre-tokenizer
// named by its split regexes (Llama 3 → "llama-bpe", Qwen2/3 → "qwen2",
// DeepSeek-V3 → "deepseek-v3", GPT-2 → "gpt-2"), its merges as "a b"
// strings and no scores. A SentencePiece-style one (BPE with byte fallback
// behind the Prepend/Replace normalizers or Metaspace) becomes model
// "llama" with scores derived from the merges: a token scores minus the
// rank of the first merge producing it, so that llama.cpp's
// highest-score-first merging picks pairs in the order of the merge list.
// (llama.cpp's converter writes a placeholder -1000 for every token of a
// tokenizer.json without tokenizer.model, which makes all merges tie.)
// Tokens no merge produces score 0 when they are one character or a
// byte or added token, which no merge can yield anyway, and -1e9 otherwise
// (llama.cpp can still reach those, the tokenizer.json model cannot; Mistral
// has none). The merges that produce one token must be consecutive in the
// list, or no score order reproduces the ranks: an error.
//
// Ids without a token are filled with "[PAD{id}]" of type unused, as
// llama.cpp's converter does; added tokens are control (special) or
// user-defined; <0xXX> tokens of a byte-fallback model are type byte and
// the unknown token type unknown. add_bos_token and add_eos_token come from
// the post-processor's template, which must be at most BOS, the sequence,
// EOS.
//
// What GGUF cannot carry is an error: a normalizer other than NFC (which
// llama.cpp does not apply, and is dropped), a pre-tokenizer llama.cpp has
// no name for, ignore_merges disagreeing with the pre-tokenizer.
func ToGGUF(t *Tokenizer, chatTemplate string) ([]gguf.KV, error) {
	m := t.model
	n := len(t.tokens)
	modelTok := make(map[int32]string, len(m.vocab))
	for s, id := range m.vocab {
		modelTok[id] = s
	}
	merges := make([]merge, 0, len(m.merges))
	pairs := make(map[merge][2]int32, len(m.merges))
	for k, mg := range m.merges {
		merges = append(merges, mg)
		pairs[mg] = [2]int32{int32(k >> 32), int32(uint32(k))}
	}
	slices.SortFunc(merges, func(a, b merge) int { return cmp.Compare(a.rank, b.rank) })

	tokens := make([]string, n)
	types := make([]int32, n)
	for i := range n {
		id := int32(i)
		tokens[i], types[i] = t.tokens[i], typeNormal
		switch _, isAdded := t.added[t.tokens[i]]; {
		case t.tokens[i] == "":
			tokens[i], types[i] = fmt.Sprintf("[PAD%d]", i), typeUnused
		case id == m.unk:
			types[i] = typeUnknown
		case isAdded && t.special[id]:
			types[i] = typeControl
		case isAdded:
			types[i] = typeUserDefined
		}
	}

	var kvs []gguf.KV
	add := func(k string, v any) { kvs = append(kvs, gguf.KV{Key: k, Value: v}) }
	switch {
	case t.preTok.byteLevel:
		pre, err := ggufPreName(t)
		if err != nil {
			return nil, err
		}
		strs := make([]string, len(merges))
		for i, mg := range merges {
			p := pairs[mg]
			l, r := modelTok[p[0]], modelTok[p[1]]
			if strings.Contains(l, " ") || strings.Contains(r, " ") {
				return nil, fieldError(fmt.Sprintf("model.merges[%d]", mg.rank), "%q %q: a token with a space cannot be written as \"a b\"", l, r)
			}
			strs[i] = l + " " + r
		}
		add(keyModel, "gpt2")
		add(keyPre, pre)
		add(keyTokens, tokens)
		add(keyTokenType, types)
		add(keyMerges, strs)
	default:
		addSpace, err := spmSpacePrefix(t)
		if err != nil {
			return nil, err
		}
		scores := make([]float32, n)
		for i := range n {
			if types[i] == typeNormal && utf8.RuneCountInString(tokens[i]) > 1 {
				scores[i] = -1e9
			}
		}
		// Ranks ascend, so the first merge producing a token sets its score.
		// Scores order tokens, while ranks order pairs: the two agree only
		// when the merges producing one token are consecutive in the list,
		// as SentencePiece-converted files have them.
		last := make(map[int32]merge, len(merges))
		for i, mg := range merges {
			prev, seen := last[mg.id]
			if !seen {
				scores[mg.id] = -float32(mg.rank)
			} else if merges[i-1].id != mg.id {
				p, q := pairs[prev], pairs[mg]
				return nil, fieldError(fmt.Sprintf("model.merges[%d]", mg.rank),
					"%q %q makes %q, as merge %d %q %q does, with other merges between: no score order reproduces that",
					modelTok[q[0]], modelTok[q[1]], modelTok[mg.id], prev.rank, modelTok[p[0]], modelTok[p[1]])
			}
			last[mg.id] = mg
		}
		for _, id := range m.fallback {
			if id >= 0 && types[id] == typeNormal {
				types[id], scores[id] = typeByte, 0
			}
		}
		add(keyModel, "llama")
		add(keyTokens, tokens)
		add(keyScores, scores)
		add(keyTokenType, types)
		add(keyAddSpacePrefix, addSpace)
	}
	addBOS, addEOS, err := templateFlags(t)
	if err != nil {
		return nil, err
	}
	if t.bos >= 0 {
		add(keyBOS, uint32(t.bos))
	}
	if t.eos >= 0 {
		add(keyEOS, uint32(t.eos))
	}
	if m.unk >= 0 {
		add(keyUnknown, uint32(m.unk))
	}
	add(keyAddBOS, addBOS)
	add(keyAddEOS, addEOS)
	if chatTemplate != "" {
		add(keyChatTemplate, chatTemplate)
	}
	return kvs, nil
}

// ggufPreName names a byte-level tokenizer's pre-tokenizer for llama.cpp.
func ggufPreName(t *Tokenizer) (string, error) {
	if t.normalizer != nil {
		if u, ok := t.normalizer.(unicodeForm); !ok || u.f.String("\u00e9") != "\u00e9" || u.f.String("e\u0301") != "\u00e9" {
			return "", fieldError("normalizer", "only NFC (which llama.cpp skips) can be dropped for GGUF")
		}
	}
	if t.preTok.addPrefixSpace {
		return "", fieldError("pre_tokenizer", "ByteLevel add_prefix_space has no GGUF equivalent")
	}
	var exprs []string
	for _, s := range t.preTok.splits {
		if s.behavior != pretok.Isolated || s.expr == "" {
			return "", fieldError("pre_tokenizer", "a split other than an Isolated regex has no GGUF equivalent")
		}
		exprs = append(exprs, s.expr)
	}
	for _, name := range ggufPreNames {
		if slices.Equal(ggufPre[name], exprs) {
			ignore := name == "llama-bpe" || name == "llama3"
			if t.model.ignoreMerges != ignore {
				return "", fieldError("model.ignore_merges", "is %v, but llama.cpp's pre-tokenizer %q implies %v", t.model.ignoreMerges, name, ignore)
			}
			return name, nil
		}
	}
	return "", fieldError("pre_tokenizer", "split regexes %q match no llama.cpp pre-tokenizer", exprs)
}

// spmSpacePrefix checks that t is SentencePiece-style and returns whether
// it prepends "▁" to text (llama.cpp's add_space_prefix). Metaspace's
// prepend_scheme "first" becomes true: llama.cpp then also prepends after
// added tokens, where tokenizers does not.
func spmSpacePrefix(t *Tokenizer) (bool, error) {
	if !t.model.byteFallback {
		return false, fieldError("model.byte_fallback", "false: neither byte-level nor SentencePiece-style BPE")
	}
	switch {
	case t.preTok.meta != nil:
		if t.normalizer != nil {
			return false, fieldError("normalizer", "a normalizer beside Metaspace has no GGUF equivalent")
		}
		if t.preTok.meta.rep != meta {
			return false, fieldError("pre_tokenizer", "Metaspace replacement %q is not %q", t.preTok.meta.rep, meta)
		}
		return t.preTok.meta.scheme != prependNever, nil
	case len(t.preTok.splits) > 0:
		return false, fieldError("pre_tokenizer", "splits have no GGUF equivalent for SentencePiece")
	}
	// The legacy normalizers: optionally Prepend("▁"), then Replace(" ", "▁").
	seq, ok := t.normalizer.(normSequence)
	if !ok {
		seq = normSequence{t.normalizer}
	}
	prepend := len(seq) == 2 && seq[0] == prependNorm{meta}
	if prepend {
		seq = seq[1:]
	}
	if len(seq) != 1 || seq[0] != (replaceNorm{" ", meta}) {
		return false, fieldError("normalizer", "only Prepend(\"▁\") and Replace(\" \", \"▁\") have a GGUF equivalent")
	}
	return prepend, nil
}

// templateFlags reads add_bos_token and add_eos_token off the template.
func templateFlags(t *Tokenizer) (addBOS, addEOS bool, err error) {
	tmpl := t.template
	if tmpl == nil {
		return false, false, nil
	}
	if len(tmpl) > 0 && !tmpl[0].sequence && slices.Equal(tmpl[0].ids, []int32{t.bos}) {
		addBOS, tmpl = true, tmpl[1:]
	}
	if len(tmpl) > 1 && !tmpl[len(tmpl)-1].sequence && slices.Equal(tmpl[len(tmpl)-1].ids, []int32{t.eos}) {
		addEOS, tmpl = true, tmpl[:len(tmpl)-1]
	}
	if len(tmpl) != 1 || !tmpl[0].sequence {
		return false, false, fieldError("post_processor", "a template other than [BOS] sequence [EOS] has no GGUF equivalent")
	}
	return addBOS, addEOS, nil
}
