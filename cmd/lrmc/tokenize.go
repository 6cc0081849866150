package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"lrmc/kernels/ggufmodel"
	"lrmc/kernels/llama2c"
	"lrmc/kernels/tokenizer"
)

func tokenizeCmd() *cobra.Command {
	var dir string
	var special, pieces bool
	var vocab int
	cmd := &cobra.Command{
		Use:   "tokenize --tokenizer PATH [--special] [--pieces] TEXT",
		Short: "Print the token ids of TEXT as a JSON array, or its pieces",
		Long: `Tokenize encodes TEXT with a Hugging Face tokenizer (a directory with
tokenizer.json and tokenizer_config.json), a llama2.c tokenizer file (or a
directory holding tokenizer.bin) or a GGUF file's tokenizer, and prints the
ids as a JSON array. --special adds the special tokens the tokenizer adds by
default (transformers' add_special_tokens=True; BOS for llama2.c
tokenizers). --pieces prints one token a line instead: its id, a tab and
its piece as a quoted string ("▁Hello", "Ġworld"; llama2.c writes "▁" as a
space).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := openCLITokenizer(dir, vocab)
			if err != nil {
				return err
			}
			ids := t.encode(args[0], special)
			if ids == nil {
				ids = []int32{}
			}
			w := cmd.OutOrStdout()
			if pieces {
				for i, p := range t.pieces(ids) {
					fmt.Fprintf(w, "%d\t%s\n", ids[i], strconv.Quote(p))
				}
				return nil
			}
			b, _ := json.Marshal(ids)
			fmt.Fprintln(w, string(b))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "tokenizer", "", "Hugging Face tokenizer directory, llama2.c tokenizer file (or a directory holding tokenizer.bin), or .gguf file")
	cmd.Flags().BoolVar(&special, "special", false, "add the tokenizer's default special tokens")
	cmd.Flags().BoolVar(&pieces, "pieces", false, "print each token's id and piece, one a line")
	cmd.Flags().IntVar(&vocab, "vocab", 0, "vocabulary size of a llama2.c tokenizer file (default: every piece in the file)")
	cmd.MarkFlagRequired("tokenizer")
	return cmd
}

// cliTokenizer is a tokenizer of any format lrmc reads, for tokenize and
// inspect.
type cliTokenizer struct {
	path, format string
	hf           *tokenizer.Tokenizer // format "hf" and "gguf"
	l2c          *llama2c.Tokenizer   // format "llama2c"
	// chatTemplate is the tokenizer's chat template ("" for none; the
	// templates of a list of named ones, joined).
	chatTemplate string
}

// openCLITokenizer loads the tokenizer at path: a directory holding
// tokenizer.json (Hugging Face) or tokenizer.bin (llama2.c), a tokenizer.json
// file, a llama2.c .bin file or a .gguf file.
func openCLITokenizer(path string, vocab int) (*cliTokenizer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		switch {
		case exists(filepath.Join(path, "tokenizer.json")):
		case exists(filepath.Join(path, "tokenizer.bin")):
			path = filepath.Join(path, "tokenizer.bin")
		default:
			return nil, fmt.Errorf("%s: neither tokenizer.json (Hugging Face) nor tokenizer.bin (llama2.c) is in the directory", path)
		}
	} else if filepath.Base(path) == "tokenizer.json" {
		path = filepath.Dir(path)
	}
	t := &cliTokenizer{path: path}
	switch {
	case isDir(path):
		t.format = "hf"
		if t.hf, err = tokenizer.Load(path); err != nil {
			return nil, err
		}
		t.chatTemplate = configChatTemplate(path)
	case strings.EqualFold(filepath.Ext(path), ".gguf"):
		t.format = "gguf"
		_, meta, err := ggufmodel.ReadConfig(path)
		if err != nil {
			return nil, err
		}
		if t.hf, err = tokenizer.FromGGUF(meta.Tokenizer); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		for _, kv := range meta.Tokenizer {
			if s, ok := kv.Value.(string); ok && kv.Key == "tokenizer.chat_template" {
				t.chatTemplate = s
			}
		}
	default:
		t.format = "llama2c"
		if t.l2c, err = llama2c.LoadTokenizer(path, vocab); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// configChatTemplate is the chat template of a Hugging Face tokenizer
// directory: tokenizer_config.json's chat_template (a string, or named
// templates, joined), else chat_template.jinja; "" for none.
func configChatTemplate(dir string) string {
	if b, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json")); err == nil {
		var c struct {
			ChatTemplate json.RawMessage `json:"chat_template"`
		}
		json.Unmarshal(b, &c)
		var s string
		var named []struct {
			Template string `json:"template"`
		}
		if json.Unmarshal(c.ChatTemplate, &s) == nil && s != "" {
			return s
		}
		if json.Unmarshal(c.ChatTemplate, &named) == nil {
			var parts []string
			for _, n := range named {
				parts = append(parts, n.Template)
			}
			if j := strings.Join(parts, "\n"); j != "" {
				return j
			}
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "chat_template.jinja"))
	return string(b)
}

func (t *cliTokenizer) encode(text string, special bool) []int32 {
	if t.l2c != nil {
		return t.l2c.Encode(text, special, false)
	}
	return t.hf.Encode(text, special)
}

func (t *cliTokenizer) pieces(ids []int32) []string {
	if t.l2c == nil {
		return t.hf.Tokens(ids)
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = t.l2c.Token(id)
	}
	return out
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}
