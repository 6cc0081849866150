package answer

import (
	"fmt"
	"regexp"
	"strings"
)

// Invalid is the answer lm-eval records when a filter finds nothing (its
// RegexFilter fallback); sample logs use it for a failed extraction.
const Invalid = "[invalid]"

// pythonPunctuation is Python's string.punctuation, which lm-eval's
// exact_match strips under ignore_punctuation (ASCII only, as there).
const pythonPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// MatchOptions are the arguments of lm-eval's exact_match metric (the
// Hugging Face evaluate implementation it calls).
type MatchOptions struct {
	// Ignore are removed (every match replaced by "") from both strings
	// first, in order, as regexes_to_ignore. Note that Go's "$" matches only
	// at the end of the text, where Python's also matches before a final
	// newline; the filters strip their output, so the difference does not
	// arise on extracted answers.
	Ignore []*regexp.Regexp
	// IgnoreCase lower-cases both strings, after Ignore.
	IgnoreCase bool
	// IgnorePunctuation deletes ASCII punctuation, after IgnoreCase.
	IgnorePunctuation bool
	// IgnoreNumbers deletes the digits 0-9, last.
	IgnoreNumbers bool
}

// ExactMatch reports whether pred equals ref after both went through the
// same normalisation as lm-eval's exact_match.
func ExactMatch(pred, ref string, opt MatchOptions) bool {
	return opt.normalize(pred) == opt.normalize(ref)
}

func (opt MatchOptions) normalize(s string) string {
	for _, re := range opt.Ignore {
		s = re.ReplaceAllLiteralString(s, "")
	}
	if opt.IgnoreCase {
		s = strings.ToLower(s)
	}
	if opt.IgnorePunctuation {
		s = deleteBytes(s, pythonPunctuation)
	}
	if opt.IgnoreNumbers {
		s = deleteBytes(s, "0123456789")
	}
	return s
}

// deleteBytes removes every occurrence of the ASCII characters in set.
func deleteBytes(s, set string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x80 && strings.ContainsRune(set, r) {
			return -1
		}
		return r
	}, s)
}

// RegexFilter is lm-eval's "regex" filter: the matches of Pattern in a
// response, as Python's re.findall lists them (the whole match when the
// pattern has no group, the group when it has one, the first non-empty
// group when it has several), the GroupSelect-th of them (negative counts
// from the end, -1 is the last), stripped of surrounding white space.
type RegexFilter struct {
	Pattern     *regexp.Regexp
	GroupSelect int
}

// Apply returns the selected match, or false when the pattern does not
// match, the index is out of range, or every group of the selected match is
// empty (where lm-eval falls back to Invalid).
func (f RegexFilter) Apply(response string) (string, bool) {
	all := f.Pattern.FindAllStringSubmatch(response, -1)
	i := f.GroupSelect
	if i < 0 {
		i += len(all)
	}
	if i < 0 || i >= len(all) {
		return "", false
	}
	m := all[i]
	var s string
	switch len(m) {
	case 1:
		s = m[0]
	case 2:
		s = m[1]
	default:
		found := false
		for _, g := range m[1:] {
			if g != "" {
				s, found = g, true
				break
			}
		}
		if !found {
			return "", false
		}
	}
	return strings.TrimSpace(s), true
}

// CompileFullMatch compiles a regex answer key whose MatchString is
// Python's re.fullmatch: it accepts a prediction only when the whole of it
// matches ("(?i)paris|the capital of france" rejects "Paris, France").
// Anchoring the alternation as a group matters: leftmost-first matching of
// the bare pattern could settle on a shorter alternative.
func CompileFullMatch(expr string) (*regexp.Regexp, error) {
	if _, err := regexp.Compile(expr); err != nil {
		return nil, fmt.Errorf("answer pattern %q: %w", expr, err)
	}
	return regexp.Compile(`^(?:` + expr + `)$`)
}
