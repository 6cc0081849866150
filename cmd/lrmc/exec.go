package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/executor/slurm"
	"lrmc/planner"
)

// minKeyPrefix is the shortest key prefix exec accepts: what plan prints.
const minKeyPrefix = 12

func execCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "exec RECIPE KEY...",
		Short: "Compute nodes of a recipe into the cache (one Slurm job's work), writing no outputs",
		Long: `Exec compiles and plans RECIPE as apply does, then makes sure each node
KEY names (its full key, or a prefix of at least 12 hex digits as plan
prints) is in the cache. A node already in the local or the shared cache
(--remote-cache) prints "cached KEY12 OP" at once; otherwise exec runs
what the node needs (cached inputs are read, missing or never-cached ones
recomputed), stores the result, written back to the shared cache, and
prints "ran KEY12 OP SECONDSs". It writes no output files: the apply that
collects the results does. apply --executor slurm runs one exec per job.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.loadWith(args[0], g.openCache)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return exitError{code: 1}
			}
			defer s.store.Close()
			var nodes []*planner.Node
			for _, k := range args[1:] {
				n, err := findNode(s.graph, k)
				if err != nil {
					return fmt.Errorf("%w in %s", err, args[0])
				}
				if n.IsSource() || planner.IsEphemeral(n.Op) {
					return fmt.Errorf("node %s (%s) is never cached, so there is nothing to exec; give a node that plan shows with a cache status", n.Key.Short(), n.Op)
				}
				nodes = append(nodes, n)
			}
			ex, err := executor.New(ops.Registry(), s.store, executor.Options{Log: g.logger(), Sources: s.env, FailFast: true})
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			out := cmd.OutOrStdout()
			for _, n := range nodes {
				ok, err := s.inCache(n)
				if err != nil {
					return err
				}
				if ok {
					fmt.Fprintf(out, "cached %s %s\n", n.Key.Short(), n.Op)
					continue
				}
				t0 := time.Now()
				if _, err := ex.Run(ctx, slurm.Subgraph(s.graph, n)); err != nil {
					return fmt.Errorf("%s (%s %s): %w", n.Label, n.Op, n.Key.Short(), err)
				}
				if err := s.checkShared(n); err != nil {
					return err
				}
				fmt.Fprintf(out, "ran %s %s %.1fs\n", n.Key.Short(), n.Op, time.Since(t0).Seconds())
			}
			return nil
		},
	}
}

// findNode finds the node of g whose key is k or starts with k.
func findNode(g *planner.Graph, k string) (*planner.Node, error) {
	k = strings.ToLower(k)
	if len(k) < minKeyPrefix || strings.Trim(k, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("node key %q: want the full key or a prefix of at least %d hex digits, as plan prints", k, minKeyPrefix)
	}
	var found []*planner.Node
	for _, n := range g.Nodes {
		if strings.HasPrefix(n.Key.String(), k) {
			found = append(found, n)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no node %s", k)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("node key %s is ambiguous: %d nodes start with it (%s %s, %s %s, …); give more digits",
		k, len(found), found[0].Key, found[0].Op, found[1].Key, found[1].Op)
}

// inCache reports whether n's result is in the local or the shared cache;
// Store.Stat asks the shared cache on a local miss, reading only the
// entry's header.
func (s *session) inCache(n *planner.Node) (bool, error) {
	_, ok, err := s.store.Stat(n.Key)
	return ok, err
}

// checkShared fails when the shared cache lacks n's result after exec ran
// it. The executor only logs a failed write-back (a local apply is still
// right without it), but a job whose result never reached the shared cache
// has done nothing for the jobs and the apply that wait on it: better a
// failed job, named with its node, than dependents that recompute it.
func (s *session) checkShared(n *planner.Node) error {
	if s.remote == nil {
		return nil
	}
	if _, err := s.remote.Stat(n.Key); err != nil {
		return fmt.Errorf("%s (%s %s) ran, but the shared cache does not hold its result: %w", n.Label, n.Op, n.Key.Short(), err)
	}
	return nil
}
