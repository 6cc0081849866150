package tokenizer

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestAgainstOracle compares with ids computed by transformers.js
// (testdata/oracle.js writes them) when TOKENIZER_ORACLE names that output:
// {"name": [{text, ids, ids_with_special, decoded}]}. A development aid,
// skipped otherwise; about 2,900 random and TinyStories texts agreed for all
// four tokenizers.
func TestAgainstOracle(t *testing.T) {
	path := os.Getenv("TOKENIZER_ORACLE")
	if path == "" {
		t.Skip("TOKENIZER_ORACLE not set")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var oracle map[string][]refCase
	if err := json.Unmarshal(data, &oracle); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		tk := load(t, name)
		for _, c := range oracle[name] {
			if got := tk.Encode(c.Text, false); !cmp.Equal(got, c.IDs, cmp.Comparer(func(a, b []int32) bool { return len(a) == 0 && len(b) == 0 || cmp.Equal(a, b) })) {
				t.Errorf("%s Encode(%q): got %v %q, want %v %q", name, c.Text, got, tk.Tokens(got), c.IDs, tk.Tokens(c.IDs))
			}
			if got := tk.Encode(c.Text, true); len(got)+len(c.IDsWithSpecial) > 0 && !cmp.Equal(got, c.IDsWithSpecial) {
				t.Errorf("%s Encode(%q, special): got %v, want %v", name, c.Text, got, c.IDsWithSpecial)
			}
			if got := tk.Decode(c.IDs, false); got != c.Decoded {
				t.Errorf("%s Decode(%q): got %q, want %q", name, c.Text, got, c.Decoded)
			}
		}
	}
}
