package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"lrmc/kernels/tokenizer/pretok"
)

// Load reads dir/tokenizer.json and, when present, dir/tokenizer_config.json
// (bos_token, eos_token, clean_up_tokenization_spaces). Errors name the file
// and the JSON field, e.g. "…/tokenizer.json: model.merges[12]: …".
func Load(dir string) (*Tokenizer, error) {
	path := filepath.Join(dir, "tokenizer.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := parseTokenizer(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cpath := filepath.Join(dir, "tokenizer_config.json")
	cdata, err := os.ReadFile(cpath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		cdata = []byte("{}")
	case err != nil:
		return nil, err
	}
	if err := t.applyConfig(cdata); err != nil {
		return nil, fmt.Errorf("%s: %w", cpath, err)
	}
	return t, nil
}

// fieldError says which JSON field is wrong.
// maxTokenID caps token ids. The id → token table is sized by the largest
// id, so an id near 2^31 in a tiny file would ask for a 32 GiB table. The
// largest released vocabularies have about 262k tokens; at this cap the
// table takes at most 256 MiB.
const maxTokenID = 1<<24 - 1

func fieldError(path string, format string, args ...any) error {
	return fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...))
}

// decodeField unmarshals raw into v, naming path on failure.
func decodeField(raw json.RawMessage, path string, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fieldError(path+"."+te.Field, "%s value where %s was expected", te.Value, te.Type)
		}
		return fieldError(path, "%v", err)
	}
	return nil
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

type fileJSON struct {
	AddedTokens   json.RawMessage `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	// The model is decoded in the same pass as the file: the vocabulary is
	// most of its bytes, and every extra json.Unmarshal rescans them.
	Model *modelJSON `json:"model"`
}

func parseTokenizer(data []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se): // including a truncated file's unexpected end
			return nil, fieldError(syntaxPath(data), "%v", err)
		case errors.As(err, &te) && te.Field != "":
			// A model of another type fails on its vocab's shape; say so.
			var head struct {
				Model *typed `json:"model"`
			}
			if json.Unmarshal(data, &head) == nil && head.Model != nil && head.Model.Type != "BPE" {
				return nil, fieldError("model.type", "%q is not supported (only BPE)", head.Model.Type)
			}
			return nil, fieldError(te.Field, "%s value where %s was expected", te.Value, te.Type)
		}
		return nil, err
	}
	if f.Model == nil {
		return nil, fieldError("model", "missing")
	}
	model, err := parseModel(f.Model)
	if err != nil {
		return nil, err
	}
	t := &Tokenizer{model: model, added: map[string]int32{}, special: map[int32]bool{}, bos: -1, eos: -1}

	added, err := parseAddedTokens(f.AddedTokens)
	if err != nil {
		return nil, err
	}
	maxID := int32(-1)
	for _, id := range model.vocab {
		maxID = max(maxID, id)
	}
	for _, a := range added {
		maxID = max(maxID, a.id)
	}
	t.tokens = make([]string, maxID+1)
	for tok, id := range model.vocab {
		t.tokens[id] = tok
	}
	var raw, normed []*addedToken
	for _, a := range added {
		t.tokens[a.id] = a.content
		t.added[a.content] = a.id
		if a.special {
			t.special[a.id] = true
		}
		// As in tokenizers, the normalized flag alone decides, special or not.
		if a.normalized {
			normed = append(normed, a)
		} else {
			raw = append(raw, a)
		}
	}
	if len(raw) > 0 {
		t.rawAdded = newAddedMatcher(raw)
	}
	if len(normed) > 0 {
		t.normAdded = newAddedMatcher(normed)
	}

	if t.normalizer, err = parseNormalizer(f.Normalizer, "normalizer"); err != nil {
		return nil, err
	}
	if err := parsePreTokenizer(f.PreTokenizer, "pre_tokenizer", &t.preTok); err != nil {
		return nil, err
	}
	if t.template, err = parsePostProcessor(f.PostProcessor, "post_processor", t); err != nil {
		return nil, err
	}
	if t.decoder, err = parseDecoder(f.Decoder, "decoder"); err != nil {
		return nil, err
	}
	if t.preTok.byteLevel && model.byteIDs == nil {
		return nil, fieldError("model.vocab", "ByteLevel pre-tokenizer but the vocabulary lacks some of the 256 byte runes")
	}
	return t, nil
}

type modelJSON struct {
	Type                    string           `json:"type"`
	Vocab                   map[string]int32 `json:"vocab"`
	Merges                  json.RawMessage  `json:"merges"`
	UnkToken                *string          `json:"unk_token"`
	ContinuingSubwordPrefix *string          `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string          `json:"end_of_word_suffix"`
	FuseUnk                 bool             `json:"fuse_unk"`
	ByteFallback            bool             `json:"byte_fallback"`
	IgnoreMerges            bool             `json:"ignore_merges"`
	Dropout                 *float64         `json:"dropout"`
}

