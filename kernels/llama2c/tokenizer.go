package llama2c

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

// Tokenizer is llama2.c's tokenizer.bin: a vocabulary of pieces with merge
// scores. Encode and Piece follow run.c's encode and decode exactly.
type Tokenizer struct {
	pieces []string
	scores []float32
	lookup map[string]int32 // piece → id (run.c's sorted_vocab + bsearch)
	// pairs maps two canonical ids (the id lookup gives their pieces) to
	// the id of their concatenation, when that is a piece.
	pairs map[[2]int32]int32
	canon []int32 // id → the id lookup returns for its piece
}

// Special ids fixed by the llama2.c (SentencePiece) vocabulary layout.
const (
	bosID = 1
	eosID = 2
	// byteOffset is the id of the <0x00> byte-fallback piece.
	byteOffset = 3
)

// LoadTokenizer reads a llama2.c tokenizer.bin holding vocab pieces: an
// int32 max_token_length, then per piece a float32 score, an int32 length
// and that many bytes. vocab 0 reads every piece the file holds (the file
// does not record their number; a checkpoint's header does).
func LoadTokenizer(path string, vocab int) (*Tokenizer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("llama2c: tokenizer: %w", err)
	}
	defer f.Close()
	t, err := readTokenizer(bufio.NewReader(f), vocab)
	if err != nil {
		return nil, fmt.Errorf("llama2c: tokenizer %s: %w", path, err)
	}
	return t, nil
}

func readTokenizer(r *bufio.Reader, vocab int) (*Tokenizer, error) {
	all := vocab == 0
	if !all && vocab <= byteOffset+256 {
		return nil, fmt.Errorf("vocab size %d cannot hold the special and 256 byte pieces", vocab)
	}
	var b [8]byte
	if _, err := io.ReadFull(r, b[:4]); err != nil {
		return nil, readErr(err, "in max_token_length")
	}
	maxLen := int32(binary.LittleEndian.Uint32(b[:4]))
	if maxLen <= 0 {
		return nil, fmt.Errorf("max_token_length is %d, must be positive", maxLen)
	}
	// vocab (from the model's header) and the lengths are claims of the
	// files: the tables grow as pieces are actually read, so a short file
	// claiming a huge vocabulary or piece fails on its end, having
	// allocated only what it holds.
	const prealloc = 1 << 16
	t := &Tokenizer{
		pieces: make([]string, 0, min(vocab, prealloc)),
		scores: make([]float32, 0, min(vocab, prealloc)),
		lookup: make(map[string]int32, min(vocab, prealloc)),
	}
	var p bytes.Buffer
	of := fmt.Sprintf(" of %d", vocab)
	if all {
		of = ""
	}
	for i := 0; all || i < vocab; i++ {
		if all {
			if _, err := r.Peek(1); err == io.EOF {
				if i <= byteOffset+256 {
					return nil, fmt.Errorf("%d pieces cannot hold the special and 256 byte pieces", i)
				}
				break
			}
		}
		if _, err := io.ReadFull(r, b[:8]); err != nil {
			return nil, readErr(err, fmt.Sprintf("at piece %d%s", i, of))
		}
		t.scores = append(t.scores, math.Float32frombits(binary.LittleEndian.Uint32(b[:4])))
		n := int32(binary.LittleEndian.Uint32(b[4:8]))
		if n < 0 || n > maxLen {
			return nil, fmt.Errorf("piece %d has length %d, outside [0, max_token_length=%d]", i, n, maxLen)
		}
		p.Reset()
		if _, err := io.CopyN(&p, r, int64(n)); err != nil {
			return nil, readErr(err, fmt.Sprintf("in the bytes of piece %d%s", i, of))
		}
		// run.c handles pieces as C strings: a NUL ends them.
		s, _, _ := strings.Cut(p.String(), "\x00")
		t.pieces = append(t.pieces, s)
		if _, dup := t.lookup[s]; !dup {
			// With duplicates run.c's bsearch may find either; keep the lowest id.
			t.lookup[s] = int32(i)
		}
	}
	if _, err := r.ReadByte(); err != io.EOF {
		return nil, fmt.Errorf("trailing bytes after %d pieces (wrong vocab size?)", vocab)
	}
	t.buildPairs()
	return t, nil
}

