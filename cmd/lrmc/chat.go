package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"lrmc/kernels/chattemplate"
)

func chatCmd() *cobra.Command {
	var dir, messages string
	var genPrompt bool
	var vars []string
	cmd := &cobra.Command{
		Use:   "chat --tokenizer DIR --messages FILE.json",
		Short: "Render messages with a tokenizer's chat template",
		Long: `Chat renders a conversation with the chat_template of DIR/tokenizer_config.json,
as transformers' apply_chat_template(tokenize=False) does, and prints the
text. FILE.json holds a JSON array of messages, or an object with
"messages" and optionally "tools". --var NAME=VALUE passes a template
variable (true/false and numbers are typed; e.g. enable_thinking=false).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tmpl, sp, err := chattemplate.FromTokenizerConfig(filepath.Join(dir, "tokenizer_config.json"))
			if err != nil {
				return err
			}
			b, err := os.ReadFile(messages)
			if err != nil {
				return err
			}
			opts := chattemplate.Options{AddGenerationPrompt: genPrompt, BOSToken: sp.BOS, EOSToken: sp.EOS, Vars: map[string]any{}}
			msgs := b
			if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
				var doc struct {
					Messages json.RawMessage `json:"messages"`
					Tools    json.RawMessage `json:"tools"`
				}
				if err := json.Unmarshal(t, &doc); err != nil {
					return fmt.Errorf("%s: %w", messages, err)
				}
				if doc.Messages == nil {
					return fmt.Errorf(`%s: no "messages" list`, messages)
				}
				msgs = doc.Messages
				if len(doc.Tools) > 0 && string(doc.Tools) != "null" {
					tools, err := chattemplate.ParseJSON(doc.Tools)
					if err != nil {
						return fmt.Errorf("%s: tools: %w", messages, err)
					}
					list, ok := tools.([]any)
					if !ok {
						return fmt.Errorf("%s: tools is not a list", messages)
					}
					opts.Tools = list
				}
			}
			for _, v := range vars {
				name, val, ok := strings.Cut(v, "=")
				if !ok || name == "" {
					return fmt.Errorf("--var %q: want NAME=VALUE", v)
				}
				opts.Vars[name] = typedValue(val)
			}
			out, err := tmpl.RenderJSON(msgs, opts)
			if err != nil {
				return fmt.Errorf("%s: %w", messages, err)
			}
			fmt.Fprint(cmd.OutOrStdout(), out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "tokenizer", "", "tokenizer directory holding tokenizer_config.json")
	f.StringVar(&messages, "messages", "", "JSON file with the messages")
	f.BoolVar(&genPrompt, "add-generation-prompt", false, "end with the assistant's turn header")
	f.StringArrayVar(&vars, "var", nil, "template variable NAME=VALUE (repeatable)")
	cmd.MarkFlagRequired("tokenizer")
	cmd.MarkFlagRequired("messages")
	return cmd
}

// typedValue reads true/false and numbers as such, anything else as a string.
func typedValue(s string) any {
	switch s {
	case "true", "True":
		return true
	case "false", "False":
		return false
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return f
	}
	return s
}
