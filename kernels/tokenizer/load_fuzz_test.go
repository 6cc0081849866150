package tokenizer

import (
	"testing"
)

// FuzzParse feeds arbitrary bytes to the tokenizer.json reader: it must
// return an error or a tokenizer, never panic or hang, and a tokenizer it
// returns must encode and decode without panicking.
func FuzzParse(f *testing.F) {
	f.Add([]byte(tiny(`{"type": "BPE", "vocab": ` + tinyVocab + `, "merges": ["a b", "ab c"], "unk_token": "<unk>"}`)))
	f.Add([]byte(tiny(`{"type": "BPE", "vocab": ` + tinyVocab + `, "merges": [["a", "b"]], "byte_fallback": true}`)))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}, "decoder": {"type": "ByteLevel"}}`))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}}`))
	f.Add([]byte(`{"model": {"type": "Unigram"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := parseTokenizer(data)
		if err != nil {
			return
		}
		ids := tok.Encode("ab c\n\t héllo 12345 <unk>", true)
		_ = tok.Decode(ids, false)
	})
}
