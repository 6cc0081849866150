package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lrmc/internal/shareddata"
	"lrmc/kernels/chattemplate"
)

// --pieces prints id and piece a line; a directory holding only
// tokenizer.bin is read as llama2.c's, every piece of it (32000 for Llama 2,
// whose README gives " Hello"=15043 and " the"=278).
func TestTokenizePieces(t *testing.T) {
	l2 := shareddata.Path(t, "tokenizers", "llama2_sentencepiece")
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join(l2, "tokenizer.bin"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "tokenizer.bin"), b, 0o644)
	code, out, errs := lrmc(t, "tokenize", "--tokenizer", dir, "--pieces", "--special", " Hello the")
	if want := "1\t\"\\n<s>\\n\"\n29871\t\" \"\n15043\t\" Hello\"\n278\t\" the\"\n"; code != 0 || out != want {
		t.Errorf("llama2.c pieces: exit %d %s\n got %q\nwant %q", code, errs, out, want)
	}

	qwen := shareddata.Path(t, "tokenizers", "qwen3")
	code, out, errs = lrmc(t, "tokenize", "--tokenizer", filepath.Join(qwen, "tokenizer.json"), "--pieces", "Hello world<|im_end|>")
	if want := "9707\t\"Hello\"\n1879\t\"Ġworld\"\n151645\t\"<|im_end|>\"\n"; code != 0 || out != want {
		t.Errorf("qwen3 pieces: exit %d %s\n got %q\nwant %q", code, errs, out, want)
	}
	code, out, _ = lrmc(t, "tokenize", "--tokenizer", qwen, "Hello world<|im_end|>")
	if code != 0 || out != "[9707,1879,151645]\n" {
		t.Errorf("qwen3 ids: %q", out)
	}
	code, _, errs = lrmc(t, "tokenize", "--tokenizer", t.TempDir(), "x")
	if code != 1 || !strings.Contains(errs, "neither tokenizer.json (Hugging Face) nor tokenizer.bin (llama2.c) is in the directory") {
		t.Errorf("empty directory: exit %d, %q", code, errs)
	}
}

// chat renders a row of the reasoning data set as it is stored (tools as a
// JSON string), whether given alone, pretty-printed, or as --row of the
// whole file, exactly as the template renders the decoded messages and
// tools.
func TestChatRendersDataSetRows(t *testing.T) {
	data := shareddata.Path(t, "text", "reasoning_tool_use", "reason_tool_use_demo_50.think.jsonl")
	tok := shareddata.Path(t, "tokenizers", "qwen3")
	b, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Split(string(b), "\n")[2]
	var rec struct {
		Messages json.RawMessage `json:"messages"`
		Tools    string          `json:"tools"`
	}
	if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Tools == "" {
		t.Fatalf("row 2: %v, tools %q", err, rec.Tools)
	}
	tmpl, sp, err := chattemplate.FromTokenizerConfig(filepath.Join(tok, "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	// ParseJSON keeps the keys' order, as Python's json.loads does.
	tools, err := chattemplate.ParseJSON([]byte(rec.Tools))
	if err != nil {
		t.Fatal(err)
	}
	want, err := tmpl.RenderJSON(rec.Messages, chattemplate.Options{BOSToken: sp.BOS, EOSToken: sp.EOS, Tools: tools.([]any), Vars: map[string]any{"enable_thinking": false}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(want, "<tools>") {
		t.Fatal("reference rendering has no tools")
	}
	dir := t.TempDir()
	one := filepath.Join(dir, "row.json")
	os.WriteFile(one, []byte(line), 0o644)
	var pretty map[string]any
	json.Unmarshal([]byte(line), &pretty)
	pb, _ := json.MarshalIndent(pretty, "", "  ")
	indented := filepath.Join(dir, "pretty.json")
	os.WriteFile(indented, pb, 0o644)
	for _, args := range [][]string{{"--messages", one}, {"--messages", indented}, {"--messages", data, "--row", "2"}} {
		code, out, errs := lrmc(t, append([]string{"chat", "--tokenizer", tok, "--var", "enable_thinking=false"}, args...)...)
		if code != 0 || out != want {
			t.Errorf("%v: exit %d %s: rendering differs (%d bytes, want %d)", args, code, errs, len(out), len(want))
		}
	}
	code, _, errs := lrmc(t, "chat", "--tokenizer", tok, "--messages", data, "--row", "50")
	if code != 1 || !strings.Contains(errs, fmt.Sprintf("%s: --row 50: the file holds 50 records", data)) {
		t.Errorf("row out of range: exit %d, %q", code, errs)
	}
}