func parseModel(mj *modelJSON) (*bpe, error) {
	if mj.Type != "BPE" {
		return nil, fieldError("model.type", "%q is not supported (only BPE)", mj.Type)
	}
	if mj.Dropout != nil && *mj.Dropout != 0 {
		return nil, fieldError("model.dropout", "%v: BPE dropout is for training, not supported", *mj.Dropout)
	}
	if p := mj.ContinuingSubwordPrefix; p != nil && *p != "" {
		return nil, fieldError("model.continuing_subword_prefix", "%q is not supported", *p)
	}
	if p := mj.EndOfWordSuffix; p != nil && *p != "" {
		return nil, fieldError("model.end_of_word_suffix", "%q is not supported", *p)
	}
	m := &bpe{
		ignoreMerges: mj.IgnoreMerges,
		byteFallback: mj.ByteFallback,
		fuseUnk:      mj.FuseUnk,
		unk:          -1,
	}
	if mj.Vocab == nil {
		return nil, fieldError("model.vocab", "missing")
	}
	m.vocab = mj.Vocab
	byID := make(map[int32]string, len(m.vocab))
	for tok, id := range m.vocab {
		if id < 0 {
			return nil, fieldError("model.vocab["+strconv.Quote(tok)+"]", "negative id %d", id)
		}
		if id > maxTokenID {
			return nil, fieldError("model.vocab["+strconv.Quote(tok)+"]", "id %d is above the limit of %d", id, maxTokenID)
		}
		if other, dup := byID[id]; dup {
			return nil, fieldError("model.vocab["+strconv.Quote(tok)+"]", "id %d is also %q", id, other)
		}
		byID[id] = tok
	}
	if mj.UnkToken != nil {
		id, ok := m.vocab[*mj.UnkToken]
		if !ok {
			return nil, fieldError("model.unk_token", "%q is not in the vocabulary", *mj.UnkToken)
		}
		m.unk = id
	}
	for b := range 256 {
		m.fallback[b] = -1
		if id, ok := m.vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
			m.fallback[b] = id
		}
	}
	pairs, err := parseMerges(mj.Merges)
	if err != nil {
		return nil, err
	}
	m.merges = make(map[uint64]merge, len(pairs))
	for rank, p := range pairs {
		a, okA := m.vocab[p[0]]
		b, okB := m.vocab[p[1]]
		ab, okAB := m.vocab[p[0]+p[1]]
		if !okA || !okB || !okAB {
			path := fmt.Sprintf("model.merges[%d]", rank)
			switch {
			case !okA:
				return nil, fieldError(path, "token %q is not in the vocabulary", p[0])
			case !okB:
				return nil, fieldError(path, "token %q is not in the vocabulary", p[1])
			}
			return nil, fieldError(path, "merged token %q is not in the vocabulary", p[0]+p[1])
		}
		// A repeated pair keeps its last rank, as tokenizers' map insert does.
		m.merges[pairKey(a, b)] = merge{rank: int32(rank), id: ab}
	}
	m.initByteIDs()
	m.initMetaSplit()
	return m, nil
}

