package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"lrmc/kernels/llama2c"
	"lrmc/kernels/tokenizer"
)

func tokenizeCmd() *cobra.Command {
	var dir string
	var special bool
	var vocab int
	cmd := &cobra.Command{
		Use:   "tokenize --tokenizer DIR [--special] TEXT",
		Short: "Print the token ids of TEXT as a JSON array",
		Long: `Tokenize encodes TEXT with a Hugging Face tokenizer (a directory with
tokenizer.json and tokenizer_config.json) or a llama2.c tokenizer file, and
prints the ids as a JSON array. --special adds the special tokens the
tokenizer adds by default (transformers' add_special_tokens=True; BOS for
llama2.c tokenizers).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := os.Stat(dir)
			if err != nil {
				return err
			}
			var ids []int32
			if st.IsDir() {
				t, err := tokenizer.Load(dir)
				if err != nil {
					return err
				}
				ids = t.Encode(args[0], special)
			} else {
				t, err := llama2c.LoadTokenizer(dir, vocab)
				if err != nil {
					return err
				}
				ids = t.Encode(args[0], special, false)
			}
			if ids == nil {
				ids = []int32{}
			}
			b, _ := json.Marshal(ids)
			fmt.Fprintln(cmd.OutOrStdout(), string(b))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "tokenizer", "", "tokenizer directory (Hugging Face) or llama2.c tokenizer file")
	cmd.Flags().BoolVar(&special, "special", false, "add the tokenizer's default special tokens")
	cmd.Flags().IntVar(&vocab, "vocab", 512, "vocabulary size of a llama2.c tokenizer file")
	cmd.MarkFlagRequired("tokenizer")
	return cmd
}
