package slurm

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"lrmc/digest"
	_ "lrmc/methods/all"
	"lrmc/methods/depth"
	"lrmc/methods/depth/shortgpt"
	"lrmc/methods/stats/capture"
	"lrmc/planner"
)

func TestEveryOpIsClassified(t *testing.T) {
	for op := range planner.OpVersions() {
		if _, ok := classes[op]; !ok {
			t.Errorf("op %s is in no class: add it to classes in classes.go (heavy ops get their own Slurm job)", op)
		}
	}
	if !IsHeavy(capture.OpBlock) || IsHeavy(planner.OpTokens) || IsHeavy(planner.OpModelLoad) || ClassOf(planner.OpRecover) != Training {
		t.Error("capture.block must be heavy, data.tokens and model.load cheap, recover.train training")
	}
	if !IsHeavy("some.new.op") {
		t.Error("an op missing from the table must count as heavy")
	}
}

// node makes a node whose key is derived from its name.
func node(name, op string, inputs ...*planner.Node) *planner.Node {
	return &planner.Node{Key: digest.Of([]byte(name)), Op: op, Label: name, Inputs: inputs}
}

// chain is a depth-pruning pipeline: tokens → windows → two captures →
// block influence → prune → perplexity, plus a dense perplexity whose
// result is cached.
type chain struct {
	g                                                  *planner.Graph
	src, tok, win, emb, cap0, cap1, bi, prune, ppl, dp *planner.Node
}

func newChain() chain {
	var c chain
	c.src = node("src", planner.OpSource)
	c.tok = node("tok", planner.OpTokens, c.src)
	c.win = node("win", planner.OpCalibWindows, c.tok)
	c.emb = node("emb", capture.OpEmbed, c.win)
	c.cap0 = node("cap0", capture.OpBlock, c.emb)
	c.cap1 = node("cap1", capture.OpBlock, c.cap0)
	c.bi = node("bi", shortgpt.OpBI, c.cap0, c.cap1)
	c.prune = node("prune", depth.OpPrune, c.bi)
	c.ppl = node("ppl", planner.OpPerplexity, c.prune, c.win)
	c.dp = node("dense ppl", planner.OpPerplexity, c.win)
	c.g = &planner.Graph{
		Nodes:   []*planner.Node{c.src, c.tok, c.win, c.emb, c.cap0, c.cap1, c.bi, c.prune, c.ppl, c.dp},
		Targets: []*planner.Node{c.ppl, c.dp},
	}
	return c
}

func statuses(g *planner.Graph, cached ...*planner.Node) map[*planner.Node]planner.Status {
	return g.Statuses(func(n *planner.Node) bool { return slices.Contains(cached, n) })
}

func names(jobs []*Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.Node.Label
	}
	return out
}

func fixed(*planner.Node) (int, int64) { return 2, 1024 }

func TestJobsCollapseEdgesThroughCheapNodes(t *testing.T) {
	c := newChain()
	jobs := Jobs(c.g, statuses(c.g, c.dp), fixed)
	if got, want := names(jobs), []string{"cap0", "cap1", "ppl"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("jobs %v, want %v (heavy nodes to run, in order; dense ppl is cached)", got, want)
	}
	deps := map[string][]string{}
	for _, j := range jobs {
		deps[j.Node.Label] = names(j.Deps)
	}
	// cap1 needs cap0 directly; ppl needs both through bi and prune
	// (cheap nodes, which get no job); the windows ppl also reads lead
	// to no heavy node.
	want := map[string][]string{"cap0": {}, "cap1": {"cap0"}, "ppl": {"cap0", "cap1"}}
	if !reflect.DeepEqual(deps, want) {
		t.Errorf("deps %v, want %v", deps, want)
	}

	// With cap1's result cached, the walk stops there: ppl needs only cap0
	// (through bi), and cap1 gets no job.
	jobs = Jobs(c.g, statuses(c.g, c.dp, c.cap1), fixed)
	deps = map[string][]string{}
	for _, j := range jobs {
		deps[j.Node.Label] = names(j.Deps)
	}
	if want := map[string][]string{"cap0": {}, "ppl": {"cap0"}}; !reflect.DeepEqual(deps, want) {
		t.Errorf("cap1 cached: deps %v, want %v", deps, want)
	}
	// Everything cached: no job.
	if jobs := Jobs(c.g, statuses(c.g, c.ppl, c.dp), fixed); len(jobs) != 0 {
		t.Errorf("all cached: jobs %v", names(jobs))
	}
}

