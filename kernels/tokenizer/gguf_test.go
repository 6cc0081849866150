package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"lrmc/internal/shareddata"
	"lrmc/kernels/gguf"
	"lrmc/kernels/llama2c"
)

// storiesKVs returns the tokenizer.* entries of stories260K.gguf.
func storiesKVs(t *testing.T) []gguf.KV {
	t.Helper()
	f, err := gguf.Open(shareddata.Path(t, "models", "stories260K", "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var kvs []gguf.KV
	for _, kv := range f.Metadata {
		if strings.HasPrefix(kv.Key, "tokenizer.") {
			kvs = append(kvs, kv)
		}
	}
	return kvs
}

// paragraphs returns the first n non-empty lines of the TinyStories text.
func paragraphs(t *testing.T, n int) []string {
	t.Helper()
	data, err := os.ReadFile(shareddata.Path(t, "text", "tinystories", "tinystories_val.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range strings.Lines(string(data)) {
		if line = strings.TrimRight(line, "\n"); line != "" {
			out = append(out, line)
			if len(out) == n {
				break
			}
		}
	}
	return out
}

// The SentencePiece tokenizer in stories260K.gguf encodes like run.c with
// the llama2.c tokenizer.bin it was converted from.
func TestFromGGUFStories(t *testing.T) {
	tk, err := FromGGUF(storiesKVs(t))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := llama2c.LoadTokenizer(shareddata.Path(t, "models", "stories260K", "tok512.bin"), 512)
	if err != nil {
		t.Fatal(err)
	}
	if tk.Vocab() != 512 {
		t.Fatalf("Vocab() = %d, want 512", tk.Vocab())
	}
	if bos, ok := tk.BOS(); !ok || bos != ref.BOS() {
		t.Errorf("BOS() = %d, %v; want %d", bos, ok, ref.BOS())
	}
	if eos, ok := tk.EOS(); !ok || eos != ref.EOS() {
		t.Errorf("EOS() = %d, %v; want %d", eos, ok, ref.EOS())
	}
	paras := paragraphs(t, 200)
	// Bytes outside the vocabulary exercise the byte fallback.
	paras = append(paras, "Émile says 你好 👋\ttab", "a", " x  y ")
	total := 0
	for _, p := range paras {
		want := ref.Encode(p, true, false)
		got := tk.Encode(p, true)
		total += len(got)
		if !cmp.Equal(got, want) {
			t.Fatalf("Encode(%q):\n got %v\nwant %v\ntokens %q", p, got, want, tk.Tokens(got))
		}
		if doc := tk.EncodeDoc(p, true, true); !cmp.Equal(doc, append(want, ref.EOS())) {
			t.Errorf("EncodeDoc(%q, bos, eos) = %v", p, doc)
		}
		if dec := tk.Decode(got, true); dec != p {
			t.Errorf("Decode(Encode(%q)) = %q", p, dec)
		}
	}
	t.Logf("%d paragraphs, %d tokens", len(paras), total)
	if id, ok := tk.TokenID("▁the"); !ok || tk.Tokens([]int32{id})[0] != "▁the" {
		t.Errorf("TokenID(▁the) = %d, %v", id, ok)
	}
	// <s> in the text is the control token, cut out whole.
	if got := tk.Encode("<s>", false); !cmp.Equal(got, []int32{1}) {
		t.Errorf("Encode(<s>) = %v, want [1]", got)
	}
}

// ToGGUF of a tokenizer read from GGUF gives one that tokenizes the same,
// although its scores are re-derived from the merge table.
func TestToGGUFStoriesRoundTrip(t *testing.T) {
	tk, err := FromGGUF(storiesKVs(t))
	if err != nil {
		t.Fatal(err)
	}
	kvs, err := ToGGUF(tk, "")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := FromGGUF(kvs)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paragraphs(t, 50) {
		if got, want := rt.Encode(p, true), tk.Encode(p, true); !cmp.Equal(got, want) {
			t.Fatalf("Encode(%q) after ToGGUF: got %v, want %v", p, got, want)
		}
	}
}

// ggufRoundTrip converts a tokenizer.json tokenizer to GGUF metadata, passes
// it through the GGUF container, and reads it back.
func ggufRoundTrip(t *testing.T, orig *Tokenizer, chatTemplate string) (*Tokenizer, []gguf.KV) {
	t.Helper()
	kvs, err := ToGGUF(orig, chatTemplate)
	if err != nil {
		t.Fatal(err)
	}
	b, err := gguf.Encode(kvs, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := FromGGUF(f.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	return rt, f.Metadata
}

func chatTemplate(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Dir(shareddata.Path(t, "tokenizers", name, "tokenizer.json"))
	data, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		ChatTemplate string `json:"chat_template"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return c.ChatTemplate
}

// TestToGGUFReference: tokenizer.json → GGUF → FromGGUF tokenizes the
// reference texts and TinyStories exactly as the original.
func TestToGGUFReference(t *testing.T) {
	ref := reference(t)
	paras := paragraphs(t, 200)
	want := map[string]struct {
		model, pre string
		vocab      int
	}{
		"qwen3":        {"gpt2", "qwen2", 151669},
		"llama3":       {"gpt2", "llama-bpe", 128256},
		"deepseek_v3":  {"gpt2", "deepseek-v3", 128815},
		"mistral_v0.1": {"llama", "", 32000}, // its tokenizer_config.json has no chat template
	}
	for _, name := range []string{"qwen3", "llama3", "deepseek_v3", "mistral_v0.1"} {
		t.Run(name, func(t *testing.T) {
			orig := load(t, name)
			tmpl := chatTemplate(t, name)
			rt, kvs := ggufRoundTrip(t, orig, tmpl)
			md, err := newGGUFMeta(kvs)
			if err != nil {
				t.Fatal(err)
			}
			w := want[name]
			if md[keyModel] != w.model || w.pre != "" && md[keyPre] != w.pre {
				t.Errorf("model %v, pre %v; want %s, %s", md[keyModel], md[keyPre], w.model, w.pre)
			}
			if got, ok := md[keyChatTemplate]; (tmpl != "") != ok || ok && got != tmpl {
				t.Errorf("chat template %v, want %d bytes", ok, len(tmpl))
			}
			if n := len(md[keyTokens].([]string)); n != w.vocab || rt.Vocab() != orig.Vocab() {
				t.Errorf("%d tokens, Vocab() %d, want %d = %d", n, rt.Vocab(), w.vocab, orig.Vocab())
			}
			for _, get := range []func(*Tokenizer) (int32, bool){(*Tokenizer).BOS, (*Tokenizer).EOS} {
				g, gok := get(rt)
				o, ook := get(orig)
				if g != o || gok != ook {
					t.Errorf("special id %d, %v; want %d, %v", g, gok, o, ook)
				}
			}
			for _, c := range ref[name].Cases {
				if got := rt.Encode(c.Text, false); !cmp.Equal(got, c.IDs) {
					t.Errorf("Encode(%q): got %v, want %v\ntokens %q", c.Text, got, c.IDs, rt.Tokens(got))
				}
				if got := rt.Encode(c.Text, true); !cmp.Equal(got, c.IDsWithSpecial) {
					t.Errorf("Encode(%q, special): got %v, want %v", c.Text, got, c.IDsWithSpecial)
				}
				if got := rt.Tokens(c.IDs); !cmp.Equal(got, c.Tokens) {
					t.Errorf("Tokens(%q): got %q, want %q", c.Text, got, c.Tokens)
				}
			}
			for _, c := range ref[name].Chat {
				if got := rt.Encode(c.Text, false); !cmp.Equal(got, c.IDs) {
					t.Errorf("Encode(chat %q): got %v, want %v", c.Text, got, c.IDs)
				}
			}
			for _, p := range paras {
				got, want := rt.Encode(p, true), orig.Encode(p, true)
				if !cmp.Equal(got, want) {
					t.Fatalf("Encode(%q):\n got %v\nwant %v", p, got, want)
				}
				if d := rt.Decode(got, true); d != p {
					t.Errorf("Decode(Encode(%q)) = %q", p, d)
				}
			}
		})
	}
}

func TestFromGGUFErrors(t *testing.T) {
	base := func() map[string]any {
		return map[string]any{
			keyModel:     "llama",
			keyTokens:    []string{"<unk>", "<s>", "</s>", "▁", "a", "▁a"},
			keyScores:    []float32{0, 0, 0, 0, 0, 0},
			keyTokenType: []int32{2, 3, 3, 1, 1, 1},
		}
	}
	bpeBase := func() map[string]any {
		toks := make([]string, 256)
		for b := range 256 {
			toks[b] = string(byteToRune[b])
		}
		return map[string]any{
			keyModel:  "gpt2",
			keyPre:    "qwen2",
			keyTokens: append(toks, "ab"),
			keyMerges: []string{"a b"},
		}
	}
	cases := []struct {
		name string
		kvs  map[string]any
		edit func(map[string]any)
		want string
	}{
		{"scores length", base(), func(m map[string]any) { m[keyScores] = []float32{0, 0, 0, 0, 0} },
			"tokenizer.ggml.scores: 5 values for 6 tokens"},
		{"types length", base(), func(m map[string]any) { m[keyTokenType] = []int32{1} },
			"tokenizer.ggml.token_type: 1 values for 6 tokens"},
		{"type value", base(), func(m map[string]any) { m[keyTokenType] = []int32{2, 3, 3, 1, 9, 1} },
			"tokenizer.ggml.token_type[4]: 9 is not a llama.cpp token type (0-6)"},
		{"scores type", base(), func(m map[string]any) { m[keyScores] = []float64{0, 0, 0, 0, 0, 0} },
			"tokenizer.ggml.scores: has Go type []float64, want []float32"},
		{"model", base(), func(m map[string]any) { m[keyModel] = "bert" },
			`tokenizer.ggml.model: "bert" is not supported (only llama and gpt2)`},
		{"no model", base(), func(m map[string]any) { delete(m, keyModel) },
			"tokenizer.ggml.model: missing"},
		{"no tokens", base(), func(m map[string]any) { delete(m, keyTokens) },
			"tokenizer.ggml.tokens: missing or empty"},
		{"bos range", base(), func(m map[string]any) { m[keyBOS] = uint32(6) },
			"tokenizer.ggml.bos_token_id: id 6 is outside the 6 tokens"},
		{"add_bos type", base(), func(m map[string]any) { m[keyAddBOS] = uint8(1) },
			"tokenizer.ggml.add_bos_token: has Go type uint8, want bool"},
		{"pre", bpeBase(), func(m map[string]any) { m[keyPre] = "falcon" },
			`tokenizer.ggml.pre: "falcon" is not supported (llama-bpe, llama3, qwen2, deepseek-v3, default, gpt-2, gpt2)`},
		{"merge token", bpeBase(), func(m map[string]any) { m[keyMerges] = []string{"a b", "a zz"} },
			`tokenizer.ggml.merges[1]: token "zz" is not in the vocabulary`},
		{"merge result", bpeBase(), func(m map[string]any) { m[keyMerges] = []string{"b c"} },
			`tokenizer.ggml.merges[0]: merged token "bc" is not in the vocabulary`},
		{"merge form", bpeBase(), func(m map[string]any) { m[keyMerges] = []string{"ab"} },
			`tokenizer.ggml.merges[0]: "ab" is not two tokens separated by a space`},
		{"no merges", bpeBase(), func(m map[string]any) { delete(m, keyMerges) },
			"tokenizer.ggml.merges: missing"},
		{"byte runes", bpeBase(), func(m map[string]any) { m[keyTokens] = []string{"a", "b", "ab"} },
			"tokenizer.ggml.tokens: byte-level vocabulary lacks some of the 256 byte runes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.edit(c.kvs)
			var kvs []gguf.KV
			for k, v := range c.kvs {
				kvs = append(kvs, gguf.KV{Key: k, Value: v})
			}
			_, err := FromGGUF(kvs)
			if err == nil || err.Error() != c.want {
				t.Errorf("got error %v, want %q", err, c.want)
			}
		})
	}
}

// A hand-worked SentencePiece case: merges go by the score of the merged
// token, not by its id, the leftmost pair wins a tie, and characters without
// a token fall back to bytes.
func TestFromGGUFSentencePieceScores(t *testing.T) {
	toks := []string{"<unk>", "<s>", "</s>", "▁", "a", "b", "c", "ab", "bc", "▁a", "▁abc"}
	scores := []float32{0, 0, 0, 0, 0, 0, 0, -2, -1, -3, -4}
	types := []int32{2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}
	for b := range 256 {
		toks = append(toks, fmt.Sprintf("<0x%02X>", b))
		scores = append(scores, 0)
		types = append(types, 6)
	}
	kvs := []gguf.KV{
		{Key: keyModel, Value: "llama"},
		{Key: keyTokens, Value: toks},
		{Key: keyScores, Value: scores},
		{Key: keyTokenType, Value: types},
		{Key: keyAddBOS, Value: true},
	}
	tk, err := FromGGUF(kvs)
	if err != nil {
		t.Fatal(err)
	}
	// "▁abc": "bc" (-1) merges before "ab" (-2) and "▁a" (-3); then
	// "▁"+"a" gives "▁a", and "▁a"+"bc" = "▁abc" (-4).
	// "▁abab": "ab" twice, then "▁"+"ab" is no token: ▁ ab ab.
	// "▁bcbc": the tie between the two "bc" pairs is no conflict; "▁"+"bc"
	// is no token. "▁é": é falls back to its two bytes.
	for text, want := range map[string][]int32{
		"abc":  {1, 10},
		"abab": {1, 3, 7, 7},
		"bcbc": {1, 3, 8, 8},
		"é":    {1, 3, 11 + 0xC3, 11 + 0xA9},
		"a c":  {1, 9, 3, 6},
	} {
		if got := tk.Encode(text, true); !cmp.Equal(got, want) {
			t.Errorf("Encode(%q) = %v %q, want %v", text, got, tk.Tokens(got), want)
		}
		if got := tk.Decode(tk.Encode(text, true), true); got != text {
			t.Errorf("Decode(Encode(%q)) = %q", text, got)
		}
	}
	// Without the space prefix the text is taken as it is.
	kvs = append(kvs, gguf.KV{Key: keyAddSpacePrefix, Value: false})
	tk, err = FromGGUF(kvs)
	if err != nil {
		t.Fatal(err)
	}
	if got := tk.Encode("abc", false); !cmp.Equal(got, []int32{4, 8}) {
		t.Errorf("Encode(abc) without space prefix = %v, want [4 8]", got)
	}
}

// spmJSON is a small SentencePiece-style tokenizer.json around merges.
func spmJSON(normalizer, merges string) string {
	vocab := map[string]int{"<unk>": 0, "<s>": 1, "</s>": 2, "▁": 3, "a": 4, "b": 5, "c": 6, "ab": 7, "bc": 8, "abc": 9}
	for b := range 256 {
		vocab[fmt.Sprintf("<0x%02X>", b)] = 10 + b
	}
	v, _ := json.Marshal(vocab)
	return `{"added_tokens": [{"id": 0, "content": "<unk>", "special": true}, {"id": 1, "content": "<s>", "special": true}, {"id": 2, "content": "</s>", "special": true}],
		"normalizer": ` + normalizer + `,
		"post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}],
			"special_tokens": {"<s>": {"ids": [1]}}},
		"decoder": null,
		"model": {"type": "BPE", "byte_fallback": true, "unk_token": "<unk>", "vocab": ` + string(v) + `, "merges": ` + merges + `}}`
}

const legacyNorm = `{"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}`

// The scores ToGGUF derives for a SentencePiece-style file, by hand.
func TestToGGUFSentencePiece(t *testing.T) {
	tk, err := Load(writeDir(t, spmJSON(legacyNorm, `["b c", "a b", "ab c", "a bc"]`), `{"bos_token": "<s>", "eos_token": "</s>"}`))
	if err != nil {
		t.Fatal(err)
	}
	kvs, err := ToGGUF(tk, "{{ messages }}")
	if err != nil {
		t.Fatal(err)
	}
	md, err := newGGUFMeta(kvs)
	if err != nil {
		t.Fatal(err)
	}
	// "bc" rank 0, "ab" rank 1, "abc" ranks 2 and 3 (consecutive).
	scores := md[keyScores].([]float32)
	if got := scores[:10]; !cmp.Equal(got, []float32{0, 0, 0, 0, 0, 0, 0, -1, 0, -2}) {
		t.Errorf("scores %v", got)
	}
	types := md[keyTokenType].([]int32)
	if got := types[:11]; !cmp.Equal(got, []int32{2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 6}) || types[265] != 6 {
		t.Errorf("token types %v … %d", got, types[265])
	}
	for k, want := range map[string]any{keyModel: "llama", keyBOS: uint32(1), keyEOS: uint32(2), keyUnknown: uint32(0),
		keyAddBOS: true, keyAddEOS: false, keyAddSpacePrefix: true, keyChatTemplate: "{{ messages }}"} {
		if md[k] != want {
			t.Errorf("%s = %v, want %v", k, md[k], want)
		}
	}
	if _, ok := md[keyMerges]; ok {
		t.Errorf("%s written for a SentencePiece model", keyMerges)
	}
	rt, err := FromGGUF(kvs)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"abc", "abcabc c", "ca b<s>bc", "é"} {
		if got, want := rt.Encode(text, true), tk.Encode(text, true); !cmp.Equal(got, want) {
			t.Errorf("Encode(%q) = %v, want %v", text, got, want)
		}
	}
}

func TestToGGUFErrors(t *testing.T) {
	cases := []struct{ name, json, want string }{
		{"interleaved merges", spmJSON(legacyNorm, `["a b", "ab c", "b c", "a bc"]`),
			`model.merges[3]: "a" "bc" makes "abc", as merge 1 "ab" "c" does, with other merges between: no score order reproduces that`},
		{"normalizer", spmJSON(`{"type": "Lowercase"}`, `[]`),
			`normalizer: only Prepend("▁") and Replace(" ", "▁") have a GGUF equivalent`},
		{"byte fallback", strings.Replace(spmJSON(legacyNorm, `[]`), `"byte_fallback": true`, `"byte_fallback": false`, 1),
			`model.byte_fallback: false: neither byte-level nor SentencePiece-style BPE`},
		{"template", strings.Replace(spmJSON(legacyNorm, `[]`), `{"Sequence": {"id": "A"}}]`, `{"Sequence": {"id": "A"}}, {"SpecialToken": {"id": "<s>"}}]`, 1),
			`post_processor: a template other than [BOS] sequence [EOS] has no GGUF equivalent`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tk, err := Load(writeDir(t, c.json, `{"bos_token": "<s>"}`))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ToGGUF(tk, ""); err == nil || err.Error() != c.want {
				t.Errorf("got error %v, want %q", err, c.want)
			}
		})
	}
	// A byte-level pre-tokenizer with a prefix space has no llama.cpp name.
	vocab := map[string]int{}
	for b := range 256 {
		vocab[string(byteToRune[b])] = b
	}
	v, _ := json.Marshal(vocab)
	tk, err := Load(writeDir(t, `{"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": true}, "decoder": {"type": "ByteLevel"},
		"model": {"type": "BPE", "vocab": `+string(v)+`, "merges": []}}`, ""))
	if err != nil {
		t.Fatal(err)
	}
	want := "pre_tokenizer: ByteLevel add_prefix_space has no GGUF equivalent"
	if _, err := ToGGUF(tk, ""); err == nil || err.Error() != want {
		t.Errorf("got error %v, want %q", err, want)
	}
}

// llama.cpp's detokenizer cleans up spaces for Llama 3 (llama-bpe) as
// transformers does, except " n't"; for Qwen2 not at all. " !" goes before
// " ' " is looked for, so the second quote keeps its space.
func TestFromGGUFDecodeCleanUp(t *testing.T) {
	text := "Yes , it 's done . Do n't ask ' why ' !"
	for name, want := range map[string]string{
		"llama3": "Yes, it's done. Do n't ask'why '!",
		"qwen3":  text,
	} {
		rt, _ := ggufRoundTrip(t, load(t, name), "")
		if got := rt.Decode(rt.Encode(text, false), false); got != want {
			t.Errorf("%s: Decode = %q, want %q", name, got, want)
		}
	}
}
