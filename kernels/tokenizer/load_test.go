package tokenizer

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"lrmc/internal/shareddata"
)

// writeDir writes a tokenizer.json (and a tokenizer_config.json when config
// is not empty) into a fresh directory.
func writeDir(t *testing.T, tokenizerJSON, config string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte(tokenizerJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	if config != "" {
		if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(config), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// tiny builds a SentencePiece-like tokenizer.json around a model object.
func tiny(model string) string {
	return `{"added_tokens": [{"id": 0, "content": "<unk>", "special": true}],
		"normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null,
		"model": ` + model + `}`
}

const tinyVocab = `{"<unk>": 0, "a": 1, "b": 2, "c": 3, "ab": 4, "abc": 5}`

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name, json, config, want string
	}{
		{"merge token missing",
			tiny(`{"type": "BPE", "vocab": ` + tinyVocab + `, "merges": ["a b", "b zz"]}`), "",
			`tokenizer.json: model.merges[1]: token "zz" is not in the vocabulary`},
		{"merge result missing",
			tiny(`{"type": "BPE", "vocab": ` + tinyVocab + `, "merges": [["a", "b"], ["b", "c"]]}`), "",
			`tokenizer.json: model.merges[1]: merged token "bc" is not in the vocabulary`},
		{"merge malformed",
			tiny(`{"type": "BPE", "vocab": ` + tinyVocab + `, "merges": ["a b", 5]}`), "",
			`tokenizer.json: model.merges[1]: 5 is neither "a b" nor ["a", "b"]`},
		{"merge three parts",
			tiny(`{"type": "BPE", "vocab": ` + tinyVocab + `, "merges": ["a b c"]}`), "",
			`tokenizer.json: model.merges[0]: "a b c" is not two tokens separated by one space`},
		{"vocab type",
			tiny(`{"type": "BPE", "vocab": {"a": "x"}, "merges": []}`), "",
			`tokenizer.json: model.vocab: string value where int32 was expected`},
		{"model type",
			tiny(`{"type": "Unigram", "vocab": []}`), "",
			`tokenizer.json: model.type: "Unigram" is not supported (only BPE)`},
		{"added token id",
			`{"added_tokens": [{"id": 0, "content": "<unk>"}, {"content": "<x>"}], "model": {"type": "BPE", "vocab": ` + tinyVocab + `}}`, "",
			`tokenizer.json: added_tokens[1].id: missing`},
		{"pre-tokenizer",
			strings.Replace(tiny(`{"type": "BPE", "vocab": `+tinyVocab+`}`), `"pre_tokenizer": null`,
				`"pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Whitespace"}]}`, 1), "",
			`tokenizer.json: pre_tokenizer.pretokenizers[0].type: pre-tokenizer "Whitespace" is not supported`},
		{"syntax",
			`{"model": {"type": "BPE", "vocab": {"a": 1,, }}}`, "",
			`tokenizer.json: model.vocab: invalid character ',' looking for beginning of object key string`},
		// Ids near 2^31 sized the id → token table (a makeslice panic).
		{"vocab id huge",
			tiny(`{"type": "BPE", "vocab": {"<unk>": 0, "a": 2147483600}}`), "",
			`tokenizer.json: model.vocab["a"]: id 2147483600 is above the limit of 16777215`},
		{"added token id huge",
			`{"added_tokens": [{"id": 2147483646, "content": "<x>"}], "model": {"type": "BPE", "vocab": ` + tinyVocab + `}}`, "",
			`tokenizer.json: added_tokens[0].id: id 2147483646 is above the limit of 16777215`},
		{"config token",
			tiny(`{"type": "BPE", "vocab": ` + tinyVocab + `}`), `{"bos_token": "<x>"}`,
			`tokenizer_config.json: bos_token: "<x>" is not a token of tokenizer.json`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeDir(t, c.json, c.config)
			_, err := Load(dir)
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			want := filepath.Join(dir, c.want)
			if err.Error() != want {
				t.Errorf("got  %q\nwant %q", err, want)
			}
		})
	}
}

