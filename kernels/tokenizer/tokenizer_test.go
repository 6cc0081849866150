package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"lrmc/internal/shareddata"
)

var names = []string{"qwen3", "llama3", "deepseek_v3", "mistral_v0.1"}

var (
	loadMu sync.Mutex
	loaded = map[string]*Tokenizer{}
)

// load returns the shared tokenizer of that name, loading it once per test
// binary (the files take a few hundred milliseconds each to parse).
func load(tb testing.TB, name string) *Tokenizer {
	tb.Helper()
	dir := filepath.Dir(shareddata.Path(tb, "tokenizers", name, "tokenizer.json"))
	loadMu.Lock()
	defer loadMu.Unlock()
	if t, ok := loaded[name]; ok {
		return t
	}
	t, err := Load(dir)
	if err != nil {
		tb.Fatal(err)
	}
	loaded[name] = t
	return t
}

type refCase struct {
	Text           string   `json:"text"`
	IDs            []int32  `json:"ids"`
	IDsWithSpecial []int32  `json:"ids_with_special"`
	Tokens         []string `json:"tokens"`
	Decoded        string   `json:"decoded"`
}

type refChat struct {
	Text string  `json:"text"`
	IDs  []int32 `json:"ids"`
}

func reference(t *testing.T) map[string]struct {
	Cases []refCase `json:"cases"`
	Chat  []refChat `json:"chat"`
} {
	data, err := os.ReadFile(shareddata.Path(t, "reference", "tokenizers.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Tokenizers map[string]struct {
			Cases []refCase `json:"cases"`
			Chat  []refChat `json:"chat"`
		} `json:"tokenizers"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	return ref.Tokenizers
}

// TestReference checks every case of reference/tokenizers.json exactly.
func TestReference(t *testing.T) {
	ref := reference(t)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			tk := load(t, name)
			cases := ref[name].Cases
			if len(cases) == 0 {
				t.Fatalf("no reference cases for %s", name)
			}
			for _, c := range cases {
				ids := tk.Encode(c.Text, false)
				if !cmp.Equal(ids, c.IDs) {
					t.Errorf("Encode(%q): got %v, want %v\ntokens %q", c.Text, ids, c.IDs, tk.Tokens(ids))
				}
				if got := tk.Encode(c.Text, true); !cmp.Equal(got, c.IDsWithSpecial) {
					t.Errorf("Encode(%q, special): got %v, want %v", c.Text, got, c.IDsWithSpecial)
				}
				if got := tk.Tokens(c.IDs); !cmp.Equal(got, c.Tokens) {
					t.Errorf("Tokens(%q): got %q, want %q", c.Text, got, c.Tokens)
				}
				if got := tk.Decode(c.IDs, false); got != c.Decoded {
					t.Errorf("Decode(%q): got %q, want %q", c.Text, got, c.Decoded)
				}
				if got := tk.Decode(c.IDsWithSpecial, true); got != c.Decoded {
					t.Errorf("Decode(%q with special, skip): got %q, want %q", c.Text, got, c.Decoded)
				}
			}
			// The chat renderings exercise added tokens inside text.
			for _, c := range ref[name].Chat {
				if got := tk.Encode(c.Text, false); !cmp.Equal(got, c.IDs) {
					t.Errorf("Encode(chat %q): got %v, want %v", c.Text, got, c.IDs)
				}
				if got := tk.Decode(c.IDs, false); got != c.Text {
					t.Errorf("Decode(chat): got %q, want %q", got, c.Text)
				}
			}
		})
	}
}
