package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/executor/progress"
)

func applyCmd(g *globals) *cobra.Command {
	var mode, memLimit string
	var jobs int
	cmd := &cobra.Command{
		Use:   "apply RECIPE",
		Short: "Run a recipe: compute what is not cached, write outputs, print the results table",
		Long: `Apply plans the recipe, resolves every result from the cache or by running
its op, writes the outputs under output.dir (each run's metrics.json and
artifacts, results.json, and the report: report.md and report.html), and
prints a table comparing the runs.

Ctrl-C stops cleanly: every node that finished is in the cache, so running
apply again resumes where it stopped. With --progress=json the event stream
goes to stdout as one JSON object per line, instead of the table.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if memLimit != "" {
				limit, err := parseSize(memLimit)
				if err != nil {
					return fmt.Errorf("--memory-limit: %w", err)
				}
				// The Go runtime's soft limit: the collector works harder as
				// the heap nears it. Activations are freed as soon as their
				// last user is done, so the limit bounds the peak.
				debug.SetMemoryLimit(limit)
			}
			s, err := g.load(args[0])
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return exitError{code: 1}
			}
			defer s.store.Close()

			out := cmd.OutOrStdout()
			var displayOut io.Writer = cmd.ErrOrStderr()
			if mode == "json" {
				displayOut = out
			}
			display, err := progress.New(mode, displayOut)
			if err != nil {
				return err
			}
			ex, err := executor.New(ops.Registry(), s.store, executor.Options{Jobs: jobs, Log: g.logger(), Events: display.Event, Sources: s.env})
			if err != nil {
				return err
			}

			// Leftovers of an apply killed while writing outputs go first,
			// so an unusable output directory is reported before the work.
			if err := executor.CleanOutputs(s.graph); err != nil {
				return err
			}

			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := ex.Run(ctx, s.graph)
			if err == nil {
				_, err = ex.WriteOutputs(s.graph, res)
			}
			if err == nil && s.graph.Results != nil {
				// The report is drawn from the files just written, as
				// lrmc report draws it; it is no node of the DAG, so no
				// cache key depends on it, and the same results write
				// the same bytes.
				_, err = writeReport(s.graph.OutDir, s.recipe)
			}
			display.Close()
			if ctx.Err() == nil {
				// LRMC_CACHE_MAX: evict what this apply does not need.
				if berr := s.enforceCacheBudget(cmd.ErrOrStderr()); berr != nil && err == nil {
					err = berr
				}
			}
			if err != nil {
				if errors.Is(err, context.Canceled) || ctx.Err() != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), "lrmc: cancelled; finished nodes are cached, run apply again to resume")
					return exitError{code: 130}
				}
				return err
			}
			if mode == "json" {
				return nil
			}
			if v, ok := res.Value(s.graph.Results); ok {
				printResults(out, v.(ops.Results))
			}
			if res.Ran == 0 {
				fmt.Fprintf(out, "\nNothing to run: %d results read from the cache.\n", res.Cached)
			} else {
				fmt.Fprintf(out, "\nApplied: %d ran, %d read from the cache.\n", res.Ran, res.Cached)
			}
			fmt.Fprintf(out, "Outputs in %s\n", s.graph.OutDir)
			return nil
		},
	}
	cmd.Flags().StringVar(&mode, "progress", "auto", "progress display: auto, tty, plain or json")
	cmd.Flags().IntVar(&jobs, "jobs", 1, "ops run at once (each op already uses every core)")
	cmd.Flags().StringVar(&memLimit, "memory-limit", "", "soft limit on lrmc's memory (e.g. 8GiB), passed to the Go runtime")
	return cmd
}
