package main

import (
	"github.com/spf13/cobra"

	"lrmc/compiler"
)

// schemaCmd prints every recipe field with its type, default and doc,
// generated from the embedded schema (compiler.WriteSchema).
func schemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print every recipe field with its type, default and doc (also: lrmc help recipe)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return compiler.WriteSchema(cmd.OutOrStdout())
		},
	}
}

// recipeTopic is the help topic `lrmc help recipe`: the schema's fields.
// It has no Run, so cobra lists it among the help topics and `help recipe`
// calls its help function.
func recipeTopic() *cobra.Command {
	c := &cobra.Command{
		Use:   "recipe",
		Short: "The recipe's fields, with types, defaults and docs (as lrmc schema prints them)",
	}
	c.SetHelpFunc(func(cmd *cobra.Command, _ []string) {
		if err := compiler.WriteSchema(cmd.OutOrStdout()); err != nil {
			cmd.PrintErrln("lrmc:", err)
		}
	})
	return c
}
