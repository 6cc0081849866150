package pretok

import (
	"unicode"
	"unicode/utf8"
)

// Character classes. ASCII is answered from a table because it dominates
// real text; everything else goes to the unicode package.

const (
	cLetter = 1 << iota
	cNumber
	cSpace
	cPunct
	cSymbol
	cMark
)

var asciiClass [utf8.RuneSelf]uint8

func init() {
	for r := rune(0); r < utf8.RuneSelf; r++ {
		asciiClass[r] = classOf(r)
	}
}

func classOf(r rune) uint8 {
	var c uint8
	if unicode.IsLetter(r) {
		c |= cLetter
	}
	if unicode.IsNumber(r) {
		c |= cNumber
	}
	if unicode.IsSpace(r) {
		c |= cSpace
	}
	if unicode.IsPunct(r) {
		c |= cPunct
	}
	if unicode.IsSymbol(r) {
		c |= cSymbol
	}
	if unicode.IsMark(r) {
		c |= cMark
	}
	return c
}

func class(r rune) uint8 {
	if r < utf8.RuneSelf {
		return asciiClass[r]
	}
	return classOf(r)
}

// at decodes the rune at byte offset i; past the end it returns (-1, 0),
// which belongs to no class.
func at(s string, i int) (rune, int) {
	if i >= len(s) {
		return -1, 0
	}
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

func classAt(s string, i int) (uint8, int) {
	r, w := at(s, i)
	if w == 0 {
		return 0, 0
	}
	return class(r), w
}

// run returns the end of the longest run from i of runes in any of the
// classes in mask.
func run(s string, i int, mask uint8) int {
	for i < len(s) {
		c, w := classAt(s, i)
		if c&mask == 0 {
			break
		}
		i += w
	}
	return i
}

func isNewline(r rune) bool { return r == '\r' || r == '\n' }

// newlines returns the end of the run of \r and \n from i ([\r\n]*).
func newlines(s string, i int) int {
	for i < len(s) && (s[i] == '\r' || s[i] == '\n') {
		i++
	}
	return i
}

// whitespace matches the three trailing alternatives the patterns share,
// `\s*[\r\n]+|\s+(?!\S)|\s+`, at i, where s[i] is white space:
//
//   - \s*[\r\n]+ : \s* takes the whole run and backtracks to the last line
//     break in it, after which [\r\n]+ cannot extend further.
//   - \s+(?!\S)  : the whole run at the end of the text; otherwise the run
//     minus its last rune, so the last one stays to prefix the next word,
//     provided that leaves at least one rune.
//   - \s+        : the whole run (a single space before a non-space).
func whitespace(s string, i int) int {
	j, lastBreak := i, -1
	for j < len(s) {
		r, w := at(s, j)
		if class(r)&cSpace == 0 {
			break
		}
		j += w
		if isNewline(r) {
			lastBreak = j
		}
	}
	if lastBreak >= 0 {
		return lastBreak
	}
	if j == len(s) {
		return j
	}
	_, w := utf8.DecodeLastRuneInString(s[:j])
	if j-w > i {
		return j - w
	}
	return j
}

// contraction matches (?i:'s|'t|'re|'ve|'m|'ll|'d) after the apostrophe at
// s[i] and returns the end, or -1. With fold set, letters match in either case,
// including U+017F (ſ, long s), which simple case folding maps onto s.
func contraction(s string, i int, fold bool) int {
	lower := func(j int) (rune, int) {
		r, w := at(s, j)
		if fold {
			switch {
			case r >= 'A' && r <= 'Z':
				r += 'a' - 'A'
			case r == 'ſ':
				r = 's'
			}
		}
		return r, w
	}
	j := i + 1
	r, w := lower(j)
	switch r {
	case 's', 't', 'm', 'd':
		return j + w
	case 'r', 'v', 'l':
		want := 'e'
		if r == 'l' {
			want = 'l'
		}
		if r2, w2 := lower(j + w); r2 == want {
			return j + w + w2
		}
	}
	return -1
}

// wordScanner implements Llama3Regex (maxDigits 3) and Qwen2Regex (maxDigits
// 1):
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)
//	|[^\r\n\p{L}\p{N}]?\p{L}+
//	|\p{N}{1,maxDigits}
//	| ?[^\s\p{L}\p{N}]+[\r\n]*
//	|\s*[\r\n]+|\s+(?!\S)|\s+
//
// Every rune starts some alternative, so a match always begins at from.
type wordScanner struct{ maxDigits int }

func (ws wordScanner) FindNext(s string, i int) (int, int) {
	if i >= len(s) {
		return -1, -1
	}
	return i, ws.matchAt(s, i)
}

