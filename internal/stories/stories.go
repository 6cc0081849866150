// Package stories gives tests the real stories260K model from
// ../shared/data and its tokenizer's ids of the TinyStories validation
// text, so each test cuts its own batches from one loader instead of
// repeating it. Like shareddata, it skips when the data is absent (and
// fails under CI=true).
package stories

import (
	"os"
	"testing"

	"lrmc/internal/shareddata"
	"lrmc/kernels/llama"
	"lrmc/kernels/llama2c"
)

// Load returns stories260K and the ids (with a leading BOS) of the first
// chars bytes of tinystories_val.txt, or of all of it when chars is larger.
// It fails the test when the text gives fewer than want ids.
func Load(tb testing.TB, chars, want int) (*llama.Model, []int32) {
	tb.Helper()
	m, err := llama2c.Load(shareddata.Path(tb, "models", "stories260K", "stories260K.bin"))
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := llama2c.LoadTokenizer(shareddata.Path(tb, "models", "stories260K", "tok512.bin"), m.Config.Vocab)
	if err != nil {
		tb.Fatal(err)
	}
	text, err := os.ReadFile(shareddata.Path(tb, "text", "tinystories", "tinystories_val.txt"))
	if err != nil {
		tb.Fatal(err)
	}
	ids := tok.Encode(string(text[:min(len(text), chars)]), true, false)
	if len(ids) < want {
		tb.Fatalf("stories: %d characters of tinystories_val.txt give only %d tokens, want %d", chars, len(ids), want)
	}
	return m, ids
}
