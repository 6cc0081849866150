package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// Cluster is what the executor asks of Slurm.
type Cluster interface {
	// Submit runs sbatch with args and returns the new job's id.
	Submit(ctx context.Context, args []string) (id string, err error)
	// States returns the state of each job Slurm still knows (squeue,
	// then scontrol show job for those that left the queue). A job absent
	// from the map is one Slurm has forgotten.
	States(ctx context.Context, ids []string) (map[string]State, error)
	// Cancel cancels jobs (scancel).
	Cancel(ctx context.Context, ids []string) error
	// Largest returns the CPUs and memory (MiB) of the partition's
	// largest node (sinfo; partition "" for the default ones); ok is false
	// when Slurm does not say.
	Largest(ctx context.Context, partition string) (cpus int, memMiB int64, ok bool)
}

// State is a job's state as Slurm reports it.
type State struct {
	State    string // PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, …
	Reason   string // why it pends, or why it ended
	ExitCode string // "0:0" once known (scontrol)
}

// Final reports whether the job has ended.
func (s State) Final() bool { return s.State != "" && !active[s.State] }

// OK reports whether the job ended well.
func (s State) OK() bool { return s.State == "COMPLETED" }

// active are the states of a job that has not ended yet.
var active = map[string]bool{
	"PENDING": true, "RUNNING": true, "CONFIGURING": true, "COMPLETING": true,
	"SUSPENDED": true, "REQUEUED": true, "REQUEUE_HOLD": true, "REQUEUE_FED": true,
	"RESIZING": true, "SIGNALING": true, "STAGE_OUT": true, "STOPPED": true,
	"RESV_DEL_HOLD": true,
}

// Commands runs the Slurm commands found on PATH. Slurm's accounting
// (sacct) is not used: many clusters, and test clusters, run without it.
type Commands struct{}

func (Commands) run(ctx context.Context, name string, args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return out.String(), nil
}

// Submit implements Cluster.
func (c Commands) Submit(ctx context.Context, args []string) (string, error) {
	out, err := c.run(ctx, "sbatch", args...)
	if err != nil {
		return "", err
	}
	// --parsable prints "id" or "id;cluster".
	id, _, _ := strings.Cut(strings.TrimSpace(out), ";")
	if id == "" || strings.ContainsAny(id, " \n") {
		return "", fmt.Errorf("sbatch %s: unexpected output %q (want a job id)", strings.Join(args, " "), out)
	}
	return id, nil
}

// States implements Cluster.
func (c Commands) States(ctx context.Context, ids []string) (map[string]State, error) {
	states := map[string]State{}
	if len(ids) == 0 {
		return states, nil
	}
	// squeue fails when every id has left the queue; those are asked of
	// scontrol below.
	out, err := c.run(ctx, "squeue", "-h", "-j", strings.Join(ids, ","), "-o", "%i %T %r")
	if err == nil {
		parseSqueue(out, states)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	for _, id := range ids {
		if s, ok := states[id]; ok && !s.Final() {
			continue
		}
		out, err := c.run(ctx, "scontrol", "show", "job", "-o", id)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if strings.Contains(err.Error(), "Invalid job id") {
				continue // forgotten (MinJobAge passed): the caller asks the cache
			}
			// slurmctld unreachable, say: no answer is no verdict.
			return nil, err
		}
		if s, ok := parseScontrol(out); ok {
			states[id] = s
		}
	}
	return states, nil
}

// parseSqueue reads `squeue -h -o "%i %T %r"` lines.
func parseSqueue(out string, into map[string]State) {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		s := State{State: f[1]}
		if len(f) > 2 {
			s.Reason = strings.Join(f[2:], " ")
		}
		into[f[0]] = s
	}
}

// parseScontrol reads `scontrol show job -o ID`: one line of Key=Value.
func parseScontrol(out string) (State, bool) {
	var s State
	for _, f := range strings.Fields(out) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		switch k {
		case "JobState":
			s.State = v
		case "Reason":
			s.Reason = v
		case "ExitCode":
			s.ExitCode = v
		}
	}
	return s, s.State != ""
}

// Cancel implements Cluster.
func (c Commands) Cancel(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := c.run(ctx, "scancel", ids...)
	return err
}

// Largest implements Cluster.
func (c Commands) Largest(ctx context.Context, partition string) (int, int64, bool) {
	args := []string{"-h", "-o", "%c %m"}
	if partition != "" {
		args = append(args, "-p", partition)
	}
	out, err := c.run(ctx, "sinfo", args...)
	if err != nil {
		return 0, 0, false
	}
	return parseSinfo(out)
}

// parseSinfo reads `sinfo -h -o "%c %m"` lines (CPUs and MiB per node,
// "+" marking a range's upper end) and keeps the largest of each.
func parseSinfo(out string) (cpus int, memMiB int64, ok bool) {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		c, err1 := strconv.Atoi(strings.TrimSuffix(f[0], "+"))
		m, err2 := strconv.ParseInt(strings.TrimSuffix(f[1], "+"), 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		cpus, memMiB, ok = max(cpus, c), max(memMiB, m), true
	}
	return cpus, memMiB, ok
}

// ErrNoSlurm says sbatch is not on PATH.
var ErrNoSlurm = errors.New("sbatch not found on PATH: --executor slurm runs on a Slurm login node (or use lrmc plan --emit slurm DIR to write the scripts)")

// Available checks that sbatch can be run.
func Available() error {
	if _, err := exec.LookPath("sbatch"); err != nil {
		return ErrNoSlurm
	}
	return nil
}