func (ws wordScanner) matchAt(s string, i int) int {
	r, w := at(s, i)
	c := class(r)
	if r == '\'' {
		if end := contraction(s, i, true); end > 0 {
			return end
		}
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+ : the optional rune is tried first.
	if c&cLetter != 0 {
		return run(s, i+w, cLetter)
	}
	if c&cNumber == 0 && !isNewline(r) {
		if c2, w2 := classAt(s, i+w); c2&cLetter != 0 {
			return run(s, i+w+w2, cLetter)
		}
	}
	if c&cNumber != 0 {
		j := i + w
		for k := 1; k < ws.maxDigits; k++ {
			c2, w2 := classAt(s, j)
			if c2&cNumber == 0 {
				break
			}
			j += w2
		}
		return j
	}
	// ` ?[^\s\p{L}\p{N}]+[\r\n]*`
	const other = cLetter | cNumber | cSpace
	start := -1
	if c&other == 0 {
		start = i
	} else if r == ' ' {
		if c2, w2 := classAt(s, i+1); w2 > 0 && c2&other == 0 {
			start = i + 1
		}
	}
	if start >= 0 {
		j := start
		for j < len(s) {
			c2, w2 := classAt(s, j)
			if c2&other != 0 {
				break
			}
			j += w2
		}
		return newlines(s, j)
	}
	// What is left is white space.
	return whitespace(s, i)
}

// deepSeekScanner implements DeepSeekV3Regex:
//
//	[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+
//	|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+
//	| ?[\p{P}\p{S}]+[\r\n]*
//	|\s*[\r\n]+|\s+(?!\S)|\s+
//
// Unlike the others, some runes (digits, control characters) start no
// alternative; they are left between matches.
type deepSeekScanner struct{}

func (deepSeekScanner) FindNext(s string, from int) (int, int) {
	for i := from; i < len(s); {
		if end := deepSeekMatchAt(s, i); end > i {
			return i, end
		}
		_, w := at(s, i)
		i += w
	}
	return -1, -1
}

func isASCIIPunct(r rune) bool {
	return r < utf8.RuneSelf && r > ' ' && r != 0x7f &&
		!(r >= '0' && r <= '9') && !(r >= 'A' && r <= 'Z') && !(r >= 'a' && r <= 'z')
}

func isASCIILetter(b byte) bool { return b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' }

// deepSeekMatchAt returns the end of the match at i, or i when none starts there.
func deepSeekMatchAt(s string, i int) int {
	r, w := at(s, i)
	c := class(r)
	if isASCIIPunct(r) && i+1 < len(s) && isASCIILetter(s[i+1]) {
		j := i + 1
		for j < len(s) && isASCIILetter(s[j]) {
			j++
		}
		return j
	}
	const lm = cLetter | cMark
	if c&(cLetter|cPunct|cSymbol) == 0 && !isNewline(r) {
		if c2, w2 := classAt(s, i+w); c2&lm != 0 {
			return run(s, i+w+w2, lm)
		}
	}
	if c&lm != 0 {
		return run(s, i+w, lm)
	}
	const ps = cPunct | cSymbol
	start := -1
	if c&ps != 0 {
		start = i
	} else if r == ' ' {
		if c2, _ := classAt(s, i+1); c2&ps != 0 {
			start = i + 1
		}
	}
	if start >= 0 {
		return newlines(s, run(s, start, ps))
	}
	if c&cSpace != 0 {
		return whitespace(s, i)
	}
	return i
}

// gpt2Scanner implements GPT2Regex:
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
type gpt2Scanner struct{}

func (gpt2Scanner) FindNext(s string, i int) (int, int) {
	if i >= len(s) {
		return -1, -1
	}
	r, _ := at(s, i)
	if r == '\'' {
		if end := contraction(s, i, false); end > 0 {
			return i, end
		}
	}
	// The optional leading space belongs to whichever of the next three
	// alternatives the following rune starts.
	start, c := i, class(r)
	if r == ' ' {
		if c2, w2 := classAt(s, i+1); w2 > 0 && c2&cSpace == 0 {
			start, c = i+1, c2
		}
	}
	switch {
	case c&cLetter != 0:
		return i, run(s, start, cLetter)
	case c&cNumber != 0:
		return i, run(s, start, cNumber)
	case c&cSpace == 0:
		j := start
		for j < len(s) {
			c2, w2 := classAt(s, j)
			if c2&(cLetter|cNumber|cSpace) != 0 {
				break
			}
			j += w2
		}
		return i, j
	}
	return i, gpt2Whitespace(s, i)
}

// gpt2Whitespace is `\s+(?!\S)|\s+` without the line-break alternative.
func gpt2Whitespace(s string, i int) int {
	j := run(s, i, cSpace)
	if j == len(s) {
		return j
	}
	_, w := utf8.DecodeLastRuneInString(s[:j])
	if j-w > i {
		return j - w
	}
	return j
}

// runScanner matches runs of runes for which in is true, at most max runes
// long when max > 0: `CLASS+` or `CLASS{1,max}`.
type runScanner struct {
	in  func(rune) bool
	max int
}

func (rs runScanner) FindNext(s string, from int) (int, int) {
	for i := from; i < len(s); {
		r, w := at(s, i)
		if !rs.in(r) {
			i += w
			continue
		}
		j, n := i+w, 1
		for j < len(s) && (rs.max == 0 || n < rs.max) {
			r2, w2 := at(s, j)
			if !rs.in(r2) {
				break
			}
			j, n = j+w2, n+1
		}
		return i, j
	}
	return -1, -1
}

// isDeepSeekCJK is the class [一-龥぀-ゟ゠-ヿ]: CJK ideographs U+4E00–U+9FA5,
// Hiragana U+3040–U+309F and Katakana U+30A0–U+30FF.
func isDeepSeekCJK(r rune) bool {
	return r >= 0x4E00 && r <= 0x9FA5 || r >= 0x3040 && r <= 0x30FF
}
