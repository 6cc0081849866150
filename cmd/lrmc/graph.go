package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func graphCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "graph RECIPE",
		Short: "Print a recipe's DAG in Graphviz DOT, coloured by cache status",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.load(args[0])
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return exitError{code: 1}
			}
			defer s.store.Close()
			st, err := s.statuses()
			if err != nil {
				return err
			}
			s.graph.RenderDOT(cmd.OutOrStdout(), st)
			return nil
		},
	}
}
