package ops_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"lrmc/cache"
	"lrmc/compiler/ir"
	"lrmc/executor/ops"
)

// A synthetic model's vocabulary comes from its tokenizer, loaded once:
// later plans read it from a memo keyed by the tokenizer's digest, and a
// changed tokenizer is loaded again.
func TestSyntheticVocabularyIsMemoizedByContent(t *testing.T) {
	store, err := cache.Open(t.TempDir(), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	tok := t.TempDir()
	writeTinyHF(t, tok, 1)
	m := ir.Model{Tokenizer: tok, Synthetic: &ir.Synthetic{Arch: "llama", Layers: 1, Dim: 32, Heads: 4, KVHeads: 2, FFN: 48, SeqLen: 64}}
	vocab := func() int {
		t.Helper()
		info, err := (&ops.Env{Files: store}).Model(m)
		if err != nil {
			t.Fatal(err)
		}
		return info.Vocab
	}
	if got := vocab(); got != tinyVocab {
		t.Fatalf("vocab %d, want %d", got, tinyVocab)
	}
	sum, err := (&ops.Env{Files: store}).FileDigest(tok)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := store.Derived("tokenizer.vocab/1", sum)
	if !ok || int(binary.LittleEndian.Uint64(b)) != tinyVocab {
		t.Fatalf("memo %v %v, want %d", b, ok, tinyVocab)
	}
	// The memo is what a later plan reads (a planted value shows it).
	store.SetDerived("tokenizer.vocab/1", sum, binary.LittleEndian.AppendUint64(nil, 40))
	if got := vocab(); got != 40 {
		t.Errorf("vocab %d with a memo of 40: the tokenizer was loaded again", got)
	}
	// Other bytes, another digest: the tokenizer is loaded.
	if err := os.WriteFile(filepath.Join(tok, "tokenizer_config.json"), []byte(`{"model_max_length": 64}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := vocab(); got != tinyVocab {
		t.Errorf("vocab %d after the tokenizer changed, want %d", got, tinyVocab)
	}
}