// parseMerges accepts both spellings of model.merges: "a b" strings (older
// files) and ["a", "b"] pairs (newer ones, which allow spaces in tokens).
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	// The first entry tells the spelling; trying one and then the other
	// would scan the list twice.
	var strs []string
	if first := bytes.TrimLeft(bytes.TrimLeft(bytes.TrimSpace(raw), "["), " \t\r\n"); len(first) > 0 && first[0] == '"' &&
		json.Unmarshal(raw, &strs) == nil {
		out := make([][2]string, len(strs))
		for i, s := range strs {
			a, b, ok := strings.Cut(s, " ")
			if !ok || strings.Contains(b, " ") {
				return nil, fieldError(fmt.Sprintf("model.merges[%d]", i), "%q is not two tokens separated by one space", s)
			}
			out[i] = [2]string{a, b}
		}
		return out, nil
	}
	var pairs [][2]string
	if json.Unmarshal(raw, &pairs) == nil {
		return pairs, nil
	}
	// Find the offending entry to name it.
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fieldError("model.merges", "%v", err)
	}
	for i, it := range items {
		var s string
		var p []string
		if json.Unmarshal(it, &s) != nil && (json.Unmarshal(it, &p) != nil || len(p) != 2) {
			return nil, fieldError(fmt.Sprintf("model.merges[%d]", i), "%s is neither \"a b\" nor [\"a\", \"b\"]", it)
		}
	}
	return nil, fieldError("model.merges", "mixes string and pair entries")
}

type addedTokenJSON struct {
	ID         *int32  `json:"id"`
	Content    *string `json:"content"`
	SingleWord bool    `json:"single_word"`
	LStrip     bool    `json:"lstrip"`
	RStrip     bool    `json:"rstrip"`
	Normalized bool    `json:"normalized"`
	Special    bool    `json:"special"`
}

func parseAddedTokens(raw json.RawMessage) ([]*addedToken, error) {
	if isNull(raw) {
		return nil, nil
	}
	var items []json.RawMessage
	if err := decodeField(raw, "added_tokens", &items); err != nil {
		return nil, err
	}
	out := make([]*addedToken, len(items))
	for i, it := range items {
		path := fmt.Sprintf("added_tokens[%d]", i)
		var a addedTokenJSON
		if err := decodeField(it, path, &a); err != nil {
			return nil, err
		}
		switch {
		case a.ID == nil:
			return nil, fieldError(path+".id", "missing")
		case *a.ID < 0:
			return nil, fieldError(path+".id", "negative id %d", *a.ID)
		case *a.ID > maxTokenID:
			return nil, fieldError(path+".id", "id %d is above the limit of %d", *a.ID, maxTokenID)
		case a.Content == nil || *a.Content == "":
			return nil, fieldError(path+".content", "missing or empty")
		}
		out[i] = &addedToken{id: *a.ID, content: *a.Content, singleWord: a.SingleWord,
			lstrip: a.LStrip, rstrip: a.RStrip, normalized: a.Normalized, special: a.Special}
	}
	return out, nil
}

// typed is the common head of the pipeline objects.
type typed struct {
	Type string `json:"type"`
}

func parseNormalizer(raw json.RawMessage, path string) (normalizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	var h typed
	if err := decodeField(raw, path, &h); err != nil {
		return nil, err
	}
	switch h.Type {
	case "NFC":
		return unicodeForm{norm.NFC}, nil
	case "NFD":
		return unicodeForm{norm.NFD}, nil
	case "NFKC":
		return unicodeForm{norm.NFKC}, nil
	case "NFKD":
		return unicodeForm{norm.NFKD}, nil
	case "Lowercase":
		return lowercaseNorm{}, nil
	case "Prepend":
		var p struct {
			Prepend string `json:"prepend"`
		}
		if err := decodeField(raw, path, &p); err != nil {
			return nil, err
		}
		return prependNorm{p.Prepend}, nil
	case "Replace":
		old, content, err := parseReplace(raw, path)
		if err != nil {
			return nil, err
		}
		return replaceNorm{old, content}, nil
	case "Sequence":
		var s struct {
			Normalizers []json.RawMessage `json:"normalizers"`
		}
		if err := decodeField(raw, path, &s); err != nil {
			return nil, err
		}
		var seq normSequence
		for i, n := range s.Normalizers {
			nn, err := parseNormalizer(n, fmt.Sprintf("%s.normalizers[%d]", path, i))
			if err != nil {
				return nil, err
			}
			if nn != nil {
				seq = append(seq, nn)
			}
		}
		if len(seq) == 0 {
			return nil, nil
		}
		return seq, nil
	}
	return nil, fieldError(path+".type", "normalizer %q is not supported", h.Type)
}

