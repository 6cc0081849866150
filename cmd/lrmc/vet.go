package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"lrmc/compiler"
)

func vetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "vet RECIPE",
		Short: "Check a recipe against the schema; print every error as file:line:col: path: message",
		Long: `Vet checks everything that needs no model weights and no cache: the schema
(types, ranges, misspelt fields, with the nearest allowed name), what spans
fields after the merge, names against the registry, files on disk, the first
record of jsonl data, chat templates for chat and instruction data, held-out
text against calibration text, and the pruning amount against the model's
blocks, read from a synthetic model or the checkpoint's header. Plan adds the
checks that need more of the model; they report at the same positions.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := compiler.Vet(args[0]); err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return exitError{code: 1}
			}
			fmt.Fprintln(cmd.OutOrStdout(), "ok")
			return nil
		},
	}
}