// buildPairs indexes every way of writing a piece as the concatenation of
// two pieces, so merging needs no string building.
func (t *Tokenizer) buildPairs() {
	t.canon = make([]int32, len(t.pieces))
	t.pairs = make(map[[2]int32]int32)
	for id, p := range t.pieces {
		t.canon[id] = t.lookup[p]
		if t.canon[id] != int32(id) {
			continue
		}
		for k := 0; k <= len(p); k++ {
			a, okA := t.lookup[p[:k]]
			b, okB := t.lookup[p[k:]]
			if okA && okB {
				t.pairs[[2]int32{a, b}] = int32(id)
			}
		}
	}
}

// readErr reports the end of the file as truncation at where, and any other
// read error as it is.
func readErr(err error, where string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("truncated %s", where)
	}
	return fmt.Errorf("reading %s: %w", where, err)
}

// Vocab is the number of pieces.
func (t *Tokenizer) Vocab() int { return len(t.pieces) }

// BOS is the beginning-of-sequence id.
func (t *Tokenizer) BOS() int32 { return bosID }

// EOS is the end-of-sequence id.
func (t *Tokenizer) EOS() int32 { return eosID }

// Score returns the merge score of id's piece: the higher, the earlier
// Encode merges it.
func (t *Tokenizer) Score(id int32) float32 { return t.scores[id] }

// Token returns the piece of id as stored in the file (up to a NUL byte, as
// run.c reads it).
func (t *Tokenizer) Token(id int32) string { return t.pieces[id] }

// Encode tokenizes text as run.c's encode does: optional BOS, a dummy " "
// prefix piece when text is non-empty, each UTF-8 character (at most 4
// bytes) looked up as a piece or else split into byte-fallback ids (byte+3),
// then repeatedly merging the adjacent pair whose concatenation is the
// highest-scoring piece (the leftmost on ties), and an optional EOS.
func (t *Tokenizer) Encode(text string, bos, eos bool) []int32 {
	// C strings end at NUL; so does run.c's text.
	text, _, _ = strings.Cut(text, "\x00")
	toks := make([]int32, 0, len(text)+3)
	if bos {
		toks = append(toks, bosID)
	}
	if text != "" {
		// run.c pushes the lookup result even when " " is missing (-1); a
		// vocabulary without " " cannot encode, so fall back to its byte.
		id, ok := t.lookup[" "]
		if !ok {
			id = byteOffset + ' '
		}
		toks = append(toks, id)
	}
	for i := 0; i < len(text); {
		// A character is a lead byte plus up to 3 continuation bytes; run.c
		// cuts longer runs of continuation bytes into groups of 4 bytes.
		j := i + 1
		for j < len(text) && text[j]&0xC0 == 0x80 && j-i < 4 {
			j++
		}
		if id, ok := t.lookup[text[i:j]]; ok {
			toks = append(toks, id)
		} else {
			for k := i; k < j; k++ {
				toks = append(toks, byteOffset+int32(text[k]))
			}
		}
		i = j
	}
	toks = t.merge(toks)
	if eos {
		toks = append(toks, eosID)
	}
	return toks
}