// parseReplace reads a Replace normalizer or decoder with a String pattern.
func parseReplace(raw json.RawMessage, path string) (old, content string, err error) {
	var r struct {
		Pattern struct {
			String *string `json:"String"`
			Regex  *string `json:"Regex"`
		} `json:"pattern"`
		Content string `json:"content"`
	}
	if err := decodeField(raw, path, &r); err != nil {
		return "", "", err
	}
	if r.Pattern.String == nil || *r.Pattern.String == "" {
		return "", "", fieldError(path+".pattern", "only a non-empty String pattern is supported")
	}
	return *r.Pattern.String, r.Content, nil
}

func parsePreTokenizer(raw json.RawMessage, path string, p *preTokenizer) error {
	if isNull(raw) {
		return nil
	}
	var h typed
	if err := decodeField(raw, path, &h); err != nil {
		return err
	}
	if p.byteLevel {
		return fieldError(path, "%s after ByteLevel is not supported", h.Type)
	}
	switch h.Type {
	case "Sequence":
		var s struct {
			Pretokenizers []json.RawMessage `json:"pretokenizers"`
		}
		if err := decodeField(raw, path, &s); err != nil {
			return err
		}
		for i, sub := range s.Pretokenizers {
			if err := parsePreTokenizer(sub, fmt.Sprintf("%s.pretokenizers[%d]", path, i), p); err != nil {
				return err
			}
		}
		return nil
	case "Split":
		var s struct {
			Pattern struct {
				String *string `json:"String"`
				Regex  *string `json:"Regex"`
			} `json:"pattern"`
			Behavior string `json:"behavior"`
			Invert   bool   `json:"invert"`
		}
		if err := decodeField(raw, path, &s); err != nil {
			return err
		}
		if s.Invert {
			return fieldError(path+".invert", "inverted splits are not supported")
		}
		b, err := pretok.ParseBehavior(s.Behavior)
		if err != nil {
			return fieldError(path+".behavior", "%v", err)
		}
		var pat pretok.Pattern
		var expr string
		switch {
		case s.Pattern.Regex != nil:
			expr = *s.Pattern.Regex
			pat, err = pretok.Compile(expr)
		case s.Pattern.String != nil:
			pat, err = pretok.Literal(*s.Pattern.String)
		default:
			err = errors.New("neither Regex nor String")
		}
		if err != nil {
			return fieldError(path+".pattern", "%v", err)
		}
		p.splits = append(p.splits, splitStep{pat, b, expr})
		return nil
	case "Metaspace":
		m, split, err := parseMetaspace(raw, path)
		if err != nil {
			return err
		}
		if p.meta != nil {
			return fieldError(path, "a second Metaspace is not supported")
		}
		p.meta, p.metaAt = m, len(p.splits)
		if split {
			pat, _ := pretok.Literal(m.rep)
			p.splits = append(p.splits, splitStep{pattern: pat, behavior: pretok.MergedWithNext})
		}
		return nil
	case "ByteLevel":
		var s struct {
			AddPrefixSpace bool  `json:"add_prefix_space"`
			UseRegex       *bool `json:"use_regex"`
		}
		if err := decodeField(raw, path, &s); err != nil {
			return err
		}
		p.addPrefixSpace = s.AddPrefixSpace
		p.prefixAt = len(p.splits)
		p.byteLevel = true
		if s.UseRegex == nil || *s.UseRegex { // use_regex defaults to true
			pat, err := pretok.Compile(pretok.GPT2Regex)
			if err != nil {
				return fieldError(path, "%v", err)
			}
			p.splits = append(p.splits, splitStep{pat, pretok.Isolated, pretok.GPT2Regex})
		}
		return nil
	}
	return fieldError(path+".type", "pre-tokenizer %q is not supported", h.Type)
}