func TestSubgraphHoldsTheAncestors(t *testing.T) {
	c := newChain()
	sub := Subgraph(c.g, c.bi)
	if got, want := sub.Nodes, []*planner.Node{c.src, c.tok, c.win, c.emb, c.cap0, c.cap1, c.bi}; !reflect.DeepEqual(got, want) {
		t.Errorf("subgraph %v", got)
	}
	if len(sub.Targets) != 1 || sub.Targets[0] != c.bi || sub.Outputs != nil {
		t.Errorf("subgraph targets %v outputs %v", sub.Targets, sub.Outputs)
	}
}

func TestEstimateMemory(t *testing.T) {
	for _, tc := range []struct {
		op    string
		bytes int64
		want  int64
	}{
		{planner.OpPerplexity, 0, 1024},
		{planner.OpPerplexity, 1 << 20, 2048},          // 1024+3 MiB rounds up
		{planner.OpPerplexity, 3 << 30, 1024 + 9*1024}, // a 3 GiB model file, 3 times
		{planner.OpRecover, 3 << 30, 1024 + 24*1024},
		{capture.OpBlock, 1000 << 20, 4096}, // 1024 + 3000 MiB → 4024 → 4096
	} {
		if got := EstimateMemMiB(tc.op, tc.bytes); got != tc.want {
			t.Errorf("EstimateMemMiB(%s, %d) = %d, want %d", tc.op, tc.bytes, got, tc.want)
		}
	}
	c := newChain()
	load := node("load", planner.OpModelLoad, node("model file", planner.OpSource), node("tokenizer", planner.OpSource))
	load.Inputs[0].Source, load.Inputs[1].Source = "/m.bin", "/tok.bin"
	ppl := node("ppl2", planner.OpPerplexity, load, c.win)
	sizes := map[string]int64{"/m.bin": 1000, "/tok.bin": 24, "src": 1 << 40}
	if got := ModelBytes(ppl, func(p string) int64 { return sizes[p] }); got != 1024 {
		t.Errorf("ModelBytes = %d, want 1024 (the model and tokenizer files, not the data)", got)
	}
	cfg := Config{MaxCPUs: 2, MaxMemMiB: 1500}
	if cpus, mem := cfg.Resources(ppl, 1<<30); cpus != 2 || mem != 1500 {
		t.Errorf("clamped resources %d CPUs %d MiB, want 2 and 1500", cpus, mem)
	}
	cfg = Config{CPUs: 8, MaxCPUs: 2}
	if cpus, _ := cfg.Resources(ppl, 0); cpus != 8 {
		t.Errorf("an explicit cpus is passed as is: got %d", cpus)
	}
}

