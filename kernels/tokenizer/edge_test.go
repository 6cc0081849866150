package tokenizer

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Edge cases NOT from the reference file: the expected pieces are derived by
// reasoning from the pre-tokenizer regexes and normalizers (comments say
// how); the merges inside a piece are the vocabularies' own. They were also
// cross-checked against transformers.js (@lenml/tokenizers 3.7.2).
func TestEdgeCasesDerived(t *testing.T) {
	type want map[string][]string // tokenizer → tokens
	cases := []struct {
		name, in string
		want     want
	}{
		{"empty", "", want{"qwen3": nil, "llama3": nil, "deepseek_v3": nil, "mistral_v0.1": nil}},
		// \s+(?!\S) takes the run minus its last space, which then prefixes
		// the word. SentencePiece: every space is "▁" and "▁b" is a token.
		{"space run", "a  b", want{
			"qwen3": {"a", "Ġ", "Ġb"}, "llama3": {"a", "Ġ", "Ġb"}, "deepseek_v3": {"a", "Ġ", "Ġb"},
			"mistral_v0.1": {"▁a", "▁", "▁b"},
		}},
		// \s*[\r\n]+ ends at the last line break of the run; the two spaces
		// after it split as above. Mistral's vocabulary has no newline
		// token: byte fallback gives <0x0A>.
		{"newlines", "hi   \n\n  there", want{
			"qwen3": {"hi", "ĠĠĠĊĊ", "Ġ", "Ġthere"}, "llama3": {"hi", "ĠĠĠĊĊ", "Ġ", "Ġthere"},
			"deepseek_v3":  {"hi", "ĠĠĠĊĊ", "Ġ", "Ġthere"},
			"mistral_v0.1": {"▁hi", "▁▁▁", "<0x0A>", "<0x0A>", "▁", "▁there"},
		}},
		// A white-space run at the end of the text is one piece.
		{"trailing spaces", "end  ", want{
			"qwen3": {"end", "ĠĠ"}, "llama3": {"end", "ĠĠ"}, "deepseek_v3": {"end", "ĠĠ"}, "mistral_v0.1": {"▁end", "▁▁"},
		}},
		// Qwen: \p{N} one digit a piece; Llama 3: \p{N}{1,3}; DeepSeek's
		// first Split: \p{N}{1,3}.
		{"digits", "12345", want{
			"qwen3": {"1", "2", "3", "4", "5"}, "llama3": {"123", "45"}, "deepseek_v3": {"123", "45"},
			"mistral_v0.1": {"▁", "1", "2", "3", "4", "5"},
		}},
		// (?i:'t|'ll): "'t" and "'LL" are pieces; "'LL" is no token, so BPE
		// splits it.
		{"contractions", "don't I'LL", want{
			"qwen3": {"don", "'t", "ĠI", "'", "LL"}, "llama3": {"don", "'t", "ĠI", "'", "LL"},
			"deepseek_v3":  {"don", "'t", "ĠI", "'", "LL"},
			"mistral_v0.1": {"▁don", "'", "t", "▁I", "'", "LL"},
		}},
		// DeepSeek's second Split isolates CJK runs; the byte-level tokens
		// are the UTF-8 bytes of 你好 and 世界.
		{"cjk", "你好世界", want{
			"qwen3": {"ä½łå¥½", "ä¸ĸçķĮ"}, "deepseek_v3": {"ä½łå¥½", "ä¸ĸçķĮ"},
			"mistral_v0.1": {"▁", "你", "好", "世", "界"},
		}},
		// A four-byte emoji: " ?[^\s\p{L}\p{N}]+" takes the space with it;
		// Mistral has no piece for it and falls back to its UTF-8 bytes.
		{"emoji", "I 👋 you", want{
			"qwen3": {"I", "ĠðŁĳ", "ĭ", "Ġyou"}, "llama3": {"I", "ĠðŁĳ", "ĭ", "Ġyou"},
			"mistral_v0.1": {"▁I", "▁", "<0xF0>", "<0x9F>", "<0x91>", "<0x8B>", "▁you"},
		}},
		// Added tokens are cut out before the pre-tokenizer and never merged.
		{"added tokens", "<|im_start|>user\n<|im_end|>", want{
			"qwen3": {"<|im_start|>", "user", "Ċ", "<|im_end|>"},
		}},
		// Mistral's Prepend normalizer runs on each text segment between
		// added tokens, so the segment after </s> gets its own "▁" (which
		// Decode then shows: "a</s> b").
		{"added token mid text", "a</s>b", want{"mistral_v0.1": {"▁a", "</s>", "▁b"}}},
		// DeepSeek's <｜User｜> is "normalized": matched after normalization.
		{"normalized added token", "<｜User｜>hi", want{"deepseek_v3": {"<｜User｜>", "hi"}}},
	}
	for _, c := range cases {
		for name, toks := range c.want {
			tk := load(t, name)
			ids := tk.Encode(c.in, false)
			if got := tk.Tokens(ids); !cmp.Equal(got, toks, cmp.Comparer(func(a, b []string) bool {
				return len(a) == 0 && len(b) == 0 || cmp.Equal(a, b)
			})) {
				t.Errorf("%s %s %q: got %q, want %q", name, c.name, c.in, got, toks)
			}
			wantText := c.in
			if c.name == "added token mid text" {
				wantText = "a</s> b"
			}
			if got := tk.Decode(ids, false); got != wantText {
				t.Errorf("%s %s: Decode(Encode(%q)) = %q", name, c.name, c.in, got)
			}
		}
	}
}

