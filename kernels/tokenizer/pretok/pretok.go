// Package pretok splits text the way the regex-based pre-tokenizers of
// Hugging Face tokenizers do (the "Split" pre-tokenizer and the GPT-2 regex of
// "ByteLevel").
//
// Those regexes are run by the Rust Oniguruma engine, and the ones that matter
// (Llama 3, Qwen2/3, DeepSeek-V3, GPT-2) use a negative lookahead, `\s+(?!\S)`,
// which Go's RE2-based regexp cannot express. Rather than approximate them,
// each known pattern has a hand-written scanner that reproduces Oniguruma's
// leftmost-first backtracking choice alternative by alternative. Patterns
// without lookaround fall back to Go's regexp, whose leftmost-first semantics
// agree with Oniguruma's for them.
//
// Unicode classes map onto Go's unicode package: \p{L} IsLetter, \p{N}
// IsNumber, \p{P} IsPunct, \p{S} IsSymbol, \p{M} IsMark, and \s the Unicode
// White_Space property (unicode.IsSpace), which is what Oniguruma uses in
// Unicode mode.
package pretok

import (
	"fmt"
	"regexp"
	"strings"
)

// A Pattern finds the matches of one split regex.
type Pattern interface {
	// FindNext returns the byte span of the leftmost match in s that starts
	// at or after from, or (-1, -1) when there is none. A match is never
	// empty.
	FindNext(s string, from int) (start, end int)
}

// The regexes the scanners in this package implement, spelled exactly as they
// appear in tokenizer.json files.
const (
	// Llama3Regex is the Split pattern of Llama 3 (tiktoken cl100k style):
	// digits in groups of up to three.
	Llama3Regex = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// Qwen2Regex is the Split pattern of Qwen2 and Qwen3: single digits.
	Qwen2Regex = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// DeepSeekV3Regex is the third (word-level) Split pattern of DeepSeek-V3;
	// digits and CJK runs have been split out by the two before it.
	DeepSeekV3Regex = "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"
	// DeepSeekV3DigitsRegex and DeepSeekV3CJKRegex are DeepSeek-V3's first
	// two Split patterns. Go's regexp handles them correctly but slowly, so
	// they get scanners too.
	DeepSeekV3DigitsRegex = `\p{N}{1,3}`
	DeepSeekV3CJKRegex    = `[一-龥぀-ゟ゠-ヿ]+`
	// GPT2Regex is the pattern the ByteLevel pre-tokenizer applies when its
	// use_regex flag is set.
	GPT2Regex = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
)

// Compile returns the Pattern for a regex taken from tokenizer.json.
func Compile(expr string) (Pattern, error) {
	switch expr {
	case Llama3Regex:
		return wordScanner{maxDigits: 3}, nil
	case Qwen2Regex:
		return wordScanner{maxDigits: 1}, nil
	case DeepSeekV3Regex:
		return deepSeekScanner{}, nil
	case GPT2Regex:
		return gpt2Scanner{}, nil
	case DeepSeekV3DigitsRegex:
		return runScanner{in: func(r rune) bool { return class(r)&cNumber != 0 }, max: 3}, nil
	case DeepSeekV3CJKRegex:
		return runScanner{in: isDeepSeekCJK}, nil
	}
	// The DeepSeek-V3 form with escaped "\r\n" rather than raw control
	// characters means the same thing.
	if strings.ReplaceAll(strings.ReplaceAll(expr, `\r`, "\r"), `\n`, "\n") == DeepSeekV3Regex {
		return deepSeekScanner{}, nil
	}
	for _, look := range []string{"(?=", "(?!", "(?<=", "(?<!"} {
		if strings.Contains(expr, look) {
			return nil, fmt.Errorf("regex %q: lookaround %q is not supported by Go's regexp and no hand-written scanner matches this pattern", expr, look)
		}
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %w", expr, err)
	}
	return goRegexp{re}, nil
}

// Literal returns a Pattern matching occurrences of a fixed string, as a
// Split with a {"String": ...} pattern does.
func Literal(lit string) (Pattern, error) {
	if lit == "" {
		return nil, fmt.Errorf("empty split string")
	}
	return literal(lit), nil
}

type literal string

func (l literal) FindNext(s string, from int) (int, int) {
	i := strings.Index(s[from:], string(l))
	if i < 0 {
		return -1, -1
	}
	return from + i, from + i + len(l)
}

type goRegexp struct{ re *regexp.Regexp }

func (g goRegexp) FindNext(s string, from int) (int, int) {
	for from <= len(s) {
		loc := g.re.FindStringIndex(s[from:])
		if loc == nil {
			return -1, -1
		}
		if loc[1] > loc[0] {
			return from + loc[0], from + loc[1]
		}
		// Skip empty matches, which Split drops anyway.
		from += loc[0] + 1
	}
	return -1, -1
}

// Behavior is what Split does with the matches, as in tokenizers'
// SplitDelimiterBehavior.
type Behavior int

const (
	Isolated           Behavior = iota // matches and the text between them are separate pieces
	Removed                            // matches are dropped
	MergedWithPrevious                 // each match is appended to the piece before it
	MergedWithNext                     // each match is prepended to the piece after it
)

// ParseBehavior maps a tokenizer.json behavior name onto a Behavior.
func ParseBehavior(name string) (Behavior, error) {
	switch name {
	case "Isolated":
		return Isolated, nil
	case "Removed":
		return Removed, nil
	case "MergedWithPrevious":
		return MergedWithPrevious, nil
	case "MergedWithNext":
		return MergedWithNext, nil
	}
	return 0, fmt.Errorf("split behavior %q is not supported", name)
}

// Split appends to dst the pieces of s and returns the extended slice. No
// piece is empty.
func Split(dst []string, s string, p Pattern, b Behavior) []string {
	Each(s, p, b, func(start, end int) { dst = append(dst, s[start:end]) })
	return dst
}

// Each calls yield with the byte span of each piece of s in order, as Split
// would return them, without collecting them.
func Each(s string, p Pattern, b Behavior, yield func(start, end int)) {
	emit := func(start, end int) {
		if end > start {
			yield(start, end)
		}
	}
	prev := 0    // end of the last match
	pending := 0 // start of the piece being built for MergedWithNext
	for from := 0; from < len(s); {
		start, end := p.FindNext(s, from)
		if start < 0 {
			break
		}
		switch b {
		case Isolated:
			emit(prev, start)
			emit(start, end)
		case Removed:
			emit(prev, start)
		case MergedWithPrevious:
			emit(prev, end)
		case MergedWithNext:
			emit(pending, start)
			pending = start
		}
		prev, from = end, end
	}
	if b == MergedWithNext {
		emit(pending, len(s))
		return
	}
	emit(prev, len(s))
}
