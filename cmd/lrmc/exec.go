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
	var graphFile string
	cmd := &cobra.Command{
		Use:   "exec {RECIPE | --graph FILE} KEY...",
		Short: "Compute nodes of a recipe into the cache (one Slurm job's work), writing no outputs",
		Long: `Exec makes sure each node KEY names (its full key, or a prefix of at
least 12 hex digits as plan prints) is in the cache. The nodes come from
RECIPE, compiled and planned as apply does, or with --graph from FILE, the
planned graph lrmc plan --emit graph wrote (the recipe is not read, so
editing it changes nothing for FILE's nodes). FILE is checked first: its
format, every op known at the version it was planned with, and every
node's key recomputed from its op, params and inputs (an edited node is
refused, named); before a node runs, every file it reads is digested
again and must hold the bytes it was planned with.

A node already in the local or the shared cache (--remote-cache) prints
"cached KEY12 OP" at once; otherwise exec runs what the node needs (cached
inputs are read, missing or never-cached ones recomputed), stores the
result, written back to the shared cache, and prints "ran KEY12 OP
SECONDSs". It writes no output files: the apply that collects the results
does. apply --executor slurm runs one exec --graph per job.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if graphFile != "" {
				return cobra.MinimumNArgs(1)(cmd, args)
			}
			return cobra.MinimumNArgs(2)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if graphFile != "" {
				graph, err := readGraph(graphFile)
				if err != nil {
					return err
				}
				store, err := g.openCache()
				if err != nil {
					return err
				}
				s := &session{store: store, graph: graph, env: &ops.Env{Files: store}, remote: g.attached}
				defer store.Close()
				return g.execNodes(cmd, s, graphFile, args, func(sub *planner.Graph) error {
					return s.verifySources(graphFile, sub)
				})
			}
			s, err := g.loadWith(args[0], g.openCache)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return exitError{code: 1}
			}
			defer s.store.Close()
			// Planning digested the files, and s.env checks them as the
			// ops read them.
			return g.execNodes(cmd, s, args[0], args[1:], nil)
		},
	}
	cmd.Flags().StringVar(&graphFile, "graph", "", "run nodes of the planned graph in FILE (lrmc plan --emit graph FILE RECIPE) instead of a recipe")
	return cmd
}

// execNodes is exec's work once s holds the graph (from where, a recipe or
// a graph file): each node keys names, from the cache or run. verify, when
// set, is asked about each sub-graph before it runs.
func (g *globals) execNodes(cmd *cobra.Command, s *session, where string, keys []string, verify func(*planner.Graph) error) error {
	var nodes []*planner.Node
	for _, k := range keys {
		n, err := findNode(s.graph, k)
		if err != nil {
			return fmt.Errorf("%w in %s", err, where)
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
		sub := slurm.Subgraph(s.graph, n)
		if verify != nil {
			if err := verify(sub); err != nil {
				return err
			}
		}
		t0 := time.Now()
		if _, err := ex.Run(ctx, sub); err != nil {
			return fmt.Errorf("%s (%s %s): %w", n.Label, n.Op, n.Key.Short(), err)
		}
		if err := s.checkShared(n); err != nil {
			return err
		}
		fmt.Fprintf(out, "ran %s %s %.1fs\n", n.Key.Short(), n.Op, time.Since(t0).Seconds())
	}
	return nil
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
