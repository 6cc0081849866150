package llama2c

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"lrmc/internal/shareddata"
	"lrmc/kernels/gguf"
)

// The conversion reproduces the tokenizer metadata of stories260K.gguf,
// which llama.cpp loads and tokenizes with exactly as run.c does.
func TestTokenizerGGUFMatchesStoriesGGUF(t *testing.T) {
	tok, err := LoadTokenizer(shareddata.Path(t, "models", "stories260K", "tok512.bin"), 512)
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(shareddata.Path(t, "models", "stories260K", "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kvs, err := tok.GGUF()
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range kvs {
		want, ok := f.Value(kv.Key)
		if !ok {
			t.Errorf("%s: not in stories260K.gguf", kv.Key)
			continue
		}
		if diff := cmp.Diff(want, kv.Value); diff != "" {
			t.Errorf("%s differs from stories260K.gguf (-file +converted):\n%s", kv.Key, diff)
		}
	}
}