// merge applies run.c's merge rule to toks: while some adjacent pair
// concatenates to a piece, replace the pair whose piece scores highest (the
// leftmost of equal scores; scores must exceed run.c's starting best of
// -1e10) by that piece. run.c rescans the whole sequence for every merge,
// which is quadratic; this keeps the candidates in a heap ordered by (score,
// position) over a linked list and gives the same result in O(n log n).
func (t *Tokenizer) merge(toks []int32) []int32 {
	n := len(toks)
	if n < 2 {
		return toks
	}
	next := make([]int, n) // index of the next live token, n at the end
	prev := make([]int, n) // index of the previous live token, -1 at the start
	for i := range n {
		next[i], prev[i] = i+1, i-1
	}
	h := &mergeHeap{}
	push := func(l, r int) {
		id, ok := t.pairs[[2]int32{t.canon[toks[l]], t.canon[toks[r]]}]
		if ok && t.scores[id] > -1e10 {
			heap.Push(h, mergeCand{score: t.scores[id], left: l, right: r, lt: toks[l], rt: toks[r], id: id})
		}
	}
	for i := 0; i+1 < n; i++ {
		push(i, i+1)
	}
	for h.Len() > 0 {
		c := heap.Pop(h).(mergeCand)
		// Stale if either side has been merged away or changed since.
		if next[c.left] != c.right || toks[c.left] != c.lt || toks[c.right] != c.rt {
			continue
		}
		toks[c.left] = c.id
		toks[c.right] = -1
		nr := next[c.right]
		next[c.left] = nr
		if nr < n {
			prev[nr] = c.left
		}
		if p := prev[c.left]; p >= 0 {
			push(p, c.left)
		}
		if nr < n {
			push(c.left, nr)
		}
	}
	out := toks[:0]
	for i := 0; i < n; i = next[i] {
		out = append(out, toks[i])
	}
	return out
}

type mergeCand struct {
	score       float32
	left, right int   // token indices; original order is sequence order
	lt, rt      int32 // the ids both sides had when the candidate was made
	id          int32 // the merged piece
}

// mergeHeap pops the highest score first, then the leftmost pair.
type mergeHeap []mergeCand

func (h mergeHeap) Len() int { return len(h) }
func (h mergeHeap) Less(i, j int) bool {
	if h[i].score != h[j].score {
		return h[i].score > h[j].score
	}
	return h[i].left < h[j].left
}
func (h mergeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *mergeHeap) Push(x any)   { *h = append(*h, x.(mergeCand)) }
func (h *mergeHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// Piece returns the text of tok following prev, as run.c's decode does: after
// BOS a leading space is dropped, and a "<0xXX>" byte piece becomes that raw
// byte (the NUL byte becomes "", as it ends a C string).
func (t *Tokenizer) Piece(prev, tok int32) string {
	p := t.pieces[tok]
	if prev == bosID && strings.HasPrefix(p, " ") {
		p = p[1:]
	}
	if b, ok := parseBytePiece(p); ok {
		if b == 0 {
			return ""
		}
		return string([]byte{b})
	}
	return p
}

// SafePiece is Piece filtered as run.c's safe_printf filters what it prints:
// a piece that is a single byte which is neither printable ASCII nor ASCII
// white space (a lone byte of a multi-byte character, a control byte) is
// dropped.
func (t *Tokenizer) SafePiece(prev, tok int32) string {
	p := t.Piece(prev, tok)
	if len(p) == 1 {
		c := p[0]
		printable := c >= 0x20 && c <= 0x7E
		space := c == ' ' || (c >= '\t' && c <= '\r')
		if !printable && !space {
			return ""
		}
	}
	return p
}

// parseBytePiece matches what sscanf(piece, "<0x%02hhX>", &b) == 1 accepts:
// the prefix "<0x" and then one or two hex digits (what follows them is not
// checked).
func parseBytePiece(p string) (byte, bool) {
	rest, ok := strings.CutPrefix(p, "<0x")
	if !ok {
		return 0, false
	}
	var v, n int
	for n < 2 && n < len(rest) {
		d := hexDigit(rest[n])
		if d < 0 {
			break
		}
		v = v*16 + d
		n++
	}
	return byte(v), n > 0
}

func hexDigit(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
