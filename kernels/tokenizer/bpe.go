package tokenizer

import (
	"strings"
	"sync"
	"unicode/utf8"
)

// bpe is the "BPE" model of tokenizer.json: a word is split into single
// runes (or byte tokens) and adjacent pairs are merged, lowest merge rank
// first, until no listed pair is left.
type bpe struct {
	vocab  map[string]int32
	merges map[uint64]merge // pairKey(left, right) → merge

	// ignoreMerges: a word that is a vocabulary entry as a whole is that
	// token, whatever the merges would produce (Llama 3).
	ignoreMerges bool
	byteFallback bool  // unknown runes become <0xXX> byte tokens
	unk          int32 // the unknown token, -1 when there is none
	fuseUnk      bool  // consecutive unknown runes give a single unk

	fallback [256]int32 // id of "<0xXX>", -1 if absent

	// metaSplit: no token has SentencePiece's "▁" after another rune, so no
	// merge can cross the start of a "▁" run, and a long word (a whole text,
	// with no pre-tokenizer) can be encoded and cached piece by piece with
	// the same result.
	metaSplit bool

	// byteIDs is set for byte-level vocabularies whose 256 byte runes are all
	// tokens; words can then be tokenized straight from their raw bytes.
	byteIDs *[256]int32

	cache wordCache
}

type merge struct{ rank, id int32 }

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// initByteIDs prepares the raw-byte fast path when the vocabulary has every
// byte-level rune.
func (m *bpe) initByteIDs() {
	var ids [256]int32
	for b := range 256 {
		id, ok := m.vocab[string(byteToRune[b])]
		if !ok {
			return
		}
		ids[b] = id
	}
	m.byteIDs = &ids
}

// appendRaw appends the ids of a pre-tokenized piece given as raw bytes,
// each byte standing for its byte-level rune; byteIDs must be set (Load
// checks). Results are cached per piece.
func (m *bpe) appendRaw(dst []int32, piece string) []int32 {
	if ids, ok := m.cache.get(piece); ok {
		return append(dst, ids...)
	}
	var ids []int32
	if m.ignoreMerges {
		if id, ok := m.vocab[byteLevel(piece)]; ok {
			ids = []int32{id}
		}
	}
	if ids == nil {
		ids = make([]int32, len(piece))
		for i := 0; i < len(piece); i++ {
			ids[i] = m.byteIDs[piece[i]]
		}
		ids = m.mergeAll(ids)
	}
	m.cache.put(piece, ids)
	return append(dst, ids...)
}

const meta = "\u2581" // SentencePiece's word-start mark, "▁"

// initMetaSplit sets metaSplit when every token is "▁"* followed by runes
// other than "▁", and "▁" itself is a token (so no unknown run can span a
// split point).
func (m *bpe) initMetaSplit() {
	if _, ok := m.vocab[meta]; !ok {
		return
	}
	for tok := range m.vocab {
		if strings.Contains(strings.TrimLeft(tok, meta), meta) {
			return
		}
	}
	m.metaSplit = true
}

// appendText appends the ids of normalized text that no pre-tokenizer split.
func (m *bpe) appendText(dst []int32, text string) []int32 {
	if !m.metaSplit {
		return m.appendWord(dst, text)
	}
	if m.ignoreMerges {
		if id, ok := m.vocab[text]; ok {
			return append(dst, id)
		}
	}
	for text != "" {
		// The piece runs to the next "▁" that follows another rune.
		end := len(text)
		rest := strings.TrimLeft(text, meta)
		if i := strings.Index(rest, meta); i >= 0 {
			end = len(text) - len(rest) + i
		}
		piece := text[:end]
		text = text[end:]
		if ids, ok := m.cache.get(piece); ok {
			dst = append(dst, ids...)
			continue
		}
		ids := m.appendWord(nil, piece)
		m.cache.put(piece, ids)
		dst = append(dst, ids...)
	}
	return dst
}

// appendWord appends the ids of a word written in the vocabulary's own
// alphabet (SentencePiece's "▁" words, or byte-level text).
func (m *bpe) appendWord(dst []int32, word string) []int32 {
	if m.ignoreMerges {
		if id, ok := m.vocab[word]; ok {
			return append(dst, id)
		}
	}
	syms := make([]int32, 0, len(word))
	unkPending := false
	flushUnk := func() {
		if unkPending {
			syms = append(syms, m.unk)
			unkPending = false
		}
	}
	for i := 0; i < len(word); {
		_, w := utf8.DecodeRuneInString(word[i:])
		r := word[i : i+w]
		i += w
		if id, ok := m.vocab[r]; ok {
			flushUnk()
			syms = append(syms, id)
			continue
		}
		if m.byteFallback && m.hasFallback(r) {
			flushUnk()
			for j := 0; j < len(r); j++ {
				syms = append(syms, m.fallback[r[j]])
			}
			continue
		}
		if m.unk < 0 {
			// tokenizers fails the whole encoding here; dropping the rune
			// keeps Encode total. No shipped vocabulary reaches this.
			continue
		}
		if !m.fuseUnk {
			syms = append(syms, m.unk)
			continue
		}
		unkPending = true
	}
	flushUnk()
	return append(dst, m.mergeAll(syms)...)
}

