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
	"lrmc/kernels/textdata"
)

func chatCmd() *cobra.Command {
	var dir, messages, format string
	var genPrompt bool
	var row int
	var vars []string
	cmd := &cobra.Command{
		Use:   "chat --tokenizer DIR --messages FILE [--row N]",
		Short: "Render messages with a tokenizer's chat template",
		Long: `Chat renders a conversation with the chat_template of DIR/tokenizer_config.json,
as transformers' apply_chat_template(tokenize=False) does, and prints the
text. FILE holds a JSON array of messages; or one record of the data sets
lrmc calibrates on (an object with "messages" or ShareGPT "conversations",
and optionally "tools" as a list or as a JSON string holding one; with
--format instruction an Alpaca record); or a whole such data set (JSON
lines or a JSON array of records), of which --row N (from 0) is rendered.
--var NAME=VALUE passes a template variable (true/false and numbers are
typed; e.g. enable_thinking=false).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tmpl, sp, err := chattemplate.FromTokenizerConfig(filepath.Join(dir, "tokenizer_config.json"))
			if err != nil {
				return err
			}
			conv, err := readChat(messages, format, row)
			if err != nil {
				return err
			}
			opts := chattemplate.Options{AddGenerationPrompt: genPrompt, BOSToken: sp.BOS, EOSToken: sp.EOS, Vars: map[string]any{}}
			if conv.Tools != nil {
				tools, err := chattemplate.ParseJSON(conv.Tools)
				if err != nil {
					return fmt.Errorf("%s: tools: %w", messages, err)
				}
				list, ok := tools.([]any)
				if !ok {
					return fmt.Errorf("%s: tools is not a list", messages)
				}
				opts.Tools = list
			}
			for _, v := range vars {
				name, val, ok := strings.Cut(v, "=")
				if !ok || name == "" {
					return fmt.Errorf("--var %q: want NAME=VALUE", v)
				}
				opts.Vars[name] = typedValue(val)
			}
			out, err := tmpl.RenderJSON(conv.Messages, opts)
			if err != nil {
				return fmt.Errorf("%s: %w", messages, err)
			}
			fmt.Fprint(cmd.OutOrStdout(), out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "tokenizer", "", "tokenizer directory holding tokenizer_config.json")
	f.StringVar(&messages, "messages", "", "JSON file with the messages, a data set record, or a data set")
	f.StringVar(&format, "format", textdata.FormatChat, "the records' format: chat or instruction")
	f.IntVar(&row, "row", 0, "the record of a data set file to render, from 0")
	f.BoolVar(&genPrompt, "add-generation-prompt", false, "end with the assistant's turn header")
	f.StringArrayVar(&vars, "var", nil, "template variable NAME=VALUE (repeatable)")
	cmd.MarkFlagRequired("tokenizer")
	cmd.MarkFlagRequired("messages")
	return cmd
}

// readChat reads the conversation chat renders from path: a JSON array of
// messages, one record, or record row of a data set, read by textdata as
// the data ops read them.
func readChat(path, format string, row int) (textdata.Conversation, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return textdata.Conversation{}, err
	}
	t := bytes.TrimSpace(b)
	if len(t) > 0 && t[0] == '[' {
		var first []map[string]json.RawMessage
		if json.Unmarshal(t, &first) == nil && (len(first) == 0 || first[0]["role"] != nil) {
			return textdata.Conversation{Messages: t}, nil
		}
	}
	if len(t) > 0 && t[0] == '{' && json.Valid(t) {
		c, err := textdata.ParseConversation(t, format)
		if err != nil {
			return c, fmt.Errorf("%s: %w", path, err)
		}
		return c, nil
	}
	convs, err := textdata.ReadConversations(path, format)
	if err != nil {
		return textdata.Conversation{}, err
	}
	if row < 0 || row >= len(convs) {
		return textdata.Conversation{}, fmt.Errorf("%s: --row %d: the file holds %d records", path, row, len(convs))
	}
	return convs[row], nil
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
