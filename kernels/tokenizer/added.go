package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// addedToken is an entry of tokenizer.json's added_tokens: a string that is
// cut out of the text whole before normalization and pre-tokenization.
type addedToken struct {
	id         int32
	content    string
	singleWord bool // only matches when not inside a word
	lstrip     bool // also swallows the white space before it
	rstrip     bool // also swallows the white space after it
	normalized bool // matched in the normalized text rather than the raw one
	special    bool // dropped by Decode(..., skipSpecial=true)
}

// segment is a piece of text, or an added token when id >= 0.
type segment struct {
	text string
	id   int32
}

// addedMatcher finds added tokens leftmost first and, among those starting
// at the same place, longest first (tokenizers uses an Aho-Corasick
// automaton with the same LeftmostLongest rule). A byte trie suffices: the
// tokens are few and most positions are rejected by their first byte.
type addedMatcher struct {
	root  trieNode
	first [256]bool
}

type trieNode struct {
	next map[byte]*trieNode
	tok  *addedToken
}

func newAddedMatcher(toks []*addedToken) *addedMatcher {
	m := &addedMatcher{}
	for _, t := range toks {
		if t.content == "" {
			continue
		}
		n := &m.root
		for i := 0; i < len(t.content); i++ {
			c := t.content[i]
			if n.next == nil {
				n.next = map[byte]*trieNode{}
			}
			child := n.next[c]
			if child == nil {
				child = &trieNode{}
				n.next[c] = child
			}
			n = child
		}
		if n.tok == nil { // the first of duplicate contents wins
			n.tok = t
		}
		m.first[t.content[0]] = true
	}
	return m
}

// longestAt returns the longest token that s[i:] starts with.
func (m *addedMatcher) longestAt(s string, i int) (*addedToken, int) {
	var best *addedToken
	end := -1
	n := &m.root
	for j := i; j < len(s); j++ {
		n = n.next[s[j]]
		if n == nil {
			break
		}
		if n.tok != nil {
			best, end = n.tok, j+1
		}
	}
	return best, end
}

// split appends the segments of s to dst: text between tokens with id -1,
// and each token found.
func (m *addedMatcher) split(dst []segment, s string) []segment {
	if m == nil {
		return appendText(dst, s)
	}
	prev := 0
	for i := 0; i < len(s); i++ {
		if !m.first[s[i]] {
			continue
		}
		tok, end := m.longestAt(s, i)
		if tok == nil {
			continue
		}
		start := i
		if tok.singleWord && (endsWithWord(s[:start]) || startsWithWord(s[end:])) {
			continue
		}
		if tok.lstrip {
			for start > prev {
				r, w := utf8.DecodeLastRuneInString(s[:start])
				if !unicode.IsSpace(r) {
					break
				}
				start -= w
			}
		}
		if tok.rstrip {
			for end < len(s) {
				r, w := utf8.DecodeRuneInString(s[end:])
				if !unicode.IsSpace(r) {
					break
				}
				end += w
			}
		}
		dst = appendText(dst, s[prev:start])
		dst = append(dst, segment{text: s[start:end], id: tok.id})
		prev = end
		i = end - 1
	}
	return appendText(dst, s[prev:])
}

func appendText(dst []segment, s string) []segment {
	if s == "" {
		return dst
	}
	return append(dst, segment{text: s, id: -1})
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) || r == '_' }

func endsWithWord(s string) bool {
	r, w := utf8.DecodeLastRuneInString(s)
	return w > 0 && isWordRune(r)
}

func startsWithWord(s string) bool {
	r, w := utf8.DecodeRuneInString(s)
	return w > 0 && isWordRune(r)
}
