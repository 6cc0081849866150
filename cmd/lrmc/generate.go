package main

import (
	"bufio"
	"fmt"

	"github.com/spf13/cobra"

	"lrmc/executor/ops"
	"lrmc/kernels/generate"
	"lrmc/kernels/llama2c"
)

func generateCmd(g *globals) *cobra.Command {
	var (
		model, tokenizer, prompt string
		maxTokens                int
		temperature, topP        float32
		seed                     uint64
	)
	cmd := &cobra.Command{
		Use:   "generate --model PATH --prompt TEXT",
		Short: "Continue a prompt with a model (greedy at temperature 0)",
		Long: `Generate prints the prompt followed by its continuation, as llama2.c's run.c
does: --max-tokens counts positions, prompt included (run.c's -n), and
generation stops early when the model emits BOS. Temperature 0 is greedy
(argmax, lowest id on ties); otherwise sampling is seeded by --seed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format, err := ops.DetectFormat(model, "auto")
			if err != nil {
				return err
			}
			if format != "llama2c" {
				return fmt.Errorf("%s: generating from %s models is not supported yet; supported: llama2c", model, format)
			}
			m, err := llama2c.Load(model)
			if err != nil {
				return err
			}
			if tokenizer == "" {
				if tokenizer, err = llama2c.FindTokenizer(model, m.Config.Vocab); err != nil {
					return err
				}
			}
			tok, err := llama2c.LoadTokenizer(tokenizer, m.Config.Vocab)
			if err != nil {
				return err
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			defer w.Flush()
			_, err = generate.Generate(m, tok, prompt, generate.Options{Steps: maxTokens, Temperature: temperature, TopP: topP, Seed: seed},
				func(piece string) { w.WriteString(piece) })
			if err != nil {
				return err
			}
			w.WriteString("\n")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&model, "model", "", "model checkpoint (llama2.c .bin)")
	f.StringVar(&tokenizer, "tokenizer", "", "tokenizer (default: found beside the model)")
	f.StringVar(&prompt, "prompt", "", "prompt text")
	f.IntVar(&maxTokens, "max-tokens", 256, "positions to run, prompt included (0: the model's context length)")
	f.Float32Var(&temperature, "temperature", 0, "sampling temperature; 0 is greedy")
	f.Float32Var(&topP, "top-p", 0.9, "nucleus sampling threshold when temperature > 0")
	f.Uint64Var(&seed, "seed", 0, "sampling seed")
	cmd.MarkFlagRequired("model")
	return cmd
}