func TestScriptRunsExecAndKeepsItsExitStatus(t *testing.T) {
	dir := t.TempDir()
	c := newChain()
	j := &Job{Node: c.cap1, CPUs: 2, MemMiB: 3072}
	// A stand-in for lrmc: records its arguments and that its cache
	// directory exists, then exits 3.
	bin := filepath.Join(dir, "my lrmc")
	if err := os.WriteFile(bin, []byte("#!/bin/bash\necho \"$@\" >\"$OUTFILE\"\n[ -d \"$2\" ] || mkdir -p \"$2\"\ntouch \"$2/x\"\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Binary: bin, Recipe: "/r/my recipe.cue", Graph: "/j/my graph.json", WorkDir: dir, Dir: "/logs", Remote: "file:///shared/cache", Partition: "gpu", Account: "lab", Time: "1:00:00"}
	script := cfg.Script(j)
	for _, want := range []string{
		"#!/bin/bash\n",
		"#SBATCH --job-name=lrmc-capture.block-" + j.Key12() + "\n",
		"#SBATCH --cpus-per-task=2\n",
		"#SBATCH --mem=3072M\n",
		"#SBATCH --output=/logs/" + j.Key12() + "-%j.out\n",
		"#SBATCH --partition=gpu\n", "#SBATCH --account=lab\n", "#SBATCH --time=1:00:00\n",
		"exec --graph '/j/my graph.json' " + c.cap1.Key.String() + "\n",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	// The job runs the planned graph, never the recipe.
	if strings.Contains(script, "recipe.cue") {
		t.Errorf("the script names the recipe:\n%s", script)
	}
	p := filepath.Join(dir, "job.sh")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", p)
	tmp := filepath.Join(dir, "tmp")
	os.Mkdir(tmp, 0o755)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "SLURM_JOB_ID=77", "OUTFILE="+filepath.Join(dir, "args"))
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("job script exit: %v, want status 3 (exec's)", err)
	}
	args, _ := os.ReadFile(filepath.Join(dir, "args"))
	want := "--cache " + tmp + "/lrmc-job-77 --remote-cache file:///shared/cache exec --graph /j/my graph.json " + c.cap1.Key.String() + "\n"
	if string(args) != want {
		t.Errorf("lrmc ran with %q, want %q", args, want)
	}
	if _, err := os.Stat(filepath.Join(tmp, "lrmc-job-77")); !os.IsNotExist(err) {
		t.Errorf("the job's private cache was not removed: %v", err)
	}
}

// Cancelling a job signals its whole process group (slurmstepd): the
// script must keep the job's private cache until lrmc has exited, and only
// then remove it. Before, the shell ran its EXIT trap at once and lrmc,
// still closing the cache, found its directory gone.
func TestScriptKeepsTheCacheUntilExecExits(t *testing.T) {
	dir := t.TempDir()
	c := newChain()
	j := &Job{Node: c.cap1, CPUs: 1, MemMiB: 1024}
	// A stand-in for lrmc: makes its cache, says it is ready, and on
	// SIGTERM takes a moment (as a close does) before looking at it.
	bin := filepath.Join(dir, "lrmc")
	fake := "#!/bin/bash\nmkdir -p \"$2\"\n" +
		"trap 'sleep 0.3; if [ -d \"$2\" ]; then echo present >\"$OUTFILE\"; else echo gone >\"$OUTFILE\"; fi; exit 143' TERM\n" +
		"touch \"$READY\"\nwhile :; do sleep 0.05; done\n"
	if err := os.WriteFile(bin, []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Binary: bin, Graph: "/j/g.json", WorkDir: dir, Dir: "/logs", Remote: "file:///shared/cache"}
	p := filepath.Join(dir, "job.sh")
	if err := os.WriteFile(p, []byte(cfg.Script(j)), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, ready, out := filepath.Join(dir, "tmp"), filepath.Join(dir, "ready"), filepath.Join(dir, "out")
	os.Mkdir(tmp, 0o755)
	cmd := exec.Command("bash", p)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "SLURM_JOB_ID=78", "OUTFILE="+out, "READY="+ready)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			t.Fatal("the stand-in lrmc never started")
		}
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 143 {
		t.Errorf("job script exit: %v, want status 143 (exec's)", err)
	}
	if got, _ := os.ReadFile(out); string(got) != "present\n" {
		t.Errorf("lrmc found its cache %q after SIGTERM, want present", got)
	}
	if _, err := os.Stat(filepath.Join(tmp, "lrmc-job-78")); !os.IsNotExist(err) {
		t.Errorf("the job's private cache was not removed after lrmc exited: %v", err)
	}
}

func TestSubmitArgsAndSubmitScript(t *testing.T) {
	c := newChain()
	jobs := Jobs(c.g, statuses(c.g, c.dp), fixed)
	jobs[0].ID, jobs[1].ID, jobs[2].ID = "11", "12", "13"
	cfg := Config{Dir: "/d", Remote: "file:///r", Recipe: "/x.cue"}
	if got, want := cfg.SubmitArgs(jobs[2]), []string{"--parsable", "--dependency=afterok:11:12", "/d/" + jobs[2].Script()}; !reflect.DeepEqual(got, want) {
		t.Errorf("SubmitArgs %q, want %q", got, want)
	}
	if got := cfg.SubmitArgs(jobs[0]); len(got) != 2 {
		t.Errorf("a job without dependencies: %q", got)
	}
	s := cfg.SubmitScript(jobs)
	want := "j_" + jobs[2].Key12() + "=$(sbatch --parsable --dependency=afterok:${j_" + jobs[0].Key12() + "}:${j_" + jobs[1].Key12() + "} " + jobs[2].Script() + " | cut -d';' -f1)\n"
	if !strings.Contains(s, want) {
		t.Errorf("submit.sh lacks %q:\n%s", want, s)
	}
}

