package main

import (
	"github.com/spf13/cobra"
)

func planCmd(g *globals) *cobra.Command {
	var detailed bool
	cmd := &cobra.Command{
		Use:   "plan RECIPE",
		Short: "Compile a recipe into its DAG and show what is cached and what would run",
		Long: `Plan prints one line per node in execution order:
  +  the node will run
  =  its result is cached
  <  a file that will be read
     (blank) not needed: everything that uses it is cached
followed by a summary line. With --detailed-exitcode the exit status is 0
when nothing would run and 2 when something would.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, st, err := g.planned(cmd.ErrOrStderr(), args[0])
			if err != nil {
				return err
			}
			defer s.store.Close()
			s.graph.RenderPlan(cmd.OutOrStdout(), st)
			if detailed && s.graph.Summarize(st).Run > 0 {
				return exitError{code: 2}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&detailed, "detailed-exitcode", false, "exit 2 when something would run")
	return cmd
}
