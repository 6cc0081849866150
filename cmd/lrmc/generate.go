package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"lrmc/executor/ops"
	"lrmc/kernels/generate"
)

func generateCmd(g *globals) *cobra.Command {
	var (
		model, tokenizer, prompt, system, dtype string
		maxTokens, maxNew                       int
		temperature, topP                       float32
		seed                                    uint64
		stops                                   []string
		chat, thinking, asJSON, dense           bool
	)
	cmd := &cobra.Command{
		Use:   "generate --model MODEL --prompt TEXT",
		Short: "Continue a prompt with a model (greedy at temperature 0)",
		Long: `Generate continues a prompt with any model lrmc reads: a llama2.c .bin, a
.gguf file, a Hugging Face directory or hf:ORG/NAME[@REV] from the local hub
cache, with its own tokenizer. It uses the sampler evaluation uses:
temperature 0 is greedy (argmax, lowest id on ties), otherwise sampling is
seeded by --seed.

Without --chat it prints the prompt followed by its continuation, as
llama2.c's run.c does: --max-tokens counts positions, prompt included (run.c's
-n). --max-new-tokens counts generated tokens instead. With --chat the prompt
is the user's message, rendered with the model's chat template and the
assistant's generation prompt (--system adds a system message,
--thinking=true|false sets enable_thinking), and only the reply is printed.

Generation ends at the model's end-of-sequence ids (BOS for llama2.c, as in
run.c), at a --stop sequence (repeatable; cut from the output as
lm-evaluation-harness cuts "until" strings) or at the token limit. --json
prints one object instead: the prompt as fed, its ids, the generated ids,
the text and why generation stopped (eos, stop_sequence, max_tokens).

A model exported by a dynamic-pruning run (recipes' prune.paradigm
"dynamic") has routers.safetensors beside its weights (in the Hugging Face
directory, or beside model.bin or model.gguf): generate then decodes with
the compute-skipping decoder, each routed block or part running only for
the tokens its router keeps, and says so on stderr with the share of
computation skipped; --dense runs the weights alone, as llama.cpp and
transformers do (they cannot run the routers).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := cmd.Flags()
			switch {
			case f.Changed("max-tokens") && f.Changed("max-new-tokens"):
				return errors.New("--max-tokens and --max-new-tokens exclude each other")
			case !chat && (f.Changed("thinking") || f.Changed("system")):
				return errors.New("--thinking and --system need --chat")
			case maxNew < 0:
				return errors.New("--max-new-tokens must not be negative")
			}
			m, err := generate.Load(model, tokenizer, dtype)
			if err != nil {
				return err
			}
			var rt *routed
			if !dense {
				if rt, err = findRouters(m); err != nil {
					return err
				}
			}
			text := prompt
			var ids []int32
			if chat {
				opt := generate.ChatOptions{System: system}
				if f.Changed("thinking") {
					opt.Thinking = &thinking
				}
				if text, err = m.RenderChat(prompt, opt); err != nil {
					return err
				}
				ids = m.Tok.EncodeRendered(text)
			} else {
				ids = m.Tok.EncodePrompt(text)
			}
			if len(ids) == 0 {
				return errors.New("the prompt encodes to no tokens")
			}
			if !f.Changed("max-new-tokens") {
				// run.c's -n: the steps may end inside the prompt.
				var keep int
				keep, maxNew = generate.RunCSteps(len(ids), maxTokens, m.LM.Config.SeqLen)
				ids = ids[:keep]
			}
			opt := generate.Options{MaxNew: maxNew, Temperature: temperature, TopP: topP, Seed: seed, Stop: stops, EOS: m.EOS}
			if rt != nil {
				rt.announce(cmd.ErrOrStderr())
				opt.Decoder = rt.decoder
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			defer w.Flush()
			if !asJSON {
				if !chat {
					w.WriteString(m.Tok.Decode(ids))
				}
				opt.Emit = func(piece string) { w.WriteString(piece) }
			}
			res := generate.Result{Reason: generate.StopMaxTokens}
			if opt.MaxNew > 0 || f.Changed("max-new-tokens") {
				if res, err = generate.Generate(cmd.Context(), m.LM, m.Tok, ids, opt); err != nil {
					return err
				}
			}
			var skipped *ops.DynamicEval
			if rt != nil {
				if skipped = rt.summary(); skipped != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "lrmc: the routers skipped %.1f%% of routed parts, %.1f%% of the blocks' multiply-adds\n",
						100*skipped.Skip, 100*skipped.SkippedCompute)
				}
			}
			if asJSON {
				out := map[string]any{
					"prompt": text, "prompt_ids": ids, "ids": nonNil(res.IDs), "text": res.Text,
					"stop": res.Reason, "stop_sequence": res.StopString,
				}
				if skipped != nil {
					out["routers"] = skipped
				}
				return json.NewEncoder(w).Encode(out)
			}
			w.WriteString("\n")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&model, "model", "", "model: llama2.c .bin, .gguf, Hugging Face directory or hf:ORG/NAME[@REV]")
	f.StringVar(&tokenizer, "tokenizer", "", "tokenizer (default: the model's own)")
	f.StringVar(&prompt, "prompt", "", "prompt text (with --chat, the user's message)")
	f.IntVar(&maxTokens, "max-tokens", 256, "positions to run, prompt included, as run.c's -n (0: the model's context length)")
	f.IntVar(&maxNew, "max-new-tokens", 0, "tokens to generate at most (0: as many as the context holds); replaces --max-tokens")
	f.Float32Var(&temperature, "temperature", 0, "sampling temperature; 0 is greedy")
	f.Float32Var(&topP, "top-p", 0.9, "nucleus sampling threshold when temperature > 0")
	f.Uint64Var(&seed, "seed", 0, "sampling seed")
	f.StringArrayVar(&stops, "stop", nil, "stop sequence (repeatable); the output is cut before it")
	f.BoolVar(&chat, "chat", false, "render the prompt as a user message with the model's chat template")
	f.BoolVar(&thinking, "thinking", false, "with --chat: set the template's enable_thinking (unset: the template's default)")
	f.StringVar(&system, "system", "", "with --chat: a system message")
	f.StringVar(&dtype, "dtype", "", "hold the weights as float32 (default), bfloat16 or float16")
	f.BoolVar(&dense, "dense", false, "ignore routers.safetensors beside the model (dynamic pruning) and run the weights alone")
	f.BoolVar(&asJSON, "json", false, "print one JSON object with the prompt, ids, text and stop reason")
	cmd.MarkFlagRequired("model")
	return cmd
}

// nonNil makes an empty id list print as [] rather than null.
func nonNil(ids []int32) []int32 {
	if ids == nil {
		return []int32{}
	}
	return ids
}
