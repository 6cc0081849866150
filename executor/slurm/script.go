package slurm

import (
	"fmt"
	"path/filepath"
	"strings"

	"lrmc/planner"
)

// DefaultCPUs is --cpus-per-task when neither the recipe's cluster block
// nor a flag sets cpus: lrmc's kernels use every CPU the job is given.
const DefaultCPUs = 4

// Config is what every job's script shares.
type Config struct {
	// Binary is the absolute path of the lrmc binary the jobs run (the
	// running one, os.Executable), Graph the absolute path of the planned
	// graph they run nodes of (lrmc exec --graph) and WorkDir the
	// directory they start in: all three, and the files the graph reads,
	// must be visible at the same paths on the compute nodes (a shared
	// filesystem). Recipe, the recipe's absolute path, is only named in
	// comments and in the command that collects the results: jobs never
	// read it, so editing it while they are queued changes nothing they do.
	Binary, Graph, WorkDir, Recipe string
	// Dir holds the scripts and the jobs' logs.
	Dir string
	// Remote is the shared cache's URL, passed to every job.
	Remote string
	// Partition, Account and Time (a Slurm time limit) are passed when set.
	Partition, Account, Time string
	// CPUs per job (0: DefaultCPUs); Mem overrides the estimate (Slurm's
	// syntax: "16G", "4000M").
	CPUs int
	Mem  string
	// MaxCPUs and MaxMemMiB are the largest node's (0: unknown).
	MaxCPUs   int
	MaxMemMiB int64
}

// Resources returns a node's CPUs and memory request from cfg and the
// estimate (see EstimateMemMiB). The defaults are clamped to the largest
// node (MaxCPUs, MaxMemMiB, when known), where Slurm would otherwise
// refuse the job or leave it pending forever; values the recipe or flags
// set are passed as they are, for Slurm to judge.
func (c Config) Resources(n *planner.Node, modelBytes int64) (cpus int, memMiB int64) {
	cpus = c.CPUs
	if cpus <= 0 {
		cpus = DefaultCPUs
		if c.MaxCPUs > 0 {
			cpus = min(cpus, c.MaxCPUs)
		}
	}
	memMiB = EstimateMemMiB(n.Op, modelBytes)
	if c.MaxMemMiB > 0 {
		memMiB = min(memMiB, c.MaxMemMiB)
	}
	return cpus, memMiB
}

// EstimateMemMiB is the memory a heavy node asks for: 1 GiB for the
// runtime, the data and the activations, plus 3 times the model's file
// size (the weights, a pruned copy and working buffers), or 8 times for
// training ops (weights, gradients, two Adam moments and the copies
// around them). Rounded up to a whole GiB. lrmc has no measured memory
// model per op yet; the recipe's cluster.mem overrides the estimate.
func EstimateMemMiB(op string, modelBytes int64) int64 {
	factor := int64(3)
	if ClassOf(op) == Training {
		factor = 8
	}
	mib := 1024 + (factor*modelBytes+(1<<20)-1)>>20
	return (mib + 1023) / 1024 * 1024
}

// ModelBytes is the size of the model files n's results are computed
// from: the sources of every model.load among n's ancestors (size gives a
// source's bytes).
func ModelBytes(n *planner.Node, size func(path string) int64) int64 {
	seen := map[*planner.Node]bool{}
	var total int64
	var walk func(m *planner.Node)
	walk = func(m *planner.Node) {
		if seen[m] {
			return
		}
		seen[m] = true
		for _, in := range m.Inputs {
			if m.Op == planner.OpModelLoad && in.IsSource() && !seen[in] {
				seen[in] = true
				total += size(in.Source)
			}
			walk(in)
		}
	}
	walk(n)
	return total
}

// LogPattern is the job's --output: Slurm replaces %j with the job id.
func (c Config) LogPattern(j *Job) string {
	return filepath.Join(c.Dir, j.Key12()+"-%j.out")
}

// LogPath is the log of a submitted job.
func (c Config) LogPath(j *Job) string {
	return strings.ReplaceAll(c.LogPattern(j), "%j", j.ID)
}

