package tokenizer

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"lrmc/kernels/tokenizer/pretok"
)

// The pipeline stages of tokenizer.json other than the model. Each is a
// small value built by load.go from its JSON object.

// A normalizer rewrites text before pre-tokenization.
type normalizer interface{ normalize(string) string }

type unicodeForm struct{ f norm.Form }

func (u unicodeForm) normalize(s string) string { return u.f.String(s) }

// prependNorm prepends a string to non-empty text (SentencePiece's "▁").
type prependNorm struct{ prefix string }

func (p prependNorm) normalize(s string) string {
	if s == "" {
		return s
	}
	return p.prefix + s
}

type replaceNorm struct{ old, new string }

func (r replaceNorm) normalize(s string) string { return strings.ReplaceAll(s, r.old, r.new) }

type lowercaseNorm struct{}

func (lowercaseNorm) normalize(s string) string { return strings.ToLower(s) }

type normSequence []normalizer

func (q normSequence) normalize(s string) string {
	for _, n := range q {
		s = n.normalize(s)
	}
	return s
}

// splitStep is one Split pre-tokenizer (or the GPT-2 regex of ByteLevel).
type splitStep struct {
	pattern  pretok.Pattern
	behavior pretok.Behavior
	expr     string // the regex as written in tokenizer.json; "" for a literal
}

// preTokenizer is the pre-tokenizer chain flattened: regex splits applied in
// order to every piece; optionally a Metaspace step before split metaAt; and
// whether the pieces are then mapped to the byte-level alphabet (which the
// model does) with a space prefixed to each piece that entered the ByteLevel
// step (after prefixAt splits).
type preTokenizer struct {
	splits         []splitStep
	meta           *metaspace
	metaAt         int
	byteLevel      bool
	addPrefixSpace bool
	prefixAt       int
}

// each calls yield with each piece of s, running the splits as a pipeline
// so that no list of pieces is built. atStart says that s begins the
// original text (Metaspace's prepend_scheme "first" looks at that).
func (p *preTokenizer) each(s string, atStart bool, yield func(piece string)) {
	p.stage(0, s, atStart, yield)
}

func (p *preTokenizer) stage(i int, s string, atStart bool, yield func(string)) {
	if p.meta != nil && i == p.metaAt {
		s = p.meta.apply(s, atStart)
	}
	if p.addPrefixSpace && i == p.prefixAt && !strings.HasPrefix(s, " ") {
		s = " " + s
	}
	if i == len(p.splits) {
		yield(s)
		return
	}
	pretok.Each(s, p.splits[i].pattern, p.splits[i].behavior, func(start, end int) {
		p.stage(i+1, s[start:end], atStart && start == 0, yield)
	})
}

// prependScheme is when Metaspace puts its replacement rune before a piece.
type prependScheme int

const (
	prependAlways prependScheme = iota
	prependFirst                // only before the piece that starts the text
	prependNever
)

// metaspace is SentencePiece's space handling as a pre-tokenizer: spaces
// become the replacement rune ("▁"), which is also prepended per scheme.
type metaspace struct {
	rep    string
	scheme prependScheme
}

func (m *metaspace) apply(s string, atStart bool) string {
	s = strings.ReplaceAll(s, " ", m.rep)
	if !strings.HasPrefix(s, m.rep) && (m.scheme == prependAlways || m.scheme == prependFirst && atStart) {
		s = m.rep + s
	}
	return s
}

// A decoder turns tokens back into text pieces (tokenizers' decode_chain).
type decoder interface{ decode(toks []string) []string }

// byteLevelDecoder maps byte-level runes back to bytes and reads them as
// UTF-8, replacing invalid sequences.
type byteLevelDecoder struct{}

func (byteLevelDecoder) decode(toks []string) []string {
	var b []byte
	for _, t := range toks {
		b = appendByteLevelDecoded(b, t)
	}
	return []string{lossyUTF8(b)}
}

type replaceDecoder struct{ old, new string }

func (r replaceDecoder) decode(toks []string) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		out[i] = strings.ReplaceAll(t, r.old, r.new)
	}
	return out
}

// byteFallbackDecoder turns runs of <0xXX> tokens into the text they spell,
// or one U+FFFD per byte when the run is not valid UTF-8.
type byteFallbackDecoder struct{}

func (byteFallbackDecoder) decode(toks []string) []string {
	var out []string
	var pending []byte
	flush := func() {
		if len(pending) == 0 {
			return
		}
		if utf8.Valid(pending) {
			out = append(out, string(pending))
		} else {
			for range pending {
				out = append(out, "\uFFFD")
			}
		}
		pending = pending[:0]
	}
	for _, t := range toks {
		if b, ok := parseByteToken(t); ok {
			pending = append(pending, b)
			continue
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out
}

// parseByteToken reads a "<0xXX>" token.
func parseByteToken(t string) (byte, bool) {
	if len(t) != 6 || t[:3] != "<0x" || t[5] != '>' {
		return 0, false
	}
	var v byte
	for _, c := range []byte(t[3:5]) {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | (c - '0')
		case c >= 'A' && c <= 'F':
			v = v<<4 | (c - 'A' + 10)
		case c >= 'a' && c <= 'f':
			v = v<<4 | (c - 'a' + 10)
		default:
			return 0, false
		}
	}
	return v, true
}

type fuseDecoder struct{}

func (fuseDecoder) decode(toks []string) []string { return []string{strings.Join(toks, "")} }

// stripDecoder removes up to start copies of content from the front of each
// token and up to stop from its end.
type stripDecoder struct {
	content     string
	start, stop int
}

func (s stripDecoder) decode(toks []string) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		for k := 0; k < s.start && strings.HasPrefix(t, s.content); k++ {
			t = t[len(s.content):]
		}
		for k := 0; k < s.stop && strings.HasSuffix(t, s.content); k++ {
			t = t[:len(t)-len(s.content)]
		}
		out[i] = t
	}
	return out
}

// metaspaceDecoder turns the replacement rune back into spaces, except in
// the first token, where tokenizers drops every one of them (not only the
// prepended one) unless the scheme is "never".
type metaspaceDecoder struct {
	rep    string
	scheme prependScheme
}

func (m metaspaceDecoder) decode(toks []string) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		if i == 0 && m.scheme != prependNever {
			out[i] = strings.ReplaceAll(t, m.rep, "")
		} else {
			out[i] = strings.ReplaceAll(t, m.rep, " ")
		}
	}
	return out
}

type decoderSequence []decoder

func (q decoderSequence) decode(toks []string) []string {
	for _, d := range q {
		toks = d.decode(toks)
	}
	return toks
}

// cleanUpTokenizationSpaces is transformers' clean_up_tokenization: it
// removes the space a word-piece decoder leaves before punctuation and
// English contractions. The replacements run in this order, as there.
func cleanUpTokenizationSpaces(s string) string {
	for _, r := range [...][2]string{
		{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
		{" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
	} {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return s
}

// llamaCppCleanUpSpaces is the clean-up llama.cpp's detokenizer applies for
// most byte-level pre-tokenizers (clean_spaces): transformers' rules without
// " n't". llama.cpp runs them as three in-place passes over the bytes, which
// come to the same as these replacements, as no removal creates a new match.
func llamaCppCleanUpSpaces(s string) string {
	for _, r := range [...][2]string{
		{" ?", "?"}, {" !", "!"}, {" .", "."}, {" ,", ","}, {" ' ", "'"},
		{" 's", "'s"}, {" 'm", "'m"}, {" 're", "'re"}, {" 've", "'ve"},
	} {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return s
}
