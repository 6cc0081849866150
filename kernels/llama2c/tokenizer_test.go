package llama2c

import (
	"bufio"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"lrmc/internal/shareddata"
)

func loadTok512(t *testing.T) *Tokenizer {
	t.Helper()
	tok, err := LoadTokenizer(shareddata.Path(t, "models", "stories260K", "tok512.bin"), 512)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestTokenizerVocabulary(t *testing.T) {
	tok := loadTok512(t)
	if tok.Vocab() != 512 || tok.BOS() != 1 || tok.EOS() != 2 {
		t.Fatalf("vocab %d bos %d eos %d", tok.Vocab(), tok.BOS(), tok.EOS())
	}
	// Layout from the shared data README.
	for id, want := range map[int32]string{0: "<unk>", 1: "\n<s>\n", 2: "\n</s>\n", 3: "<0x00>", 258: "<0xFF>", 259: " t", 410: " ", 403: " Once"} {
		if got := tok.Token(id); got != want {
			t.Errorf("piece %d = %q, want %q", id, got, want)
		}
	}
}

func TestEncode(t *testing.T) {
	tok := loadTok512(t)
	for _, c := range []struct {
		text     string
		bos, eos bool
		want     []int32
	}{
		// run.c's encoding of the reference prompt (reference/stories260K_greedy.json).
		{"Once upon a time", true, false, []int32{1, 403, 407, 261, 378}},
		{"", true, false, []int32{1}},
		{"", false, true, []int32{2}},
		{"", false, false, []int32{}},
		// ʃ (U+0283, bytes CA 83) is not a piece: byte fallback, id = byte+3,
		// after the dummy-prefix piece " " (410), which merges with nothing.
		{"ʃ", true, true, []int32{1, 410, 0xCA + 3, 0x83 + 3, 2}},
		// A 4-byte character the same way.
		{"😀", false, false, []int32{410, 0xF0 + 3, 0x9F + 3, 0x98 + 3, 0x80 + 3}},
		// Stray continuation bytes: run.c groups at most 4 bytes per lookup.
		{"\x80\x80\x80\x80\x80", false, false, []int32{410, 0x83, 0x83, 0x83, 0x83, 0x83}},
		// run.c reads the text as a C string.
		{"ʃ\x00ignored", false, false, []int32{410, 0xCA + 3, 0x83 + 3}},
		{"\x00ignored", true, false, []int32{1}},
	} {
		if got := tok.Encode(c.text, c.bos, c.eos); !slices.Equal(got, c.want) {
			t.Errorf("Encode(%q, %v, %v) = %v, want %v", c.text, c.bos, c.eos, got, c.want)
		}
	}
}

// TestEncodeDecodeTinyStories: for text without NUL, decoding run.c's
// encoding with run.c's decode rules gives the text back (the dummy prefix
// space is the one stripped after BOS), and the encoding is no longer than
// one token per byte.
func TestEncodeDecodeTinyStories(t *testing.T) {
	tok := loadTok512(t)
	f, err := os.Open(shareddata.Path(t, "text", "tinystories", "tinystories_val.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	lines, tokens, bytes := 0, 0, 0
	for sc.Scan() && lines < 400 {
		line := sc.Text()
		if line == "" {
			continue
		}
		lines++
		ids := tok.Encode(line, true, false)
		var b strings.Builder
		for i := 1; i < len(ids); i++ {
			b.WriteString(tok.Piece(ids[i-1], ids[i]))
		}
		if b.String() != line {
			t.Fatalf("line %d: decode(encode) = %q, want %q (ids %v)", lines, b.String(), line, ids)
		}
		tokens += len(ids) - 1
		bytes += len(line)
	}
	if lines == 0 {
		t.Fatal("no lines read")
	}
	t.Logf("%d lines, %d bytes, %d tokens: %.2f bytes/token", lines, bytes, tokens, float64(bytes)/float64(tokens))
}

func TestPiece(t *testing.T) {
	tok := loadTok512(t)
	for _, c := range []struct {
		prev, tok  int32
		piece, out string
	}{
		{1, 403, "Once", "Once"},       // leading space stripped after BOS
		{403, 407, " upon", " upon"},   // kept elsewhere
		{5, 0x41 + 3, "A", "A"},        // <0x41>
		{5, 0x0A + 3, "\n", "\n"},      // white space is printed
		{5, 0x07 + 3, "\a", ""},        // a control byte is not
		{5, 0xE2 + 3, "\xe2", ""},      // nor a lone byte of a UTF-8 character
		{5, 3, "", ""},                 // <0x00> ends a C string
		{5, 2, "\n</s>\n", "\n</s>\n"}, // multi-byte pieces are printed as they are
		{1, 410, "", ""},               // " " after BOS
	} {
		if got := tok.Piece(c.prev, c.tok); got != c.piece {
			t.Errorf("Piece(%d, %d) = %q, want %q", c.prev, c.tok, got, c.piece)
		}
		if got := tok.SafePiece(c.prev, c.tok); got != c.out {
			t.Errorf("SafePiece(%d, %d) = %q, want %q", c.prev, c.tok, got, c.out)
		}
	}
}

func TestLoadTokenizerErrors(t *testing.T) {
	src := shareddata.Path(t, "models", "stories260K", "tok512.bin")
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, c := range []struct {
		name  string
		data  []byte
		vocab int
		want  string
	}{
		// Piece 7's record starts at byte 100: its 8-byte header, then 6 bytes "<0x04>".
		{"trunc.bin", raw[:100], 512, "llama2c: tokenizer %s: truncated at piece 7 of 512"},
		{"trunc2.bin", raw[:110], 512, "llama2c: tokenizer %s: truncated in the bytes of piece 7 of 512"},
		{"ok.bin", raw, 300, "llama2c: tokenizer %s: trailing bytes after 300 pieces (wrong vocab size?)"},
		{"ok.bin", raw, 600, "llama2c: tokenizer %s: truncated at piece 512 of 600"},
		{"ok.bin", raw, 100, "llama2c: tokenizer %s: vocab size 100 cannot hold the special and 256 byte pieces"},
		{"badlen.bin", append(append([]byte{}, raw[:8]...), 0xff, 0xff, 0, 0), 512, "llama2c: tokenizer %s: piece 0 has length 65535, outside [0, max_token_length=7]"},
	} {
		path := filepath.Join(dir, c.name)
		if err := os.WriteFile(path, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		want := strings.Replace(c.want, "%s", path, 1)
		if _, err := LoadTokenizer(path, c.vocab); err == nil || err.Error() != want {
			t.Errorf("LoadTokenizer(%s, %d) error:\n got %v\nwant %s", c.name, c.vocab, err, want)
		}
	}
}

func TestFindTokenizer(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "model.bin")
	want := "llama2c: no tokenizer found for " + model + " (vocab 512); tried " +
		filepath.Join(dir, "tokenizer.bin") + ", " + filepath.Join(dir, "tok512.bin")
	if _, err := FindTokenizer(model, 512); err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	for _, name := range []string{"tok512.bin", "tokenizer.bin"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		// tokenizer.bin wins once it exists.
		if got, err := FindTokenizer(model, 512); err != nil || got != filepath.Join(dir, name) {
			t.Fatalf("with %s: %q, %v", name, got, err)
		}
	}
}

// encodeRunC is run.c's encode transcribed literally (rescan every pair for
// each merge, concatenating strings), the reference Encode's heap-based merge
// must agree with.
func encodeRunC(t *Tokenizer, text string, bos, eos bool) []int32 {
	var toks []int32
	text, _, _ = strings.Cut(text, "\x00")
	if bos {
		toks = append(toks, 1)
	}
	if text != "" {
		toks = append(toks, t.lookup[" "])
	}
	buf := []byte{}
	for c := 0; c < len(text); c++ {
		if text[c]&0xC0 != 0x80 {
			buf = buf[:0]
		}
		buf = append(buf, text[c])
		if c+1 < len(text) && text[c+1]&0xC0 == 0x80 && len(buf) < 4 {
			continue
		}
		if id, ok := t.lookup[string(buf)]; ok {
			toks = append(toks, id)
		} else {
			for _, b := range buf {
				toks = append(toks, int32(b)+3)
			}
		}
		buf = buf[:0]
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
		toks = append(toks, 2)
	}
	return toks
}

func TestEncodeMatchesRunC(t *testing.T) {
	tok := loadTok512(t)
	raw, err := os.ReadFile(shareddata.Path(t, "text", "tinystories", "tinystories_val.txt"))
	if err != nil {
		t.Fatal(err)
	}
	texts := strings.SplitN(string(raw), "\n\n", 60)[:59] // whole paragraphs, newlines included
	// Characters that are pieces, that are not, and broken UTF-8.
	texts = append(texts, "“Hi,” she said – naïve café… ñ€™\u200a", "\xff\xfe a\x80b \xe2\x82", "  two  spaces ", "\n\n", " ")
	for _, s := range texts {
		want := encodeRunC(tok, s, true, true)
		if got := tok.Encode(s, true, true); !slices.Equal(got, want) {
			t.Fatalf("Encode(%q):\n got %v\nwant %v", s, got, want)
		}
	}
}

func FuzzEncode(f *testing.F) {
	path := shareddata.Path(f, "models", "stories260K", "tok512.bin")
	tok, err := LoadTokenizer(path, 512)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"Once upon a time", "", "a\x00b", "é…\xff", "the the the"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := tok.Encode(s, true, false), encodeRunC(tok, s, true, false); !slices.Equal(got, want) {
			t.Fatalf("Encode(%q) = %v, run.c gives %v", s, got, want)
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	path := shareddata.Path(b, "models", "stories260K", "tok512.bin")
	tok, err := LoadTokenizer(path, 512)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := os.ReadFile(shareddata.Path(b, "text", "tinystories", "tinystories_val.txt"))
	if err != nil {
		b.Fatal(err)
	}
	text := string(raw[:100000])
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tok.Encode(text, true, false)
	}
}

// TestLoadTokenizerHostileSizes: a tiny file claiming a 2^24-piece
// vocabulary or a 2 GiB piece fails as truncated having allocated about
// what it holds (before, the tables were sized by the claims: 1 GiB and
// 2 GiB).
func TestLoadTokenizerHostileSizes(t *testing.T) {
	dir := t.TempDir()
	le := binary.LittleEndian
	for _, c := range []struct {
		name  string
		data  []byte
		vocab int
		want  string
	}{
		{"bigvocab.bin", le.AppendUint32(nil, 7), 1 << 24, "truncated at piece 0 of 16777216"},
		{"bigpiece.bin", le.AppendUint32(le.AppendUint32(le.AppendUint32(nil, 1<<31-1), 0), 1<<31-1), 512,
			"truncated in the bytes of piece 0 of 512"},
	} {
		path := filepath.Join(dir, c.name)
		if err := os.WriteFile(path, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := LoadTokenizer(path, c.vocab)
		runtime.ReadMemStats(&after)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("LoadTokenizer(%s) = %v, want %q naming the file", c.name, err, c.want)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 16<<20 {
			t.Errorf("LoadTokenizer(%s) allocated %d MiB", c.name, n>>20)
		}
	}
}

// Vocabulary size 0 reads every piece of the file: 512 for tok512.bin,
// 32000 for Llama 2's tokenizer.bin, with the same encoding as the size
// given.
func TestLoadTokenizerWholeFile(t *testing.T) {
	want := loadTok512(t)
	got, err := LoadTokenizer(shareddata.Path(t, "models", "stories260K", "tok512.bin"), 0)
	if err != nil {
		t.Fatal(err)
	}
	text := "Once upon a time, there was a little girl named Lily."
	if got.Vocab() != 512 || !slices.Equal(got.Encode(text, true, false), want.Encode(text, true, false)) {
		t.Errorf("whole file: %d pieces", got.Vocab())
	}
	l2, err := LoadTokenizer(shareddata.Path(t, "tokenizers", "llama2_sentencepiece", "tokenizer.bin"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if l2.Vocab() != 32000 || !slices.Equal(l2.Encode(" Hello the", false, false), []int32{29871, 15043, 278}) {
		t.Errorf("Llama 2: %d pieces, %v", l2.Vocab(), l2.Encode(" Hello the", false, false))
	}
	short := filepath.Join(t.TempDir(), "short.bin")
	os.WriteFile(short, []byte{4, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 'a'}, 0o644)
	if _, err := LoadTokenizer(short, 0); err == nil || !strings.Contains(err.Error(), "1 pieces cannot hold the special and 256 byte pieces") {
		t.Errorf("short file: %v", err)
	}
}
