package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"lrmc/internal/shareddata"
	"lrmc/kernels/gguf"
	"lrmc/kernels/hf"
	"lrmc/kernels/llama2c"
	"lrmc/kernels/tokenizer"
)

// inspect lists a GGUF file's key-values, one a line, arrays shortened to
// their length, type and first elements.
func TestInspectGGUFMetadata(t *testing.T) {
	path := shareddata.Path(t, "models", "stories260K", "stories260K.gguf")
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	n := len(f.Metadata)
	f.Close()
	code, out, errs := lrmc(t, "inspect", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, re := range []string{
		fmt.Sprintf(`(?m)^  metadata      %d key-values$`, n),
		`(?m)^    general\.name +"stories260K"$`,
		`(?m)^    llama\.block_count +5$`,
		`(?m)^    tokenizer\.ggml\.tokens +\[512 × string\] "<unk>" "<s>" "</s>" "<0x00>" …$`,
		`(?m)^    tokenizer\.ggml\.add_bos_token +true$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("no line matching %s in:\n%s", re, out)
		}
	}
}

// inspect reads tokenizers: a tokenizer directory or tokenizer.json (vocab
// size with added tokens, BOS/EOS, specials, chat template) and llama2.c
// tokenizer files.
func TestInspectTokenizers(t *testing.T) {
	qwen := shareddata.Path(t, "tokenizers", "qwen3")
	ref, err := tokenizer.Load(qwen)
	if err != nil {
		t.Fatal(err)
	}
	eos, _ := ref.EOS()
	for _, p := range []string{qwen, filepath.Join(qwen, "tokenizer.json")} {
		code, out, errs := lrmc(t, "inspect", p)
		for _, want := range []string{
			"  format        Hugging Face tokenizer.json\n",
			fmt.Sprintf("  vocab         %s\n", commas(int64(ref.Vocab()))),
			"  bos           none\n",
			fmt.Sprintf("  eos           \"<|im_end|>\" (%d)\n", eos),
			fmt.Sprintf("  special       %d: \"<|endoftext|>\"", len(ref.Specials())),
			"reads enable_thinking\n",
		} {
			if code != 0 || !strings.Contains(out, want) {
				t.Errorf("inspect %s: exit %d %s: lacks %q:\n%s", p, code, errs, want, out)
			}
		}
	}
	code, out, errs := lrmc(t, "inspect", shareddata.Path(t, "tokenizers", "llama2_sentencepiece", "tokenizer.bin"))
	if want := "  vocab         32,000\n  bos           \"\\n<s>\\n\" (1)\n"; code != 0 || !strings.Contains(out, want) {
		t.Errorf("llama2.c tokenizer: exit %d %s: lacks %q:\n%s", code, errs, want, out)
	}
}

// inspect resolves hf:ORG/NAME in the local hub cache and shows the
// snapshot's model and tokenizer.
func TestInspectHubRef(t *testing.T) {
	m, err := llama2c.Load(shareddata.Path(t, "models", "stories260K", "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	commit := strings.Repeat("ab", 20)
	repo := filepath.Join(cache, "models--lrmc--stories260K")
	snap := filepath.Join(repo, "snapshots", commit)
	os.MkdirAll(filepath.Dir(snap), 0o755)
	if err := hf.Save(snap, m, nil, "float32", 0); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(shareddata.Path(t, "tokenizers", "mistral_v0.1", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(snap, "tokenizer.json"), b, 0o644)
	os.MkdirAll(filepath.Join(repo, "refs"), 0o755)
	os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(commit), 0o644)
	t.Setenv("HF_HUB_CACHE", cache)
	code, out, errs := lrmc(t, "inspect", "hf:lrmc/stories260K")
	for _, want := range []string{
		"hf:lrmc/stories260K: revision main, commit " + commit + "\n" + snap + "\n  format        hf\n",
		"  blocks        5\n",
		"  tokenizer\n    format        Hugging Face tokenizer.json\n    vocab         32,000\n",
	} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("exit %d %s: lacks %q:\n%s", code, errs, want, out)
		}
	}
	code, _, errs = lrmc(t, "inspect", "hf:lrmc/absent")
	if code != 1 || !strings.Contains(errs, `"hf:lrmc/absent"`) {
		t.Errorf("absent repository: exit %d, %q", code, errs)
	}
}