func TestParseSlurmOutput(t *testing.T) {
	st := map[string]State{}
	parseSqueue("12 PENDING Dependency\n13 RUNNING None\n\n", st)
	if st["12"] != (State{State: "PENDING", Reason: "Dependency"}) || st["13"].State != "RUNNING" {
		t.Errorf("squeue: %v", st)
	}
	s, ok := parseScontrol("JobId=14 JobName=lrmc-x UserId=root(0) JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=137:0 RunTime=00:00:03\n")
	if !ok || s != (State{State: "FAILED", Reason: "NonZeroExitCode", ExitCode: "137:0"}) || s.OK() || !s.Final() {
		t.Errorf("scontrol: %+v", s)
	}
	if (State{State: "COMPLETING"}).Final() || !(State{State: "CANCELLED"}).Final() {
		t.Error("COMPLETING is not final, CANCELLED is")
	}
	if c, m, ok := parseSinfo("2 22900\n64+ 512000+\n"); !ok || c != 64 || m != 512000 {
		t.Errorf("sinfo: %d %d %v", c, m, ok)
	}
}

// fakeCluster scripts the states each poll returns.
type fakeCluster struct {
	mu        sync.Mutex
	next      int
	polls     []map[string]State // one per poll; the last repeats
	cancelled [][]string
	polled    chan struct{}
	errs      int         // polls that fail first
	onSubmit  func(n int) // called during the nth submission
}

func (f *fakeCluster) Submit(ctx context.Context, args []string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	if f.onSubmit != nil {
		f.onSubmit(f.next)
	}
	if ctx.Err() != nil {
		// exec.CommandContext would have killed sbatch: the job may be
		// queued, but its id is lost.
		return "", ctx.Err()
	}
	return string(rune('a' + f.next - 1)), nil
}

func (f *fakeCluster) States(_ context.Context, ids []string) (map[string]State, error) {
	f.mu.Lock()
	if f.errs > 0 {
		f.errs--
		f.mu.Unlock()
		return nil, errors.New("slurm_load_jobs error: Unable to contact slurm controller")
	}
	p := f.polls[0]
	if len(f.polls) > 1 {
		f.polls = f.polls[1:]
	}
	f.mu.Unlock()
	if f.polled != nil {
		select {
		case f.polled <- struct{}{}:
		default:
		}
	}
	return p, nil
}

func (f *fakeCluster) Cancel(_ context.Context, ids []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancelled = append(f.cancelled, ids)
	return nil
}

func (f *fakeCluster) Largest(context.Context, string) (int, int64, bool) { return 0, 0, false }

func TestWaitCancelsTheDependentsOfAFailedJob(t *testing.T) {
	c := newChain()
	jobs := Jobs(c.g, statuses(c.g), fixed) // cap0 a, cap1 b, ppl c, dense ppl d
	fc := &fakeCluster{polls: []map[string]State{
		{"a": {State: "RUNNING"}, "b": {State: "PENDING"}, "c": {State: "PENDING"}, "d": {State: "RUNNING"}},
		{"a": {State: "FAILED", Reason: "NonZeroExitCode", ExitCode: "1:0"}, "b": {State: "PENDING"}, "c": {State: "PENDING"}, "d": {State: "RUNNING"}},
		// d has left Slurm's memory; its result is in the cache.
		{},
	}}
	var out strings.Builder
	r := &Runner{Cluster: fc, Config: Config{Dir: "/logs"}, Interval: time.Millisecond, Out: &out,
		Done: func(n *planner.Node) bool { return n == c.dp }}
	err := r.Run(context.Background(), jobs)
	var re *RunError
	if !errors.As(err, &re) {
		t.Fatalf("Run: %v, want a *RunError", err)
	}
	if len(re.Failures) != 1 || re.Failures[0].Job.Node != c.cap0 {
		t.Fatalf("failures %v", re.Failures)
	}
	msg := err.Error()
	for _, want := range []string{"job a ", "FAILED, exit 1:0, NonZeroExitCode", "node cap0 (capture.block " + jobs[0].Key12() + ")", "log: /logs/" + jobs[0].Key12() + "-a.out", "cancelled 2 dependent job(s): b c"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if !reflect.DeepEqual(fc.cancelled, [][]string{{"b", "c"}}) {
		t.Errorf("scancel calls %v, want [[b c]]", fc.cancelled)
	}
	if !strings.Contains(out.String(), "d          COMPLETED") {
		t.Errorf("the job Slurm forgot, whose result is cached, is not shown completed:\n%s", out.String())
	}
}

func TestWaitCancelsEverythingOnInterrupt(t *testing.T) {
	c := newChain()
	jobs := Jobs(c.g, statuses(c.g), fixed)
	fc := &fakeCluster{polls: []map[string]State{
		{"a": {State: "COMPLETED"}, "b": {State: "RUNNING"}, "c": {State: "PENDING"}, "d": {State: "PENDING"}},
	}, polled: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-fc.polled; cancel() }()
	r := &Runner{Cluster: fc, Interval: time.Hour}
	if err := r.Run(ctx, jobs); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want context.Canceled", err)
	}
	if !reflect.DeepEqual(fc.cancelled, [][]string{{"b", "c", "d"}}) {
		t.Errorf("scancel calls %v, want the unfinished jobs [[b c d]]", fc.cancelled)
	}
}

