package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"lrmc/cache"
	"lrmc/digest"
	"lrmc/executor"
	"lrmc/executor/slurm"
	"lrmc/planner"
)

// slurmFlags are apply's and plan's Slurm options; each overrides the
// recipe's cluster block.
type slurmFlags struct {
	partition, account, dir, mem string
	cpus                         int
	poll                         time.Duration
}

func (f *slurmFlags) register(cmd *cobra.Command, submits bool) {
	cmd.Flags().StringVar(&f.partition, "partition", "", "Slurm partition of the jobs (default the recipe's cluster.partition)")
	cmd.Flags().StringVar(&f.account, "account", "", "Slurm account of the jobs (default the recipe's cluster.account)")
	cmd.Flags().IntVar(&f.cpus, "cpus", 0, "CPUs per job, --cpus-per-task (default the recipe's cluster.cpus, else 4 clamped to the largest node)")
	cmd.Flags().StringVar(&f.mem, "mem", "", "memory per job in Slurm's syntax, e.g. 16G (default the recipe's cluster.mem, else an estimate from the model's size)")
	cmd.Flags().StringVar(&f.dir, "slurm-dir", "", "directory of the batch scripts and job logs (default .lrmc-slurm/<recipe name> beside the recipe)")
	if submits {
		cmd.Flags().DurationVar(&f.poll, "slurm-poll", 5*time.Second, "how often to ask Slurm for the jobs' states")
	}
}

// slurmConfig is what every job of s shares. The jobs run this binary
// (its absolute path) on the graph slurmJobs writes into the job
// directory, from the current directory: all three must be visible at the
// same paths on the compute nodes.
func (g *globals) slurmConfig(s *session, f *slurmFlags) (slurm.Config, error) {
	bin, err := os.Executable()
	if err != nil {
		return slurm.Config{}, fmt.Errorf("finding the lrmc binary for the jobs: %w", err)
	}
	recipe, err := filepath.Abs(s.recipe.File)
	if err != nil {
		return slurm.Config{}, err
	}
	wd, err := os.Getwd()
	if err != nil {
		return slurm.Config{}, err
	}
	dir := f.dir
	if dir == "" {
		name := strings.TrimSuffix(filepath.Base(recipe), filepath.Ext(recipe))
		dir = filepath.Join(filepath.Dir(recipe), ".lrmc-slurm", name)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return slurm.Config{}, err
	}
	c := s.recipe.Cluster
	cfg := slurm.Config{
		Binary: bin, Recipe: recipe, WorkDir: wd, Dir: dir, Remote: g.remote,
		Partition: c.Partition, Account: c.Account, Time: c.Time, CPUs: c.CPUs, Mem: c.Mem,
	}
	if f.partition != "" {
		cfg.Partition = f.partition
	}
	if f.account != "" {
		cfg.Account = f.account
	}
	if f.cpus > 0 {
		cfg.CPUs = f.cpus
	}
	if f.mem != "" {
		if !slurmMem.MatchString(f.mem) {
			return slurm.Config{}, fmt.Errorf("--mem %q: want Slurm's syntax, a number with an optional K, M, G or T (16G, 4000M)", f.mem)
		}
		cfg.Mem = f.mem
	}
	// The default CPUs and the memory estimate must fit the largest node.
	ctx, done := context.WithTimeout(context.Background(), 30*time.Second)
	defer done()
	cfg.MaxCPUs, cfg.MaxMemMiB, _ = slurm.Commands{}.Largest(ctx, cfg.Partition)
	return cfg, nil
}

// slurmJobs decides the jobs of s (heavy nodes not in any cache), shares
// with them the entries they read that only the local cache holds, and
// writes into cfg.Dir the planned graph (setting cfg.Graph) and the jobs'
// batch scripts, which run their nodes from it.
func (s *session) slurmJobs(w io.Writer, cfg *slurm.Config) ([]*slurm.Job, error) {
	st, err := s.statuses()
	if err != nil {
		return nil, err
	}
	jobs := slurm.Jobs(s.graph, st, func(n *planner.Node) (int, int64) {
		return cfg.Resources(n, slurm.ModelBytes(n, fileSize))
	})
	if len(jobs) == 0 {
		return nil, nil
	}
	if err := s.shareInputs(w, slurm.Inputs(jobs, st)); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("slurm directory: %w", err)
	}
	if err := s.emitGraph(cfg); err != nil {
		return nil, err
	}
	for _, j := range jobs {
		if err := os.WriteFile(filepath.Join(cfg.Dir, j.Script()), []byte(cfg.Script(j)), 0o755); err != nil {
			return nil, fmt.Errorf("writing batch script: %w", err)
		}
	}
	return jobs, nil
}