// A real tokenizer.json cut short names the entry it was cut in.
func TestLoadTruncated(t *testing.T) {
	data, err := os.ReadFile(shareddata.Path(t, "tokenizers", "mistral_v0.1", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Cut inside the merges list, which comes last.
	cut := strings.LastIndex(string(data), `"▁ t"`)
	cut = cut + (len(data)-cut)/2
	dir := writeDir(t, string(data[:cut]), "")
	_, err = Load(dir)
	if err == nil {
		t.Fatal("truncated file loaded")
	}
	prefix := filepath.Join(dir, "tokenizer.json") + ": model.merges["
	if !strings.HasPrefix(err.Error(), prefix) || !strings.HasSuffix(err.Error(), "]: unexpected end of JSON input") {
		t.Errorf("got %q, want %q…]: unexpected end of JSON input", err, prefix)
	}
}

func TestUnknownAndIgnoreMerges(t *testing.T) {
	for _, c := range []struct {
		name, model, in string
		want            []int32
	}{
		// "?" is in no vocabulary entry: one <unk> per rune, or one per run
		// with fuse_unk.
		{"unk", `{"type": "BPE", "unk_token": "<unk>", "vocab": ` + tinyVocab + `, "merges": ["a b"]}`, "a??b", []int32{1, 0, 0, 2}},
		{"fuse unk", `{"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "vocab": ` + tinyVocab + `, "merges": ["a b"]}`, "a??b", []int32{1, 0, 2}},
		// Merges give "ab" + "c"; with ignore_merges the whole word "abc"
		// is a vocabulary entry and wins.
		{"merges", `{"type": "BPE", "vocab": ` + tinyVocab + `, "merges": ["a b"]}`, "abc", []int32{4, 3}},
		{"ignore merges", `{"type": "BPE", "ignore_merges": true, "vocab": ` + tinyVocab + `, "merges": ["a b"]}`, "abc", []int32{5}},
	} {
		tk, err := Load(writeDir(t, tiny(c.model), ""))
		if err != nil {
			t.Fatal(err)
		}
		if got := tk.Encode(c.in, false); !cmp.Equal(got, c.want) {
			t.Errorf("%s: Encode(%q) = %v, want %v", c.name, c.in, got, c.want)
		}
	}
}

// The heap merge (long words) and the linear one (short words) must agree.
func TestMergeHeapMatchesLinear(t *testing.T) {
	tk := load(t, "llama3")
	m := tk.model
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("aeinst rlo\nth")
	for n := 0; n < 300; n++ {
		word := make([]byte, 1+rng.IntN(200))
		for i := range word {
			word[i] = alphabet[rng.IntN(len(alphabet))]
		}
		syms := func() []int32 {
			s := make([]int32, len(word))
			for i, b := range word {
				s[i] = m.byteIDs[b]
			}
			return s
		}
		lin, heap := m.mergeLinear(syms()), m.mergeHeap(syms())
		if !cmp.Equal(lin, heap) {
			t.Fatalf("%q: linear %v, heap %v", word, lin, heap)
		}
	}
}

// Splitting SentencePiece text before each "▁" run (metaSplit) must give
// what merging the whole text as one word gives.
func TestMetaSplitMatchesWholeWord(t *testing.T) {
	tk := load(t, "mistral_v0.1")
	if !tk.model.metaSplit {
		t.Fatal("the Mistral vocabulary should allow splitting at ▁")
	}
	data, err := os.ReadFile(shareddata.Path(t, "text", "tinystories", "tinystories_val.txt"))
	if err != nil {
		t.Fatal(err)
	}
	text := tk.normalizer.normalize(string(data[:20000]) + "  x\n\n ▁▁y 👋 ")
	whole := tk.model.appendWord(nil, text)
	split := tk.model.appendText(nil, text)
	if !cmp.Equal(whole, split) {
		t.Errorf("split encoding differs from the whole-word one (%d vs %d ids)", len(split), len(whole))
	}
}

// A GPT-2 style file: ByteLevel with its default use_regex and a prefix space.
func TestByteLevelGPT2Style(t *testing.T) {
	vocab := map[string]int{}
	for b := range 256 {
		vocab[string(byteToRune[b])] = b
	}
	vocab["Ġt"] = 256
	vocab["Ġth"] = 257
	vocabJSON, err := json.Marshal(vocab)
	if err != nil {
		t.Fatal(err)
	}
	dir := writeDir(t, `{"added_tokens": [],
		"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": true},
		"decoder": {"type": "ByteLevel"},
		"model": {"type": "BPE", "vocab": `+string(vocabJSON)+`, "merges": ["Ġ t", "Ġt h"]}}`, "")
	tk, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	// " the" (prefix space added) → Ġ t h e → Ġt h e → Ġth e; "  x" keeps
	// its own leading space and splits by the GPT-2 regex into " " and " x".
	ids := tk.Encode("the  x", false)
	sp := int32(vocab["Ġ"])
	want := []int32{257, 'e', sp, sp, 'x'}
	if !cmp.Equal(ids, want) {
		t.Errorf("Encode = %v %q, want %v", ids, tk.Tokens(ids), want)
	}
	if got := tk.Decode(ids, false); got != " the  x" {
		t.Errorf("Decode = %q", got)
	}
	// A vocabulary without the byte runes cannot serve ByteLevel.
	_, err = Load(writeDir(t, `{"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": `+tinyVocab+`}}`, ""))
	if err == nil || !strings.HasSuffix(err.Error(), "tokenizer.json: model.vocab: ByteLevel pre-tokenizer but the vocabulary lacks some of the 256 byte runes") {
		t.Errorf("missing byte runes: got %v", err)
	}
}

// metaspaceMistral rewrites Mistral's legacy tokenizer.json (Prepend and
// Replace normalizers) into the Metaspace form newer files use.
func metaspaceMistral(t *testing.T, scheme string, split bool) *Tokenizer {
	t.Helper()
	data, err := os.ReadFile(shareddata.Path(t, "tokenizers", "mistral_v0.1", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f map[string]json.RawMessage
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	f["normalizer"] = json.RawMessage(`null`)
	f["pre_tokenizer"] = json.RawMessage(fmt.Sprintf(`{"type": "Metaspace", "replacement": "▁", "prepend_scheme": %q, "split": %v}`, scheme, split))
	f["decoder"] = json.RawMessage(fmt.Sprintf(`{"type": "Sequence", "decoders": [
		{"type": "Metaspace", "replacement": "▁", "prepend_scheme": %q, "split": %v},
		{"type": "ByteFallback"}, {"type": "Fuse"}]}`, scheme, split))
	out, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := Load(writeDir(t, string(out), ""))
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// The Metaspace form must reproduce the legacy form's reference ids and
// texts: for text without added tokens that does not start with a space,
// "▁" + spaces-as-"▁" is the same. (Metaspace prepends nothing to text
// that already starts with "▁"; the legacy Prepend normalizer does.)
func TestMetaspaceMatchesLegacy(t *testing.T) {
	ref := reference(t)["mistral_v0.1"].Cases
	for _, scheme := range []string{"always", "first"} {
		tk := metaspaceMistral(t, scheme, false)
		for _, c := range ref {
			if strings.HasPrefix(c.Text, " ") {
				continue
			}
			if got := tk.Encode(c.Text, true); !cmp.Equal(got, c.IDsWithSpecial) {
				t.Errorf("%s: Encode(%q) = %v, want %v", scheme, c.Text, got, c.IDsWithSpecial)
			}
			if got := tk.Decode(c.IDs, false); got != c.Decoded {
				t.Errorf("%s: Decode(%q) = %q", scheme, c.Text, got)
			}
		}
	}
	// Derived from tokenizers' rule (prepend only where the piece starts the
	// original text): with "first" the text after </s> gets no "▁"; with
	// "always" it does. split=true cuts before each "▁" (MergedWithNext).
	for _, c := range []struct {
		scheme string
		split  bool
		in     string
		want   []string
	}{
		{"first", false, "a</s>b", []string{"▁a", "</s>", "b"}},
		{"always", false, "a</s>b", []string{"▁a", "</s>", "▁b"}},
		{"first", true, "Hello world", []string{"▁Hello", "▁world"}},
		{"first", false, " x", []string{"▁x"}},
	} {
		tk := metaspaceMistral(t, c.scheme, c.split)
		if got := tk.Tokens(tk.Encode(c.in, false)); !cmp.Equal(got, c.want) {
			t.Errorf("%s split=%v: Encode(%q) = %q, want %q", c.scheme, c.split, c.in, got, c.want)
		}
	}
}

// Added-token flags, derived from tokenizers' AddedVocabulary rules: lstrip
// and rstrip swallow the white space beside the token; a single_word token
// next to a word character (letter, digit, _) is not matched.
func TestAddedTokenFlags(t *testing.T) {
	const vocab = `{"<unk>": 0, "a": 1, "b": 2, "x": 3, " ": 4, "<m>": 5, "ab": 6}`
	for _, c := range []struct {
		name, flags, content, in string
		want                     []int32
	}{
		{"plain", ``, "<m>", "a <m> b", []int32{1, 4, 5, 4, 2}},
		{"lstrip", `"lstrip": true,`, "<m>", "a <m> b", []int32{1, 5, 4, 2}},
		{"rstrip", `"rstrip": true,`, "<m>", "a <m> b", []int32{1, 4, 5, 2}},
		{"single word", `"single_word": true,`, "ab", "xab ab", []int32{3, 1, 2, 4, 6}},
		{"single word start", `"single_word": true,`, "ab", "ab_", []int32{1, 2, 0}},
	} {
		id := map[string]int{"<m>": 5, "ab": 6}[c.content]
		doc := fmt.Sprintf(`{"added_tokens": [{"id": %d, "content": %q, %s "special": false}],
			"model": {"type": "BPE", "unk_token": "<unk>", "vocab": %s, "merges": []}}`, id, c.content, c.flags, vocab)
		tk, err := Load(writeDir(t, doc, ""))
		if err != nil {
			t.Fatal(err)
		}
		if got := tk.Encode(c.in, false); !cmp.Equal(got, c.want) {
			t.Errorf("%s: Encode(%q) = %v, want %v", c.name, c.in, got, c.want)
		}
	}
}
