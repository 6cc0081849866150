package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lrmc/internal/shareddata"
)

// reference is the part of reference/tokenizers.json these tests use.
type reference struct {
	Tokenizers map[string]struct {
		Files string `json:"files"`
		Cases []struct {
			Text           string  `json:"text"`
			IDs            []int32 `json:"ids"`
			IDsWithSpecial []int32 `json:"ids_with_special"`
		} `json:"cases"`
		Chat []struct {
			Chat                string         `json:"chat"`
			AddGenerationPrompt bool           `json:"add_generation_prompt"`
			Kwargs              map[string]any `json:"kwargs"`
			Text                string         `json:"text"`
		} `json:"chat"`
	} `json:"tokenizers"`
	Chats map[string]json.RawMessage `json:"chats"`
}

func loadReference(t *testing.T) reference {
	t.Helper()
	b, err := os.ReadFile(shareddata.Path(t, "reference", "tokenizers.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r reference
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestTokenizeMatchesReference(t *testing.T) {
	ref := loadReference(t)
	for name, tk := range ref.Tokenizers {
		dir := shareddata.Path(t, "tokenizers", filepath.Base(tk.Files))
		for i, c := range tk.Cases {
			if i >= 3 { // the tokenizer package checks every case; here the command
				break
			}
			for _, special := range []bool{false, true} {
				args := []string{"tokenize", "--tokenizer", dir, c.Text}
				want := c.IDs
				if special {
					args = []string{"tokenize", "--tokenizer", dir, "--special", c.Text}
					want = c.IDsWithSpecial
				}
				code, out, errs := lrmc(t, args...)
				wantJSON, _ := json.Marshal(want)
				if code != 0 || strings.TrimSpace(out) != string(wantJSON) {
					t.Errorf("%s %q special=%v: exit %d, %s%s, want %s", name, c.Text, special, code, out, errs, wantJSON)
				}
			}
		}
	}
}

func TestChatMatchesReference(t *testing.T) {
	ref := loadReference(t)
	tk := ref.Tokenizers["qwen3"]
	dir := shareddata.Path(t, "tokenizers", "qwen3")
	if len(tk.Chat) == 0 {
		t.Fatal("no qwen3 chat renderings in the reference")
	}
	for i, c := range tk.Chat {
		msgs := filepath.Join(t.TempDir(), "m.json")
		if err := os.WriteFile(msgs, ref.Chats[c.Chat], 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"chat", "--tokenizer", dir, "--messages", msgs}
		if c.AddGenerationPrompt {
			args = append(args, "--add-generation-prompt")
		}
		for k, v := range c.Kwargs {
			args = append(args, "--var", fmt.Sprintf("%s=%v", k, v))
		}
		code, out, errs := lrmc(t, args...)
		if code != 0 || out != c.Text {
			t.Errorf("rendering %d (%v): exit %d %s\n got %q\nwant %q", i, c.Kwargs, code, errs, out, c.Text)
		}
	}
}

func TestInspect(t *testing.T) {
	code, out, errs := lrmc(t, "inspect", shareddata.Path(t, "models", "stories260K", "stories260K.gguf"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"format        gguf", "blocks        5", "heads         8 (kv 4, head dim 8)", "parameters    292,800", "tensors       48 (f32 48)", "blk.0.ffn_gate.weight"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = lrmc(t, "inspect", shareddata.Path(t, "models", "stories260K", "stories260K.bin"))
	if code != 0 || !strings.Contains(out, "parameters    260,032") {
		t.Errorf("inspect of the .bin: exit %d\n%s", code, out)
	}
	code, _, errs = lrmc(t, "inspect", filepath.Join(t.TempDir(), "nope.gguf"))
	if code != 1 || !strings.Contains(errs, "nope.gguf") {
		t.Errorf("inspect of a missing file: exit %d, %s", code, errs)
	}
}
