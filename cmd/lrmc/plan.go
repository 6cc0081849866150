package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"lrmc/compiler/ir"
	"lrmc/executor"
	"lrmc/planner"
)

func planCmd(g *globals) *cobra.Command {
	var detailed, asJSON bool
	var emit string
	var sf slurmFlags
	cmd := &cobra.Command{
		Use:   "plan RECIPE",
		Short: "Compile a recipe into its DAG and show what is cached, what would run and why",
		Long: `Plan prints the DAG grouped by run (a node several runs share is listed
once, under "shared by N runs"), one line per node in execution order:
  +  the node will run, and why: new run, new, parameters changed (which,
     old → new), input changed (which), op version bumped, not in the
     cache (computed before), never cached (recomputed when needed)
  =  its result is cached
  <  a file that will be read ("file changed" when its content did)
     (blank) not needed: everything that uses it is cached
The reasons compare each node with the node at the same position of the
same run when apply last wrote the output directory (.lrmc-state.json).
Then the run directories apply would remove (runs no longer in the
recipe), an estimate of the work (tokens × blocks pushed through the model;
bytes read from the cache and from files), the cache hits, and the summary
line. With --json the same as one JSON document (schema "lrmc.plan/v1",
documented in cmd/lrmc/planview.go). With --detailed-exitcode the exit
status is 0 when nothing would run and 2 when something would.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if emit != "" {
				return g.planEmit(cmd, emit, args, &sf)
			}
			if len(args) != 1 {
				return fmt.Errorf("accepts 1 arg (the recipe), received %d; a second argument is only given with --emit", len(args))
			}
			s, st, err := g.planned(cmd.ErrOrStderr(), args[0])
			if err != nil {
				return err
			}
			defer s.store.Close()
			doc, err := s.planView(st)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(doc); err != nil {
					return err
				}
			} else {
				doc.render(cmd.OutOrStdout())
			}
			if detailed && doc.Summary.Run > 0 {
				return exitError{code: 2}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&detailed, "detailed-exitcode", false, "exit 2 when something would run")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON (schema lrmc.plan/v1)")
	cmd.Flags().StringVar(&emit, "emit", "", "slurm: write the batch scripts of the heavy nodes to run, submit.sh and the graph they run into DIR (lrmc plan --emit slurm DIR RECIPE) without submitting; "+
		"graph: write the planned graph as JSON to FILE, - for stdout (lrmc plan --emit graph FILE RECIPE), for lrmc exec --graph")
	sf.register(cmd, false)
	return cmd
}

// planEmit is plan --emit slurm DIR RECIPE and plan --emit graph FILE
// RECIPE, or with the two the other way round: the recipe is the argument
// named *.cue, else the one that is a file (the first when both are).
func (g *globals) planEmit(cmd *cobra.Command, emit string, args []string, sf *slurmFlags) error {
	if emit != "slurm" && emit != "graph" {
		return fmt.Errorf("--emit: want slurm or graph, got %q", emit)
	}
	if len(args) != 2 {
		if emit == "graph" {
			return fmt.Errorf("--emit graph wants the file to write (- for stdout) and the recipe (lrmc plan --emit graph FILE RECIPE)")
		}
		return fmt.Errorf("--emit slurm wants a directory and the recipe (lrmc plan --emit slurm DIR RECIPE)")
	}
	recipe, target := args[1], args[0]
	switch cue0, cue1 := filepath.Ext(args[0]) == ".cue", filepath.Ext(args[1]) == ".cue"; {
	case cue0 != cue1:
		// A graph file from an earlier emit is a file too: the recipe's
		// extension says which is which, so it is never overwritten.
		if cue0 {
			recipe, target = args[0], args[1]
		}
	case isFile(args[0]) && (emit == "slurm" || !isFile(args[1])):
		recipe, target = args[0], args[1]
	}
	s, _, err := g.planned(cmd.ErrOrStderr(), recipe)
	if err != nil {
		return err
	}
	defer s.store.Close()
	if emit == "graph" {
		if err := s.writeGraph(target, cmd.OutOrStdout()); err != nil {
			return err
		}
		if target != "-" {
			fmt.Fprintf(cmd.OutOrStdout(), "wrote the graph of %d node(s) to %s\n", len(s.graph.Nodes), target)
		}
		return nil
	}
	f := *sf
	f.dir = target
	return g.emitSlurm(cmd.OutOrStdout(), s, &f)
}

// isFile reports whether path is a regular file.
func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// planView gathers what the plan view needs from the output directory,
// the cache, the files and the models' headers.
func (s *session) planView(st map[*planner.Node]planner.Status) (*planDoc, error) {
	state, err := executor.ReadState(s.graph.OutDir)
	if err != nil {
		return nil, err
	}
	stale, err := executor.FindStale(s.graph, s.recipe.File)
	if err != nil {
		return nil, err
	}
	models := map[string]ir.Model{}
	if s.recipe.Dense {
		models[planner.DenseRun] = s.recipe.DenseModel
	}
	for _, r := range s.recipe.Runs {
		models[r.Name] = r.Model
	}
	blocks := func(run string) int {
		m, ok := models[run]
		if !ok {
			return 0
		}
		info, err := s.env.Model(m)
		if err != nil {
			return 0 // planning inspected it already; an estimate can do without
		}
		return info.Blocks
	}
	size := func(n *planner.Node) int64 {
		if n.IsSource() {
			return fileSize(n.Source)
		}
		m, ok, err := s.store.Stat(n.Key)
		if err != nil || !ok {
			return 0
		}
		return m.Size
	}
	return buildPlan(s.graph, planInputs{recipe: s.recipe.File, status: st, state: state, stale: stale, blocks: blocks, size: size}), nil
}

// fileSize is a file's size, or the total of a directory's files.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	if !fi.IsDir() {
		return fi.Size()
	}
	var total int64
	err = filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if info, ierr := d.Info(); ierr == nil && info.Mode().IsRegular() {
			total += info.Size()
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintln(os.Stderr, "lrmc: sizing", path+":", err)
	}
	return total
}