func (m *bpe) hasFallback(r string) bool {
	for j := 0; j < len(r); j++ {
		if m.fallback[r[j]] < 0 {
			return false
		}
	}
	return true
}

// mergeAll applies the merges to syms in place and returns the result.
// Short words take the quadratic scan, which beats a heap on them; both pick
// the pair with the lowest rank, leftmost first, so they agree.
func (m *bpe) mergeAll(syms []int32) []int32 {
	if len(syms) <= 48 {
		return m.mergeLinear(syms)
	}
	return m.mergeHeap(syms)
}

func (m *bpe) mergeLinear(syms []int32) []int32 {
	for len(syms) > 1 {
		best, bestRank, bestID := -1, int32(0), int32(0)
		for i := 0; i+1 < len(syms); i++ {
			if mg, ok := m.merges[pairKey(syms[i], syms[i+1])]; ok && (best < 0 || mg.rank < bestRank) {
				best, bestRank, bestID = i, mg.rank, mg.id
			}
		}
		if best < 0 {
			break
		}
		syms[best] = bestID
		syms = append(syms[:best+1], syms[best+2:]...)
	}
	return syms
}

// mergeHeap is the O(n log n) form for long words (a whole document when
// there is no pre-tokenizer): symbols form a linked list, candidate pairs sit
// in a min-heap keyed by (rank, position), and stale entries are skipped when
// popped, as in tokenizers' Word::merge_all.
func (m *bpe) mergeHeap(syms []int32) []int32 {
	n := len(syms)
	next := make([]int32, n)
	prev := make([]int32, n)
	alive := make([]bool, n)
	for i := range n {
		next[i], prev[i], alive[i] = int32(i+1), int32(i-1), true
	}
	next[n-1] = -1
	var h pairHeap
	push := func(i int32) {
		j := next[i]
		if j < 0 {
			return
		}
		if mg, ok := m.merges[pairKey(syms[i], syms[j])]; ok {
			h.push(heapItem{rank: mg.rank, pos: i})
		}
	}
	for i := range n - 1 {
		push(int32(i))
	}
	for len(h) > 0 {
		it := h.pop()
		i := it.pos
		j := next[i]
		if !alive[i] || j < 0 {
			continue
		}
		mg, ok := m.merges[pairKey(syms[i], syms[j])]
		if !ok || mg.rank != it.rank {
			continue // the pair changed since this entry was pushed
		}
		syms[i] = mg.id
		alive[j] = false
		next[i] = next[j]
		if k := next[j]; k >= 0 {
			prev[k] = i
		}
		if p := prev[i]; p >= 0 {
			push(p)
		}
		push(i)
	}
	out := syms[:0]
	for i := int32(0); i >= 0; i = next[i] {
		out = append(out, syms[i])
	}
	return out
}

type heapItem struct{ rank, pos int32 }

func (a heapItem) less(b heapItem) bool {
	return a.rank < b.rank || a.rank == b.rank && a.pos < b.pos
}

// pairHeap is a binary min-heap; container/heap's interface boxing costs
// more than the merging itself here.
type pairHeap []heapItem

func (h *pairHeap) push(it heapItem) {
	*h = append(*h, it)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s[i].less(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *pairHeap) pop() heapItem {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	for i := 0; ; {
		l, r, min := 2*i+1, 2*i+2, i
		if l < len(s) && s[l].less(s[min]) {
			min = l
		}
		if r < len(s) && s[r].less(s[min]) {
			min = r
		}
		if min == i {
			break
		}
		s[i], s[min] = s[min], s[i]
		i = min
	}
	*h = s
	return top
}

// wordCache remembers the ids of recent pieces. It stops growing at
// capacity rather than evicting, like tokenizers' cache: text has a small
// working set of frequent words, and a full map still answers them.
type wordCache struct {
	mu sync.RWMutex
	m  map[string][]int32
}

const (
	cacheCapacity = 1 << 16
	cacheMaxWord  = 64 // longer pieces are rare and not worth keeping
)

func (c *wordCache) get(w string) ([]int32, bool) {
	c.mu.RLock()
	ids, ok := c.m[w]
	c.mu.RUnlock()
	return ids, ok
}

func (c *wordCache) put(w string, ids []int32) {
	if len(w) > cacheMaxWord {
		return
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string][]int32)
	}
	if len(c.m) < cacheCapacity {
		c.m[w] = ids
	}
	c.mu.Unlock()
}