// parseMetaspace reads a Metaspace pre-tokenizer or decoder, in both the
// current form (prepend_scheme, split) and the older one (add_prefix_space).
func parseMetaspace(raw json.RawMessage, path string) (m *metaspace, split bool, err error) {
	var s struct {
		Replacement    string  `json:"replacement"`
		PrependScheme  *string `json:"prepend_scheme"`
		AddPrefixSpace *bool   `json:"add_prefix_space"`
		Split          *bool   `json:"split"`
	}
	if err := decodeField(raw, path, &s); err != nil {
		return nil, false, err
	}
	if utf8.RuneCountInString(s.Replacement) != 1 {
		return nil, false, fieldError(path+".replacement", "%q is not one rune", s.Replacement)
	}
	m = &metaspace{rep: s.Replacement, scheme: prependAlways}
	switch {
	case s.PrependScheme != nil:
		switch *s.PrependScheme {
		case "always":
		case "first":
			m.scheme = prependFirst
		case "never":
			m.scheme = prependNever
		default:
			return nil, false, fieldError(path+".prepend_scheme", "%q is not always, first or never", *s.PrependScheme)
		}
	case s.AddPrefixSpace != nil && !*s.AddPrefixSpace:
		m.scheme = prependNever
	}
	// tokenizers defaults split to true.
	return m, s.Split == nil || *s.Split, nil
}

func parsePostProcessor(raw json.RawMessage, path string, t *Tokenizer) ([]templateItem, error) {
	if isNull(raw) {
		return nil, nil
	}
	var h typed
	if err := decodeField(raw, path, &h); err != nil {
		return nil, err
	}
	switch h.Type {
	case "ByteLevel":
		return nil, nil // only adjusts offsets
	case "Sequence":
		var s struct {
			Processors []json.RawMessage `json:"processors"`
		}
		if err := decodeField(raw, path, &s); err != nil {
			return nil, err
		}
		var tmpl []templateItem
		for i, sub := range s.Processors {
			p := fmt.Sprintf("%s.processors[%d]", path, i)
			st, err := parsePostProcessor(sub, p, t)
			if err != nil {
				return nil, err
			}
			if st != nil {
				if tmpl != nil {
					return nil, fieldError(p, "a second template is not supported")
				}
				tmpl = st
			}
		}
		return tmpl, nil
	case "TemplateProcessing":
		var s struct {
			Single []struct {
				SpecialToken *struct {
					ID string `json:"id"`
				} `json:"SpecialToken"`
				Sequence *struct {
					ID string `json:"id"`
				} `json:"Sequence"`
			} `json:"single"`
			SpecialTokens map[string]struct {
				IDs []int32 `json:"ids"`
			} `json:"special_tokens"`
		}
		if err := decodeField(raw, path, &s); err != nil {
			return nil, err
		}
		tmpl := []templateItem{}
		for i, it := range s.Single {
			p := fmt.Sprintf("%s.single[%d]", path, i)
			switch {
			case it.Sequence != nil:
				tmpl = append(tmpl, templateItem{sequence: true})
			case it.SpecialToken != nil:
				st, ok := s.SpecialTokens[it.SpecialToken.ID]
				if !ok {
					return nil, fieldError(p, "special token %q is not in special_tokens", it.SpecialToken.ID)
				}
				for _, id := range st.IDs {
					if id < 0 || int(id) >= len(t.tokens) {
						return nil, fieldError(fmt.Sprintf("%s.special_tokens[%q]", path, it.SpecialToken.ID), "id %d is outside the vocabulary", id)
					}
				}
				tmpl = append(tmpl, templateItem{ids: st.IDs})
			default:
				return nil, fieldError(p, "neither SpecialToken nor Sequence")
			}
		}
		return tmpl, nil
	}
	return nil, fieldError(path+".type", "post-processor %q is not supported", h.Type)
}

