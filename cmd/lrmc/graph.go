package main

import (
	"github.com/spf13/cobra"
)

func graphCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "graph RECIPE",
		Short: "Print a recipe's DAG in Graphviz DOT, coloured by cache status",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, st, err := g.planned(cmd.ErrOrStderr(), args[0])
			if err != nil {
				return err
			}
			defer s.store.Close()
			s.graph.RenderDOT(cmd.OutOrStdout(), st)
			return nil
		},
	}
}
