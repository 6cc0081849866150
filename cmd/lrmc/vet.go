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
		Args:  cobra.ExactArgs(1),
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