func TestSpecialIDs(t *testing.T) {
	cases := []struct {
		name     string
		vocab    int
		bos, eos int32
		hasBOS   bool
	}{
		{"qwen3", 151669, -1, 151645, false},
		{"llama3", 128256, 128000, 128001, true},
		{"deepseek_v3", 128815, 0, 1, true},
		{"mistral_v0.1", 32000, 1, 2, true},
	}
	for _, c := range cases {
		tk := load(t, c.name)
		if got := tk.Vocab(); got != c.vocab {
			t.Errorf("%s Vocab() = %d, want %d", c.name, got, c.vocab)
		}
		if bos, ok := tk.BOS(); ok != c.hasBOS || ok && bos != c.bos {
			t.Errorf("%s BOS() = %d, %v; want %d, %v", c.name, bos, ok, c.bos, c.hasBOS)
		}
		if eos, ok := tk.EOS(); !ok || eos != c.eos {
			t.Errorf("%s EOS() = %d, %v; want %d", c.name, eos, ok, c.eos)
		}
		// EncodeDoc adds exactly the ids asked for, whatever the template does.
		plain := tk.Encode("Once upon a time", false)
		doc := tk.EncodeDoc("Once upon a time", true, true)
		wantDoc := append([]int32(nil), plain...)
		if c.hasBOS {
			wantDoc = append([]int32{c.bos}, wantDoc...)
		}
		wantDoc = append(wantDoc, c.eos)
		if !cmp.Equal(doc, wantDoc) {
			t.Errorf("%s EncodeDoc = %v, want %v", c.name, doc, wantDoc)
		}
		if got := tk.EncodeDoc("Once upon a time", false, false); !cmp.Equal(got, plain) {
			t.Errorf("%s EncodeDoc(no bos, no eos) = %v, want %v", c.name, got, plain)
		}
	}
	qwen := load(t, "qwen3")
	for tok, want := range map[string]int32{"<think>": 151667, "</think>": 151668, "Hello": 9707, "<|endoftext|>": 151643} {
		if id, ok := qwen.TokenID(tok); !ok || id != want {
			t.Errorf("TokenID(%q) = %d, %v; want %d", tok, id, ok, want)
		}
	}
	if _, ok := qwen.TokenID("no such token"); ok {
		t.Error("TokenID of a missing token reported ok")
	}
}

func TestDecodeDetails(t *testing.T) {
	qwen := load(t, "qwen3")
	// "ĠðŁĳ" is a space and the first three bytes of 👋: the incomplete
	// sequence is one maximal ill-formed subpart, so one U+FFFD.
	id, _ := qwen.TokenID("ĠðŁĳ")
	if got, want := qwen.Decode([]int32{id}, false), " \uFFFD"; got != want {
		t.Errorf("Decode(partial emoji) = %q, want %q", got, want)
	}
	// Special tokens are kept or skipped; out-of-range ids are dropped.
	ids := []int32{151644, 9707, 151645, -5, 1 << 30}
	if got, want := qwen.Decode(ids, false), "<|im_start|>Hello<|im_end|>"; got != want {
		t.Errorf("Decode = %q, want %q", got, want)
	}
	if got, want := qwen.Decode(ids, true), "Hello"; got != want {
		t.Errorf("Decode(skip) = %q, want %q", got, want)
	}
	// Llama 3's config asks for transformers' clean-up of " ," and " .".
	llama := load(t, "llama3")
	if got, want := llama.Decode(llama.Encode("Hi , there . I 'm", false), false), "Hi, there. I'm"; got != want {
		t.Errorf("llama3 clean-up: got %q, want %q", got, want)
	}
	// Mistral: byte-fallback tokens fuse back into UTF-8; an invalid run
	// gives one U+FFFD per byte; the Strip decoder removes one leading space.
	mistral := load(t, "mistral_v0.1")
	f0, _ := mistral.TokenID("<0xF0>")
	x9f, _ := mistral.TokenID("<0x9F>")
	hello, _ := mistral.TokenID("▁Hello")
	if got, want := mistral.Decode([]int32{hello, f0, x9f, hello}, false), "Hello\uFFFD\uFFFD Hello"; got != want {
		t.Errorf("mistral invalid bytes: got %q, want %q", got, want)
	}
	if got, want := mistral.Decode([]int32{1, hello}, false), "<s> Hello"; got != want {
		t.Errorf("mistral with BOS: got %q, want %q", got, want)
	}
}

// Encode may be called from several goroutines (the word cache is shared).
func TestConcurrentEncode(t *testing.T) {
	tk := load(t, "llama3")
	texts := []string{"Once upon a time, there was a little girl named Lily.", "She liked to play outside.", "12345 6789"}
	want := make([][]int32, len(texts))
	for i, s := range texts {
		want[i] = tk.Encode(s, false)
	}
	done := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			for n := 0; n < 200; n++ {
				i := (n + g) % len(texts)
				if got := tk.Encode(texts[i]+" x", false); !cmp.Equal(got[:len(want[i])], want[i]) {
					done <- fmt.Errorf("goroutine %d: Encode(%q) = %v", g, texts[i], got)
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