// Script renders j's batch script. Dependencies are not in it: they name
// job ids, known only at submission (sbatch --dependency, see SubmitArgs).
// The job runs its node from the planned graph (Graph), not the recipe:
// what was planned is what runs, and exec refuses a graph that was edited
// or whose files changed. The job uses a private local cache, removed when it exits, so that jobs
// on one machine never wait for each other's cache lock; its results reach
// the collecting apply through the shared cache.
func (c Config) Script(j *Job) string {
	var b strings.Builder
	b.WriteString("#!/bin/bash\n")
	fmt.Fprintf(&b, "#SBATCH --job-name=%s\n", j.Name())
	fmt.Fprintf(&b, "#SBATCH --cpus-per-task=%d\n", j.CPUs)
	if c.Mem != "" {
		fmt.Fprintf(&b, "#SBATCH --mem=%s\n", c.Mem)
	} else {
		fmt.Fprintf(&b, "#SBATCH --mem=%dM\n", j.MemMiB)
	}
	fmt.Fprintf(&b, "#SBATCH --output=%s\n", c.LogPattern(j))
	if c.Partition != "" {
		fmt.Fprintf(&b, "#SBATCH --partition=%s\n", c.Partition)
	}
	if c.Account != "" {
		fmt.Fprintf(&b, "#SBATCH --account=%s\n", c.Account)
	}
	if c.Time != "" {
		fmt.Fprintf(&b, "#SBATCH --time=%s\n", c.Time)
	}
	// A job whose dependency failed is cancelled by Slurm rather than
	// left pending forever (the collecting apply also cancels them).
	b.WriteString("#SBATCH --kill-on-invalid-dep=yes\n")
	fmt.Fprintf(&b, "# lrmc: %s (%s %s)", j.Node.Label, j.Node.Op, j.Key12())
	if len(j.Node.Runs) > 0 {
		fmt.Fprintf(&b, " for %s", strings.Join(j.Node.Runs, ", "))
	}
	b.WriteString("\nset -eu\n")
	fmt.Fprintf(&b, "cd %s\n", quote(c.WorkDir))
	b.WriteString("cache=\"${TMPDIR:-/tmp}/lrmc-job-${SLURM_JOB_ID:-$$}\"\n")
	b.WriteString("trap 'rm -rf \"$cache\"' EXIT\n")
	// scancel signals the whole job, this shell and lrmc alike. Without a
	// handler the shell would run its EXIT trap at once and remove the
	// cache under the lrmc still closing it; with one (a handler, not an
	// ignored signal, which lrmc would inherit) it waits for lrmc first.
	b.WriteString("trap : TERM INT\n")
	fmt.Fprintf(&b, "%s --cache \"$cache\" --remote-cache %s exec --graph %s %s\n",
		quote(c.Binary), quote(c.Remote), quote(c.Graph), j.Node.Key)
	return b.String()
}

// SubmitArgs are sbatch's arguments for j once its dependencies have ids.
func (c Config) SubmitArgs(j *Job) []string {
	args := []string{"--parsable"}
	if ids := depIDs(j); ids != "" {
		args = append(args, "--dependency=afterok:"+ids)
	}
	return append(args, filepath.Join(c.Dir, j.Script()))
}

func depIDs(j *Job) string {
	ids := make([]string, len(j.Deps))
	for i, d := range j.Deps {
		ids[i] = d.ID
	}
	return strings.Join(ids, ":")
}

// SubmitScript renders DIR/submit.sh, which submits jobs in order, each
// with its dependencies, as apply --executor slurm would (without waiting
// or collecting: run lrmc apply with the shared cache once they are done).
func (c Config) SubmitScript(jobs []*Job) string {
	var b strings.Builder
	b.WriteString("#!/bin/bash\n# Submits the heavy nodes of " + c.Recipe + " to Slurm; written by lrmc plan --emit slurm.\n")
	b.WriteString("# The jobs run the nodes of the graph planned then, " + c.Graph + ", whatever the recipe says by the time they run.\n")
	b.WriteString("# When the jobs are done, collect with: lrmc --remote-cache " + quote(c.Remote) + " apply " + quote(c.Recipe) + "\n")
	b.WriteString("set -eu\n")
	fmt.Fprintf(&b, "cd %s\n", quote(c.Dir))
	for _, j := range jobs {
		dep := ""
		if len(j.Deps) > 0 {
			refs := make([]string, len(j.Deps))
			for i, d := range j.Deps {
				refs[i] = "${j_" + d.Key12() + "}"
			}
			dep = " --dependency=afterok:" + strings.Join(refs, ":")
		}
		// --parsable prints "id" or "id;cluster".
		fmt.Fprintf(&b, "j_%s=$(sbatch --parsable%s %s | cut -d';' -f1)\n", j.Key12(), dep, j.Script())
		fmt.Fprintf(&b, "echo \"submitted $j_%s %s\"\n", j.Key12(), j.Name())
	}
	return b.String()
}

// quote quotes s for the shell.
func quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+=:,@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
