package slurm

import (
	"fmt"

	"lrmc/planner"
)

// Job is one batch job: a heavy node to run with `lrmc exec`.
type Job struct {
	Node *planner.Node
	// Deps are the jobs whose nodes this one needs: its heavy ancestors
	// that also run, found through any cheap nodes between them.
	Deps []*Job
	// Resources requested from Slurm.
	CPUs   int
	MemMiB int64
	// ID is Slurm's job id once submitted.
	ID string
}

// Key12 is the short key that names the job and its log.
func (j *Job) Key12() string { return j.Node.Key.String()[:12] }

// Name is the job's Slurm name.
func (j *Job) Name() string { return fmt.Sprintf("lrmc-%s-%s", j.Node.Op, j.Key12()) }

// Script is the batch script's file name.
func (j *Job) Script() string { return j.Name() + ".sh" }

// Jobs decides the jobs of g given what executing it would do with each
// node (planner.Statuses against the shared cache): one job per heavy node
// that will run, in g's topological order, so that every job comes after
// the jobs it depends on. A cheap node that will run is no job: the job
// that needs it recomputes it (and the collecting apply, for the outputs),
// and the edges go through it to the heavy nodes behind it. Cached nodes
// cut the walk: a job reads them from the shared cache.
func Jobs(g *planner.Graph, st map[*planner.Node]planner.Status, res func(*planner.Node) (cpus int, memMiB int64)) []*Job {
	byNode := map[*planner.Node]*Job{}
	var jobs []*Job
	for _, n := range g.Nodes {
		if st[n] != planner.Run || !IsHeavy(n.Op) {
			continue
		}
		j := &Job{Node: n}
		j.CPUs, j.MemMiB = res(n)
		seen := map[*planner.Node]bool{}
		var walk func(m *planner.Node)
		walk = func(m *planner.Node) {
			for _, in := range m.Inputs {
				if seen[in] || st[in] != planner.Run {
					continue
				}
				seen[in] = true
				if d, ok := byNode[in]; ok {
					j.Deps = append(j.Deps, d)
					continue // its own deps are ordered before it already
				}
				walk(in)
			}
		}
		walk(n)
		byNode[n] = j
		jobs = append(jobs, j)
	}
	return jobs
}

// Subgraph is the part of g that resolving targets needs: the targets and
// all their ancestors, in g's order, with no outputs. `lrmc exec` runs it;
// the executor resolves each cached ancestor from the cache and stops there.
func Subgraph(g *planner.Graph, targets ...*planner.Node) *planner.Graph {
	need := map[*planner.Node]bool{}
	var mark func(n *planner.Node)
	mark = func(n *planner.Node) {
		if need[n] {
			return
		}
		need[n] = true
		for _, in := range n.Inputs {
			mark(in)
		}
	}
	for _, t := range targets {
		mark(t)
	}
	sub := &planner.Graph{Targets: targets, OutDir: g.OutDir}
	for _, n := range g.Nodes {
		if need[n] {
			sub.Nodes = append(sub.Nodes, n)
		}
	}
	return sub
}

// Inputs are the cached nodes the jobs read: walking back from each job's
// node through the nodes that will run (recomputed inside the job, or
// jobs of their own), the first cached node on every path. Those entries
// must be in the shared cache, or a job recomputes them.
func Inputs(jobs []*Job, st map[*planner.Node]planner.Status) []*planner.Node {
	seen := map[*planner.Node]bool{}
	var out []*planner.Node
	var walk func(n *planner.Node)
	walk = func(n *planner.Node) {
		for _, in := range n.Inputs {
			if seen[in] {
				continue
			}
			seen[in] = true
			switch {
			case st[in] == planner.Cached:
				out = append(out, in)
			case st[in] == planner.Run:
				walk(in)
			}
		}
	}
	for _, j := range jobs {
		walk(j.Node)
	}
	return out
}