// emitGraph writes s's graph into cfg.Dir and points cfg.Graph at it. The
// file is named by its content's digest: jobs still queued from an
// earlier apply of an edited recipe keep the graph they were planned
// with, and an unchanged plan rewrites nothing.
func (s *session) emitGraph(cfg *slurm.Config) error {
	b, err := s.graphJSON()
	if err != nil {
		return fmt.Errorf("encoding the graph for the jobs: %w", err)
	}
	cfg.Graph = filepath.Join(cfg.Dir, "graph-"+digest.Of(b).Short()+".json")
	if err := executor.WriteFileAtomic(cfg.Graph, b); err != nil {
		return fmt.Errorf("writing the graph for the jobs: %w", err)
	}
	return nil
}

// shareInputs copies into the shared cache the entries among inputs that
// only the local cache holds (computed by an apply without it): a job
// that misses one recomputes it, however heavy, alone.
func (s *session) shareInputs(w io.Writer, inputs []*planner.Node) error {
	statter, _ := s.remote.(interface {
		Stat(digest.Digest) (cache.Meta, error)
	})
	shared := 0
	for _, n := range inputs {
		if statter != nil {
			if _, err := statter.Stat(n.Key); err == nil {
				continue
			}
		}
		// Without a remote Stat, the local entry is offered: Put keeps
		// an entry already there.
		if _, ok, err := s.store.Stat(n.Key); err != nil || !ok {
			continue
		}
		v, m, err := s.store.Get(n.Key)
		if err != nil {
			continue // the job recomputes it
		}
		if err := s.remote.Put(m, v); err != nil {
			return fmt.Errorf("sharing %s (%s %s) with the jobs: %w", n.Label, n.Op, n.Key.Short(), err)
		}
		shared++
	}
	if shared > 0 && statter != nil {
		fmt.Fprintf(w, "slurm: copied %d cached input(s) of the jobs into the shared cache\n", shared)
	}
	return nil
}

// runSlurm is the first half of apply --executor slurm: submit a job per
// heavy node to run and wait for them all. The ordinary apply that follows
// reads their results from the shared cache, computes the cheap rest and
// writes the outputs.
func (g *globals) runSlurm(ctx context.Context, w io.Writer, s *session, f *slurmFlags) error {
	cfg, err := g.slurmConfig(s, f)
	if err != nil {
		return err
	}
	jobs, err := s.slurmJobs(w, &cfg)
	if err != nil {
		return err
	}
	if len(jobs) == 0 {
		fmt.Fprintln(w, "slurm: every heavy node is in the shared cache; nothing to submit")
		return nil
	}
	if err := slurm.Available(); err != nil {
		return err
	}
	r := &slurm.Runner{
		Cluster: slurm.Commands{}, Config: cfg, Interval: f.poll, Out: w,
		Done: func(n *planner.Node) bool { ok, _ := s.inCache(n); return ok },
	}
	fmt.Fprintf(w, "slurm: submitting %d job(s); scripts and logs in %s\n", len(jobs), cfg.Dir)
	return r.Run(ctx, jobs)
}

// emitSlurm is plan --emit slurm: the batch scripts and submit.sh in dir.
func (g *globals) emitSlurm(w io.Writer, s *session, f *slurmFlags) error {
	cfg, err := g.slurmConfig(s, f)
	if err != nil {
		return err
	}
	if cfg.Remote == "" {
		return errNoRemote
	}
	jobs, err := s.slurmJobs(w, &cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("slurm directory: %w", err)
	}
	sub := filepath.Join(cfg.Dir, "submit.sh")
	if err := os.WriteFile(sub, []byte(cfg.SubmitScript(jobs)), 0o755); err != nil {
		return fmt.Errorf("writing submit script: %w", err)
	}
	fmt.Fprintf(w, "wrote %d batch script(s) and %s", len(jobs), sub)
	if cfg.Graph != "" {
		fmt.Fprintf(w, "; the jobs run the nodes of %s", cfg.Graph)
	}
	fmt.Fprintln(w)
	return nil
}

// slurmMem is the syntax of --mem, as the schema's cluster.mem.
var slurmMem = regexp.MustCompile(`^[0-9]+[KMGT]?$`)

var errNoRemote = errors.New("--executor slurm needs a shared cache every node can reach: --remote-cache file:///SHARED/DIR (or s3://BUCKET/PREFIX), or $LRMC_REMOTE_CACHE")