func parseDecoder(raw json.RawMessage, path string) (decoder, error) {
	if isNull(raw) {
		return nil, nil
	}
	var h typed
	if err := decodeField(raw, path, &h); err != nil {
		return nil, err
	}
	switch h.Type {
	case "ByteLevel":
		return byteLevelDecoder{}, nil
	case "ByteFallback":
		return byteFallbackDecoder{}, nil
	case "Metaspace":
		m, _, err := parseMetaspace(raw, path)
		if err != nil {
			return nil, err
		}
		return metaspaceDecoder{m.rep, m.scheme}, nil
	case "Fuse":
		return fuseDecoder{}, nil
	case "Replace":
		old, content, err := parseReplace(raw, path)
		if err != nil {
			return nil, err
		}
		return replaceDecoder{old, content}, nil
	case "Strip":
		var s struct {
			Content string `json:"content"`
			Start   int    `json:"start"`
			Stop    int    `json:"stop"`
		}
		if err := decodeField(raw, path, &s); err != nil {
			return nil, err
		}
		if s.Content == "" {
			return nil, fieldError(path+".content", "empty")
		}
		return stripDecoder{s.Content, s.Start, s.Stop}, nil
	case "Sequence":
		var s struct {
			Decoders []json.RawMessage `json:"decoders"`
		}
		if err := decodeField(raw, path, &s); err != nil {
			return nil, err
		}
		var seq decoderSequence
		for i, d := range s.Decoders {
			dd, err := parseDecoder(d, fmt.Sprintf("%s.decoders[%d]", path, i))
			if err != nil {
				return nil, err
			}
			if dd != nil {
				seq = append(seq, dd)
			}
		}
		return seq, nil
	}
	return nil, fieldError(path+".type", "decoder %q is not supported", h.Type)
}

// applyConfig reads the tokenizer_config.json fields the encoder uses.
func (t *Tokenizer) applyConfig(data []byte) error {
	var c struct {
		BOS     json.RawMessage `json:"bos_token"`
		EOS     json.RawMessage `json:"eos_token"`
		CleanUp *bool           `json:"clean_up_tokenization_spaces"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fieldError(syntaxPath(data), "%v", err)
		}
		return err
	}
	// transformers has long defaulted to cleaning up.
	if c.CleanUp == nil || *c.CleanUp {
		t.cleanUp = cleanUpTokenizationSpaces
	}
	var err error
	if t.bos, err = t.configToken(c.BOS, "bos_token"); err != nil {
		return err
	}
	t.eos, err = t.configToken(c.EOS, "eos_token")
	return err
}

// configToken resolves a special-token field: null, a string, or an
// {"__type": "AddedToken", "content": ...} object.
func (t *Tokenizer) configToken(raw json.RawMessage, path string) (int32, error) {
	if isNull(raw) {
		return -1, nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		var obj struct {
			Content *string `json:"content"`
		}
		if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
			return -1, fieldError(path, "%s is neither a string nor an object with content", raw)
		}
		s = *obj.Content
	}
	id, ok := t.TokenID(s)
	if !ok {
		return -1, fieldError(path, "%q is not a token of tokenizer.json", s)
	}
	return id, nil
}

// syntaxPath walks data token by token up to the point where it stops being
// valid JSON and returns the path of the value being read there, such as
// "model.merges[280146]"; used only to explain a corrupt or truncated file.
func syntaxPath(data []byte) string {
	type frame struct {
		object  bool
		key     string
		index   int
		wantKey bool
	}
	stack := []frame{}
	path := func() string {
		var sb strings.Builder
		for _, f := range stack {
			if f.object {
				if !f.wantKey { // reading the value of f.key
					if sb.Len() > 0 {
						sb.WriteByte('.')
					}
					sb.WriteString(f.key)
				}
			} else if f.index >= 0 {
				fmt.Fprintf(&sb, "[%d]", f.index)
			}
		}
		if sb.Len() == 0 {
			return "(top level)"
		}
		return sb.String()
	}
	// valueStarts records that a value begins in the innermost container.
	valueStarts := func() {
		if n := len(stack); n > 0 && !stack[n-1].object {
			stack[n-1].index++
		}
	}
	valueEnds := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			return path()
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				valueStarts()
				stack = append(stack, frame{object: v == '{', index: -1, wantKey: v == '{'})
			default:
				stack = stack[:len(stack)-1]
				valueEnds()
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
				stack[n-1].key, stack[n-1].wantKey = v, false
				continue
			}
			valueStarts()
			valueEnds()
		default:
			valueStarts()
			valueEnds()
		}
	}
}
