package slurm

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"lrmc/planner"
)

// Runner submits jobs and waits for them, showing their states.
type Runner struct {
	Cluster Cluster
	Config  Config
	// Interval between polls (default 5s).
	Interval time.Duration
	// Done reports whether a node's result is in the shared cache: the
	// truth about a job Slurm has already forgotten.
	Done func(*planner.Node) bool
	// Out receives the live display: a line per job state change and a
	// tally after each poll that changed something.
	Out io.Writer
}

// Failure is a job that did not complete.
type Failure struct {
	Job   *Job
	State State
	Log   string
}

func (f Failure) Error() string {
	how := f.State.State
	if f.State.ExitCode != "" && f.State.ExitCode != "0:0" {
		how += ", exit " + f.State.ExitCode
	}
	if f.State.Reason != "" && f.State.Reason != "None" {
		how += ", " + f.State.Reason
	}
	return fmt.Sprintf("job %s %s (%s): node %s (%s %s); log: %s",
		f.Job.ID, f.Job.Name(), how, f.Job.Node.Label, f.Job.Node.Op, f.Job.Key12(), f.Log)
}

// RunError lists the jobs that failed and the dependents cancelled for them.
type RunError struct {
	Failures  []Failure
	Cancelled []*Job
}

func (e *RunError) Error() string {
	msgs := make([]string, len(e.Failures))
	for i, f := range e.Failures {
		msgs[i] = f.Error()
	}
	s := strings.Join(msgs, "\n")
	if len(e.Cancelled) > 0 {
		ids := make([]string, len(e.Cancelled))
		for i, j := range e.Cancelled {
			ids[i] = j.ID
		}
		s += fmt.Sprintf("\ncancelled %d dependent job(s): %s", len(ids), strings.Join(ids, " "))
	}
	return s
}

// Submit submits jobs in order (each after its dependencies), setting
// their IDs. If a submission fails, or ctx is cancelled (Ctrl-C), the jobs
// already submitted are cancelled.
//
// sbatch itself runs on a context that Ctrl-C does not cancel: killed
// after slurmctld accepted the job but before it printed the id, it would
// leave a job this apply could never scancel. Submissions are short, so
// the interrupt is honoured between them instead.
func (r *Runner) Submit(ctx context.Context, jobs []*Job) error {
	for i, j := range jobs {
		if err := ctx.Err(); err != nil {
			r.cancel(jobs[:i])
			return err
		}
		id, err := r.Cluster.Submit(context.WithoutCancel(ctx), r.Config.SubmitArgs(j))
		if err != nil {
			r.cancel(jobs[:i])
			return fmt.Errorf("submitting %s: %w", j.Name(), err)
		}
		j.ID = id
		r.printf("submitted %s %s (%s)\n", j.ID, j.Name(), j.Node.Label)
	}
	if err := ctx.Err(); err != nil {
		r.cancel(jobs)
		return err
	}
	return nil
}

