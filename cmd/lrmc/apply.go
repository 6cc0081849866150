package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/executor/progress"
	"lrmc/planner"
)

func applyCmd(g *globals) *cobra.Command {
	var mode, memLimit, executorName string
	var jobs int
	var failFast bool
	var sf slurmFlags
	cmd := &cobra.Command{
		Use:   "apply RECIPE",
		Short: "Run a recipe: compute what is not cached, write outputs, print the results table",
		Long: `Apply plans the recipe, resolves every result from the cache or by running
its op, writes the outputs under output.dir (each run's metrics.json and
artifacts, results.json, and the report: report.md and report.html), and
prints a table comparing the runs.

When a node fails, the runs that need it fail; every other run is still
computed, reported and written, the failed runs are listed with the node
that failed (op, key, error), and the exit status is 1. --fail-fast stops
at the first failure and writes nothing.

A run taken out of the recipe has its directory removed when lrmc wrote it
(the output directory's .lrmc-state.json says so) and it holds nothing
else; otherwise apply says it is stale and leaves it.

Ctrl-C stops cleanly: every node that finished is in the cache, so running
apply again resumes where it stopped. With --progress=json the event stream
goes to stdout as one JSON object per line, instead of the table.

With --executor slurm (and a shared cache, --remote-cache), every heavy
node that is in no cache (capture, scoring, training, evaluation) becomes
one sbatch job running lrmc exec, with --dependency=afterok edges from the
DAG; the jobs' states are shown until they end, then this apply reads their
results from the shared cache, computes the cheap rest and writes the
outputs. A failed job is named with its node and log, its dependents are
cancelled and the exit status is 1; Ctrl-C cancels the submitted jobs.
Applying again submits only what is still missing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch executorName {
			case "local":
			case "slurm":
				if g.remote == "" {
					return errNoRemote
				}
			default:
				return fmt.Errorf("--executor: want local or slurm, got %q", executorName)
			}
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
			// s.store is read when apply returns: reopenForWriting may
			// replace it.
			defer func() { s.store.Close() }()

			if executorName == "slurm" {
				// The heavy nodes run as Slurm jobs; this apply then
				// finds them in the shared cache and does the rest.
				ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
				err := g.runSlurm(ctx, cmd.ErrOrStderr(), s, &sf)
				cancelled := ctx.Err() != nil
				stop()
				if cancelled {
					fmt.Fprintln(cmd.ErrOrStderr(), "lrmc: cancelled; the jobs this apply submitted were cancelled, finished nodes are in the shared cache: run apply again to resume")
					return exitError{code: 130}
				}
				if err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), "lrmc:", err)
					return exitError{code: 1}
				}
			}

			out := cmd.OutOrStdout()
			var displayOut io.Writer = cmd.ErrOrStderr()
			if mode == "json" {
				displayOut = out
			}
			runSets := make([][]string, len(s.graph.Nodes))
			for i, n := range s.graph.Nodes {
				runSets[i] = n.Runs
			}
			display, err := progress.NewConfig(mode, displayOut, progress.Config{RunSets: runSets})
			if err != nil {
				return err
			}
			newExecutor := func(events func(executor.Event)) (*executor.Executor, error) {
				return executor.New(ops.Registry(), s.store, executor.Options{Jobs: jobs, Log: g.logger(), Events: events, Sources: s.env, FailFast: failFast})
			}
			// A cache opened without writing (see load) holds the events
			// back until the execution proved that it wrote nothing.
			var held []executor.Event
			events := display.Event
			if s.store.NoWrite() {
				events = func(e executor.Event) { held = append(held, e) }
			}
			ex, err := newExecutor(events)
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
			if s.store.NoWrite() && ctx.Err() == nil {
				if err == nil && s.store.Refused() == 0 {
					for _, e := range held {
						display.Event(e)
					}
					if p := s.store.Postponed(); p.Len() > 0 {
						// Bookkeeping a writable cache would have
						// written (entries' last use, file digest
						// memos): write it now.
						if err := s.reopenForWriting(g); err != nil {
							return err
						}
						s.store.CatchUp(p)
						// Whatever follows reads the store now open.
						var nerr error
						if ex, nerr = newExecutor(display.Event); nerr != nil {
							return nerr
						}
					}
				} else {
					// The cache had to be written after all (an entry
					// was found corrupt, say), or something failed:
					// execute again on the cache opened for writing,
					// as an apply that never tried without writing.
					g.logger().Info("the cache needs writing; executing again with the cache opened for writing", "refused_writes", s.store.Refused())
					if err := s.reopenForWriting(g); err != nil {
						return err
					}
					if ex, err = newExecutor(display.Event); err != nil {
						return err
					}
					res, err = ex.Run(ctx, s.graph)
				}
			}
			// Without --fail-fast, the runs that succeeded are written:
			// the recipe is planned again without the failed runs (the
			// planner is pure, so their nodes keep their keys), and that
			// graph resolves from what the first execution holds.
			var failed map[string][]executor.Failure
			written := s.graph
			var runErr *executor.RunError
			if errors.As(err, &runErr) && ctx.Err() == nil {
				failed = res.FailedRuns()
				written, res, err = s.withoutRuns(ctx, ex, res, failed)
			}
			if err == nil && written != nil {
				_, err = ex.WriteOutputs(written, res)
				if err == nil {
					err = executor.SaveState(written, s.recipe.File)
				}
			}
			if err == nil && written != nil && written.Results != nil {
				// The report is drawn from the files just written, as
				// lrmc report draws it; it is no node of the DAG, so no
				// cache key depends on it, and the same results write
				// the same bytes.
				_, err = writeReport(written.OutDir, s.recipe)
			}
			var stale []executor.StaleDir
			if err == nil && written != nil {
				// Runs taken out of the recipe: their directories go,
				// when lrmc wrote them (its state says so) and they
				// hold nothing else; any other is reported and kept.
				if stale, err = executor.FindStale(s.graph, s.recipe.File); err == nil {
					err = executor.RemoveStale(s.graph.OutDir, stale)
				}
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
				var f executor.Failure
				if errors.As(err, &f) && len(f.Node.Runs) > 0 {
					err = fmt.Errorf("%s: %w", runsNamed(f.Node.Runs), err)
				}
				return err
			}
			printStale(cmd.ErrOrStderr(), stale)
			if mode != "json" && written != nil {
				if v, ok := res.Value(written.Results); ok {
					printResults(out, v.(ops.Results))
				}
				if res.Ran == 0 && len(failed) == 0 {
					fmt.Fprintf(out, "\nNothing to run: %d results read from the cache.\n", res.Cached)
				} else {
					fmt.Fprintf(out, "\nApplied: %d ran, %d read from the cache.\n", res.Ran, res.Cached)
				}
				fmt.Fprintf(out, "Outputs in %s\n", written.OutDir)
			}
			if len(failed) > 0 {
				printFailures(cmd.ErrOrStderr(), failed, written == nil)
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&mode, "progress", "auto", "progress display: auto, tty, plain or json")
	cmd.Flags().IntVar(&jobs, "jobs", 1, "ops run at once (each op already uses every core)")
	cmd.Flags().BoolVar(&failFast, "fail-fast", false, "stop everything at the first failing node and write nothing (by default the runs that succeed are written)")
	cmd.Flags().StringVar(&executorName, "executor", "local", "where heavy nodes run: local, or slurm (one sbatch job per heavy node, results through --remote-cache; then the rest runs here)")
	sf.register(cmd, true)
	cmd.Flags().StringVar(&memLimit, "memory-limit", "", "soft limit on lrmc's memory (e.g. 8GiB), passed to the Go runtime")
	return cmd
}

// withoutRuns plans the recipe again without the failed runs and resolves
// that graph from the first execution's results (only the results node,
// whose inputs changed, runs). It returns a nil graph when no run is left.
func (s *session) withoutRuns(ctx context.Context, ex *executor.Executor, res *executor.Result, failed map[string][]executor.Failure) (*planner.Graph, *executor.Result, error) {
	if fs, ok := failed[""]; ok {
		// A recipe-wide node failed by itself: nothing can be written.
		return nil, nil, &executor.RunError{Failures: fs}
	}
	r := *s.recipe
	r.Runs = nil
	for _, run := range s.recipe.Runs {
		if _, bad := failed[run.Name]; !bad {
			r.Runs = append(r.Runs, run)
		}
	}
	if _, bad := failed[planner.DenseRun]; bad {
		r.Dense = false
	}
	if len(r.Runs) == 0 && !r.Dense {
		return nil, res, nil
	}
	g, err := planner.Plan(&r, s.env)
	if err != nil {
		return nil, nil, fmt.Errorf("planning the runs that succeeded: %w", err)
	}
	out, err := ex.RunWith(ctx, g, res)
	if err != nil {
		return nil, nil, err
	}
	// The counts are those of the whole apply.
	out.Ran += res.Ran
	out.Cached += res.Cached
	return g, out, nil
}

// printFailures lists every failed run with the nodes that failed it.
func printFailures(w io.Writer, failed map[string][]executor.Failure, none bool) {
	names := make([]string, 0, len(failed))
	for n := range failed {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "\n%d run(s) failed", len(names))
	if none {
		fmt.Fprint(w, "; no run succeeded, nothing was written")
	}
	fmt.Fprintln(w, ":")
	for _, n := range names {
		for _, f := range failed[n] {
			fmt.Fprintf(w, "  %s: %s %s %s: %v\n", n, f.Node.Op, f.Node.Key.Short(), f.Node.Label, f.Err)
		}
		if len(failed[n]) == 0 {
			fmt.Fprintf(w, "  %s: failed\n", n)
		}
	}
}

// printStale says what became of the directories of runs no longer in the
// recipe.
func printStale(w io.Writer, stale []executor.StaleDir) {
	for _, sd := range stale {
		if sd.Remove {
			fmt.Fprintf(w, "removed %s: run %q is no longer in the recipe\n", sd.Path, sd.Run)
		} else {
			fmt.Fprintf(w, "stale: %s is no run of the recipe; left in place because %s\n", sd.Path, sd.Reason)
		}
	}
}

// runsNamed names the runs of a node as the failure messages do.
func runsNamed(runs []string) string {
	if len(runs) == 1 && runs[0] == "" {
		return "results"
	}
	if len(runs) == 1 {
		return "run " + runs[0]
	}
	return "runs " + strings.Join(runs, ", ")
}
