package llama2c

import (
	"bufio"
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
	maxLen int
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
// and that many bytes.
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
	if vocab <= byteOffset+256 {
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
	t := &Tokenizer{
		pieces: make([]string, vocab),
		scores: make([]float32, vocab),
		lookup: make(map[string]int32, vocab),
		maxLen: int(maxLen),
	}
	for i := range vocab {
		if _, err := io.ReadFull(r, b[:8]); err != nil {
			return nil, readErr(err, fmt.Sprintf("at piece %d of %d", i, vocab))
		}
		t.scores[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[:4]))
		n := int32(binary.LittleEndian.Uint32(b[4:8]))
		if n < 0 || n > maxLen {
			return nil, fmt.Errorf("piece %d has length %d, outside [0, max_token_length=%d]", i, n, maxLen)
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(r, p); err != nil {
			return nil, readErr(err, fmt.Sprintf("in the bytes of piece %d of %d", i, vocab))
		}
		// run.c handles pieces as C strings: a NUL ends them.
		s, _, _ := strings.Cut(string(p), "\x00")
		t.pieces[i] = s
		if _, dup := t.lookup[s]; !dup {
			// With duplicates run.c's bsearch may find either; keep the lowest id.
			t.lookup[s] = int32(i)
		}
	}
	if _, err := r.ReadByte(); err != io.EOF {
		return nil, fmt.Errorf("trailing bytes after %d pieces (wrong vocab size?)", vocab)
	}
	return t, nil
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

// Token returns the raw piece string of id, as stored in the file.
func (t *Tokenizer) Token(id int32) string { return t.pieces[id] }

// Encode tokenizes text as run.c's encode does: optional BOS, a dummy " "
// prefix piece when text is non-empty, each UTF-8 character (at most 4
// bytes) looked up as a piece or else split into byte-fallback ids (byte+3),
// then repeatedly merging the adjacent pair whose concatenation is the
// highest-scoring piece (the leftmost on ties), and an optional EOS.
func (t *Tokenizer) Encode(text string, bos, eos bool) []int32 {
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
	// C strings end at NUL; so does run.c's text.
	text, _, _ = strings.Cut(text, "\x00")
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
	for {
		best, bestID, bestIdx := float32(-1e10), int32(-1), -1
		for i := 0; i+1 < len(toks); i++ {
			id, ok := t.lookup[t.pieces[toks[i]]+t.pieces[toks[i+1]]]
			if ok && t.scores[id] > best {
				best, bestID, bestIdx = t.scores[id], id, i
			}
		}
		if bestIdx < 0 {
			break
		}
		toks[bestIdx] = bestID
		toks = append(toks[:bestIdx+1], toks[bestIdx+2:]...)
	}
	if eos {
		toks = append(toks, eosID)
	}
	return toks
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