// Wait polls the jobs until each has ended. A failed job's dependents
// are cancelled (they can never run) and Wait goes on until the others
// end, so their results are in the shared cache for the next apply; it
// then returns a *RunError. When ctx is cancelled (Ctrl-C) every job not
// yet ended is cancelled and ctx's error returned.
func (r *Runner) Wait(ctx context.Context, jobs []*Job) error {
	interval := r.Interval
	if interval <= 0 {
		interval = 5 * time.Second
	}
	users := map[*Job][]*Job{}
	for _, j := range jobs {
		for _, d := range j.Deps {
			users[d] = append(users[d], j)
		}
	}
	last := map[*Job]string{}
	ended := map[*Job]bool{}
	failedPolls := 0
	runErr := &RunError{}
	for {
		var ids []string
		for _, j := range jobs {
			if !ended[j] {
				ids = append(ids, j.ID)
			}
		}
		if len(ids) == 0 {
			break
		}
		states, err := r.Cluster.States(ctx, ids)
		if ctx.Err() != nil {
			r.cancelUnended(jobs, ended)
			return ctx.Err()
		}
		if err != nil {
			// slurmctld may be restarting: the jobs go on regardless,
			// so a few failed polls in a row are only reported.
			if failedPolls++; failedPolls >= maxFailedPolls {
				return fmt.Errorf("polling jobs (%d tries): %w; the jobs were left running", failedPolls, err)
			}
			r.printf("lrmc: polling jobs: %v (retrying)\n", err)
			if !r.sleep(ctx, interval) {
				r.cancelUnended(jobs, ended)
				return ctx.Err()
			}
			continue
		}
		failedPolls = 0
		changed := false
		for _, j := range jobs { // in order: a failure before its dependents
			if ended[j] {
				continue
			}
			s, known := states[j.ID]
			if !known {
				// Forgotten by Slurm: its result says how it ended.
				s = State{State: "FAILED", Reason: "gone from Slurm, result not in the shared cache"}
				if r.Done != nil && r.Done(j.Node) {
					s = State{State: "COMPLETED"}
				}
			}
			if s.State != last[j] {
				last[j] = s.State
				changed = true
				r.printf("  %-10s %-11s %s\n", j.ID, s.State, j.Name())
			}
			if !s.Final() {
				continue
			}
			ended[j] = true
			if s.OK() {
				continue
			}
			runErr.Failures = append(runErr.Failures, Failure{Job: j, State: s, Log: r.Config.LogPath(j)})
			var doomed []*Job
			var mark func(*Job)
			mark = func(d *Job) {
				for _, u := range users[d] {
					if !ended[u] {
						ended[u] = true
						doomed = append(doomed, u)
						mark(u)
					}
				}
			}
			mark(j)
			if len(doomed) > 0 {
				r.cancel(doomed)
				runErr.Cancelled = append(runErr.Cancelled, doomed...)
				for _, u := range doomed {
					last[u] = "CANCELLED"
					r.printf("  %-10s %-11s %s (needs failed job %s)\n", u.ID, "CANCELLED", u.Name(), j.ID)
				}
			}
		}
		if changed {
			r.tally(jobs, last)
		}
		if len(ended) == len(jobs) {
			break
		}
		if !r.sleep(ctx, interval) {
			r.cancelUnended(jobs, ended)
			return ctx.Err()
		}
	}
	if len(runErr.Failures) > 0 {
		return runErr
	}
	return nil
}

// maxFailedPolls is how many polls in a row may fail before Wait gives up.
const maxFailedPolls = 10

// sleep waits d, or until ctx is done (false).
func (r *Runner) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Run submits jobs and waits for them.
func (r *Runner) Run(ctx context.Context, jobs []*Job) error {
	if err := r.Submit(ctx, jobs); err != nil {
		return err
	}
	return r.Wait(ctx, jobs)
}

func (r *Runner) tally(jobs []*Job, last map[*Job]string) {
	count := map[string]int{}
	var order []string
	for _, j := range jobs {
		s := last[j]
		if count[s] == 0 {
			order = append(order, s)
		}
		count[s]++
	}
	parts := make([]string, len(order))
	for i, s := range order {
		parts[i] = fmt.Sprintf("%d %s", count[s], strings.ToLower(s))
	}
	r.printf("slurm: %s\n", strings.Join(parts, ", "))
}

func (r *Runner) cancelUnended(jobs []*Job, ended map[*Job]bool) {
	var live []*Job
	for _, j := range jobs {
		if !ended[j] && j.ID != "" {
			live = append(live, j)
		}
	}
	r.cancel(live)
}

// cancel scancels jobs, on a fresh context: it also runs after Ctrl-C.
func (r *Runner) cancel(jobs []*Job) {
	if len(jobs) == 0 {
		return
	}
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	ctx, done := context.WithTimeout(context.Background(), 30*time.Second)
	defer done()
	if err := r.Cluster.Cancel(ctx, ids); err != nil {
		r.printf("lrmc: cancelling jobs %s: %v\n", strings.Join(ids, " "), err)
		return
	}
	r.printf("cancelled %s\n", strings.Join(ids, " "))
}

func (r *Runner) printf(format string, args ...any) {
	if r.Out != nil {
		fmt.Fprintf(r.Out, format, args...)
	}
}