// An interrupt that lands while sbatch runs must not lose the job it is
// submitting: that job is cancelled with the others, and nothing later is
// submitted.
func TestSubmitInterruptedMidSbatchCancelsWhatWasSubmitted(t *testing.T) {
	c := newChain()
	jobs := Jobs(c.g, statuses(c.g), fixed)
	ctx, cancel := context.WithCancel(context.Background())
	fc := &fakeCluster{onSubmit: func(n int) {
		if n == 2 {
			cancel()
		}
	}}
	r := &Runner{Cluster: fc, Interval: time.Hour}
	if err := r.Run(ctx, jobs); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want context.Canceled", err)
	}
	if fc.next != 2 {
		t.Errorf("%d submissions, want 2 (none after the interrupt)", fc.next)
	}
	if !reflect.DeepEqual(fc.cancelled, [][]string{{"a", "b"}}) {
		t.Errorf("scancel calls %v, want both submitted jobs [[a b]]", fc.cancelled)
	}
}

func TestInputsAreTheCachedFrontier(t *testing.T) {
	c := newChain()
	// The captures and the windows are cached: the captures feed bi
	// (recomputed inside ppl's job), the windows feed both perplexities;
	// the tokens behind the windows are no input.
	st := statuses(c.g, c.cap0, c.cap1, c.win)
	jobs := Jobs(c.g, st, fixed)
	if got, want := names(jobs), []string{"ppl", "dense ppl"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("jobs %v, want %v", got, want)
	}
	var got []string
	for _, n := range Inputs(jobs, st) {
		got = append(got, n.Label)
	}
	if want := []string{"cap0", "cap1", "win"}; !reflect.DeepEqual(got, want) {
		t.Errorf("inputs %v, want %v", got, want)
	}
}

func TestWaitRidesOutFailedPolls(t *testing.T) {
	c := newChain()
	jobs := Jobs(c.g, statuses(c.g), fixed)
	done := map[string]State{"a": {State: "COMPLETED"}, "b": {State: "COMPLETED"}, "c": {State: "COMPLETED"}, "d": {State: "COMPLETED"}}
	fc := &fakeCluster{errs: 3, polls: []map[string]State{done}}
	var out strings.Builder
	r := &Runner{Cluster: fc, Interval: time.Millisecond, Out: &out}
	if err := r.Run(context.Background(), jobs); err != nil {
		t.Fatalf("Run after 3 failed polls: %v", err)
	}
	if n := strings.Count(out.String(), "Unable to contact slurm controller (retrying)"); n != 3 || len(fc.cancelled) != 0 {
		t.Errorf("%d retries reported, %v cancelled:\n%s", n, fc.cancelled, out.String())
	}
	fc = &fakeCluster{errs: maxFailedPolls, polls: []map[string]State{done}}
	r = &Runner{Cluster: fc, Interval: time.Millisecond}
	if err := r.Run(context.Background(), jobs); err == nil || !strings.Contains(err.Error(), "the jobs were left running") || len(fc.cancelled) != 0 {
		t.Errorf("Run after %d failed polls: %v, cancelled %v", maxFailedPolls, err, fc.cancelled)
	}
}
