package tokenizer_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"lrmc/internal/shareddata"
	"lrmc/kernels/gguf"
	"lrmc/kernels/ggufmodel"
	"lrmc/kernels/llama2c"
	"lrmc/kernels/textdata"
	"lrmc/kernels/tokenizer"
)

// convert writes the tokenizer.json and tokenizer_config.json of a llama2.c
// tokenizer and loads them back with Load.
func convert(t *testing.T, l *llama2c.Tokenizer) *tokenizer.Tokenizer {
	t.Helper()
	v := tokenizer.SentencePieceFromLlama2c(l)
	js, err := tokenizer.SentencePieceJSON(v)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := tokenizer.SentencePieceConfig(v, 512, "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tokenizer.json"), js, 0o644)
	os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), cfg, 0o644)
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// The tokenizer.json converted from a llama2.c vocabulary encodes every
// TinyStories document (with BOS, as the data ops do) to the ids llama2.c's
// own encoder gives, for stories260K's 512 pieces and Llama 2's 32000, and
// decodes them back to the text.
func TestSentencePieceJSONEncodesAsLlama2c(t *testing.T) {
	docs, err := textdata.ReadDocuments(shareddata.Path(t, "text", "tinystories", "tinystories_val.txt"), "text", "")
	if err != nil {
		t.Fatal(err)
	}
	// Two texts differ by design, as in transformers' Llama tokenizer: a
	// "<s>" written in the text is the BOS token, and a written "▁" is a
	// space; llama2.c encodes both as characters.
	extra := []string{"", " ", "  two  spaces", "tab\there\nnewline", "naïve café — “quotes” 😀 日本語"}
	for _, tc := range []struct {
		path  string
		vocab int
		docs  int
	}{
		{shareddata.Path(t, "models", "stories260K", "tok512.bin"), 512, len(docs)},
		{shareddata.Path(t, "tokenizers", "llama2_sentencepiece", "tokenizer.bin"), 32000, 400},
	} {
		l, err := llama2c.LoadTokenizer(tc.path, tc.vocab)
		if err != nil {
			t.Fatal(err)
		}
		h := convert(t, l)
		if h.Vocab() != tc.vocab {
			t.Errorf("%s: %d ids, want %d", tc.path, h.Vocab(), tc.vocab)
		}
		if bos, ok := h.BOS(); !ok || bos != 1 {
			t.Errorf("%s: BOS %d", tc.path, bos)
		}
		bad := 0
		for _, d := range append(slices.Clone(docs[:tc.docs]), extra...) {
			want := l.Encode(d, true, false)
			got := h.Encode(d, true)
			if !slices.Equal(got, want) {
				if bad++; bad <= 3 {
					t.Errorf("%s: %q:\n got %v\nwant %v", filepath.Base(tc.path), d, got, want)
				}
				continue
			}
			if back := h.Decode(got, true); back != d {
				t.Errorf("%s: %q decodes to %q", filepath.Base(tc.path), d, back)
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d texts encode differently", tc.path, bad, tc.docs+len(extra))
		}
	}
}

// stories260K.gguf's SentencePiece tokenizer, converted, encodes as the
// GGUF tokenizer itself does (llama.cpp's rules, FromGGUF); a byte-level
// GGUF tokenizer is refused with ErrNotSentencePiece.
func TestSentencePieceFromGGUF(t *testing.T) {
	_, meta, err := ggufmodel.ReadConfig(shareddata.Path(t, "models", "stories260K", "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := tokenizer.SentencePieceFromGGUF(meta.Tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Pieces) != 512 || v.BOS != 1 || v.EOS != 2 || v.UNK != 0 {
		t.Fatalf("vocabulary: %d pieces, bos %d eos %d unk %d", len(v.Pieces), v.BOS, v.EOS, v.UNK)
	}
	js, err := tokenizer.SentencePieceJSON(v)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tokenizer.json"), js, 0o644)
	cfg, _ := tokenizer.SentencePieceConfig(v, 512, "")
	os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), cfg, 0o644)
	h, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	g, err := tokenizer.FromGGUF(meta.Tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := textdata.ReadDocuments(shareddata.Path(t, "text", "tinystories", "tinystories_val.txt"), "text", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs[:500] {
		if got, want := h.Encode(d, true), g.Encode(d, true); !slices.Equal(got, want) {
			t.Fatalf("%q:\n got %v\nwant %v", d, got, want)
		}
	}

	byteLevel := []gguf.KV{{Key: "tokenizer.ggml.model", Value: "gpt2"}}
	if _, err := tokenizer.SentencePieceFromGGUF(byteLevel); !errors.Is(err, tokenizer.ErrNotSentencePiece) {
		t.Errorf("gpt2 tokenizer: %v", err)
	}
}

// A byte-level GGUF tokenizer (the GGUF metadata ToGGUF writes for Qwen3,
// and for Llama 3, whose pre-tokenizer ignores merges and whose template
// adds BOS) converted back to tokenizer.json encodes the
// shared reasoning data as the GGUF tokenizer does, special tokens written
// in the text and the post-processor's BOS included, and keeps the chat
// template, BOS and EOS.
func TestGGUFToJSONByteLevel(t *testing.T) {
	b, err := os.ReadFile(shareddata.Path(t, "text", "reasoning_tool_use", "reason_tool_use_demo_50.think.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	texts := strings.Split(string(b), "\n")[:12]
	texts = append(texts, "<|im_start|>user\nHi<|im_end|> 12345 ١٢٣ 日本語テキスト  spaces\t\ttabs")
	for _, name := range []string{"qwen3", "llama3"} {
		orig, err := tokenizer.Load(shareddata.Path(t, "tokenizers", name))
		if err != nil {
			t.Fatal(err)
		}
		kvs, err := tokenizer.ToGGUF(orig, "{{ messages }}")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		g, err := tokenizer.FromGGUF(kvs)
		if err != nil {
			t.Fatal(err)
		}
		js, cfg, err := tokenizer.GGUFToJSON(kvs, 4096)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "tokenizer.json"), js, 0o644)
		os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), cfg, 0o644)
		h, err := tokenizer.Load(dir)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, s := range texts {
			for _, special := range []bool{false, true} {
				if got, want := h.Encode(s, special), g.Encode(s, special); !slices.Equal(got, want) {
					t.Fatalf("%s: %.60q (special %v): %d ids, GGUF %d", name, s, special, len(got), len(want))
				}
			}
		}
		gb, gok := g.BOS()
		hb, hok := h.BOS()
		ge, _ := g.EOS()
		he, _ := h.EOS()
		if gb != hb || gok != hok || ge != he || h.Vocab() != g.Vocab() {
			t.Errorf("%s: bos %d/%d eos %d/%d vocab %d/%d", name, hb, gb, he, ge, h.Vocab(), g.Vocab())
		}
		if !strings.Contains(string(cfg), `"chat_template": "{{ messages }}"`) {
			t.Errorf("%s: tokenizer_config.json lacks the chat template", name)
		}
	}
}
