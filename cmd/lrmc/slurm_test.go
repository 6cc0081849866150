package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"lrmc/cache"
	"lrmc/executor/slurm"
	"lrmc/methods/depth/shortgpt"
	"lrmc/methods/stats/capture"
	"lrmc/planner"
)

// fakeSlurm puts testdata/fakeslurm's sbatch, squeue, scontrol, scancel
// and sinfo first on PATH and returns the directory where they record
// the jobs. Their jobs run this test binary as lrmc (TestMain).
func fakeSlurm(t *testing.T) string {
	t.Helper()
	bin, err := filepath.Abs(filepath.Join("testdata", "fakeslurm"))
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("FAKESLURM_DIR", state)
	t.Setenv("FAKESLURM_FAIL", "")
	t.Setenv("LRMC_TEST_AS_LRMC", "1")
	t.Setenv("TMPDIR", t.TempDir())
	return state
}

// fakeJob is what the fake sbatch recorded of one submission.
type fakeJob struct {
	id, name, state string
	deps            []string
	script          string
}

// fakeJobs reads the submissions in order.
func fakeJobs(t *testing.T, state string) []fakeJob {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "order"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var jobs []fakeJob
	for _, id := range strings.Fields(string(b)) {
		d := filepath.Join(state, id)
		j := fakeJob{id: id, name: strings.TrimSpace(string(mustRead(t, filepath.Join(d, "name")))),
			state: strings.TrimSpace(string(mustRead(t, filepath.Join(d, "state")))), script: string(mustRead(t, filepath.Join(d, "script")))}
		for _, a := range strings.Split(string(mustRead(t, filepath.Join(d, "args"))), "\n") {
			if ids, ok := strings.CutPrefix(a, "--dependency=afterok:"); ok {
				j.deps = strings.Split(ids, ":")
			}
		}
		jobs = append(jobs, j)
	}
	return jobs
}

// jobNameOf is the name lrmc gives n's job.
func jobNameOf(n *planner.Node) string { return "lrmc-" + n.Op + "-" + n.Key.String()[:12] }

// slurmRecipe writes the depth recipe the Slurm tests apply: ShortGPT and
// SLEB share five block captures; SLEB steps on them; three perplexities.
func slurmRecipe(t *testing.T, dir string) string {
	t.Helper()
	return writeRunsRecipe(t, dir, "r.cue", `"shortgpt-1": prune: {paradigm: "depth", method: "shortgpt", remove: 1}
	"sleb-1": prune: {paradigm: "depth", method: "sleb", remove: 1}`)
}

// checkEdges checks that the recorded dependencies are the DAG's: each
// job depends exactly on the jobs of the heavy nodes reached from its node
// through nodes that are no job.
func checkEdges(t *testing.T, g *planner.Graph, jobs []fakeJob) {
	t.Helper()
	idOf := map[string]string{}
	for _, j := range jobs {
		idOf[j.name] = j.id
	}
	for _, n := range g.Nodes {
		id, ok := idOf[jobNameOf(n)]
		if !ok {
			continue
		}
		var want []string
		seen := map[*planner.Node]bool{}
		var walk func(m *planner.Node)
		walk = func(m *planner.Node) {
			for _, in := range m.Inputs {
				if seen[in] {
					continue
				}
				seen[in] = true
				if dep, ok := idOf[jobNameOf(in)]; ok {
					want = append(want, dep)
				} else {
					walk(in)
				}
			}
		}
		walk(n)
		var got []string
		for _, j := range jobs {
			if j.id == id {
				got = slices.Clone(j.deps)
			}
		}
		sort.Strings(want)
		sort.Strings(got)
		if !slices.Equal(got, want) {
			t.Errorf("job %s (%s %s): afterok %v, want %v", id, n.Op, n.Label, got, want)
		}
	}
}

func TestApplyExecutorSlurmWithFakeSlurm(t *testing.T) {
	// The reference: a plain local apply in its own directory and cache.
	ref := t.TempDir()
	if code, _, errs := lrmc(t, "--cache", filepath.Join(ref, "cache"), "apply", slurmRecipe(t, ref)); code != 0 {
		t.Fatalf("local apply: exit %d: %s", code, errs)
	}

	state := fakeSlurm(t)
	dir := t.TempDir()
	recipe := slurmRecipe(t, dir)
	g := graphOf(t, recipe)
	remote := filepath.Join(dir, "remote")
	os.Mkdir(remote, 0o755)
	cache := filepath.Join(dir, "cache")
	slurmDir := filepath.Join(dir, "jobs")
	args := []string{"--cache", cache, "--remote-cache", "file://" + remote, "apply", "--executor", "slurm", "--slurm-dir", slurmDir, "--slurm-poll", "10ms", recipe}

	// Without a shared cache there is nothing the jobs could hand back.
	if code, _, errs := lrmc(t, "--cache", cache, "apply", "--executor", "slurm", recipe); code != 1 || !strings.Contains(errs, "needs a shared cache") {
		t.Fatalf("no remote: exit %d: %s", code, errs)
	}

	// First attempt: capture block 1's job fails.
	var block1 *planner.Node
	for _, n := range g.Nodes {
		if n.Label == "capture block 1" {
			block1 = n
		}
	}
	t.Setenv("FAKESLURM_FAIL", jobNameOf(block1))
	code, _, errs := lrmc(t, args...)
	if code != 1 {
		t.Fatalf("apply with a failing job: exit %d, want 1: %s", code, errs)
	}
	first := fakeJobs(t, state)
	checkEdges(t, g, first)
	var failed fakeJob
	var completed []string
	downstream := map[string]bool{}
	for _, j := range first {
		if j.name == jobNameOf(block1) {
			failed = j
			downstream[j.id] = true
		}
		for _, d := range j.deps {
			if downstream[d] {
				downstream[j.id] = true
			}
		}
		if j.state == "COMPLETED" {
			completed = append(completed, j.name)
		}
		if !regexp.MustCompile(` exec --graph ` + regexp.QuoteMeta(slurmDir) + `/graph-[0-9a-f]{12}\.json [0-9a-f]{64}\n`).MatchString(j.script) {
			t.Errorf("job %s does not run the planned graph:\n%s", j.name, j.script)
		}
		// The fake node has 2 CPUs (sinfo): the default 4 is clamped.
		if !strings.Contains(j.script, "\n#SBATCH --cpus-per-task=2\n") || !strings.Contains(j.script, "\n#SBATCH --mem=2048M\n") {
			t.Errorf("job %s script resources:\n%s", j.name, j.script)
		}
	}
	if failed.id == "" {
		t.Fatalf("no job for capture block 1 among %v", first)
	}
	log := filepath.Join(slurmDir, block1.Key.String()[:12]+"-"+failed.id+".out")
	for _, want := range []string{"job " + failed.id + " " + failed.name, "node capture block 1 (capture.block " + block1.Key.String()[:12] + ")", "log: " + log} {
		if !strings.Contains(errs, want) {
			t.Errorf("failure report lacks %q:\n%s", want, errs)
		}
	}
	if string(mustRead(t, log)) != "fake failure\n" {
		t.Errorf("log %s", log)
	}
	// Its dependents, and theirs, were cancelled; nothing else.
	var wantCancel []string
	for _, j := range first {
		if downstream[j.id] && j.id != failed.id {
			wantCancel = append(wantCancel, j.id)
		}
	}
	gotCancel := strings.Fields(string(mustRead(t, filepath.Join(state, "scancel"))))
	if len(wantCancel) < 3 || !slices.Equal(gotCancel, wantCancel) {
		t.Errorf("scancel %v, want the failed job's dependents %v", gotCancel, wantCancel)
	}
	if len(completed) == 0 {
		t.Errorf("no job completed in the first attempt")
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "results.json")); !os.IsNotExist(err) {
		t.Errorf("a failed slurm apply wrote outputs: %v", err)
	}

	// Re-apply: only the jobs that did not complete are submitted.
	t.Setenv("FAKESLURM_FAIL", "")
	code, out, errs := lrmc(t, args...)
	if code != 0 {
		t.Fatalf("re-apply: exit %d: %s", code, errs)
	}
	all := fakeJobs(t, state)
	var again []string
	for _, j := range all[len(first):] {
		again = append(again, j.name)
		if j.state != "COMPLETED" {
			t.Errorf("re-applied job %s: %s", j.name, j.state)
		}
	}
	var want []string
	for _, j := range first {
		if j.state != "COMPLETED" {
			want = append(want, j.name)
		}
	}
	if !slices.Equal(again, want) {
		t.Errorf("re-apply submitted %v, want the unfinished %v", again, want)
	}
	checkEdges(t, g, all[len(first):])
	if !strings.Contains(out, "Outputs in ") {
		t.Errorf("re-apply output:\n%s", out)
	}
	for _, f := range []string{"results.json", "dense/metrics.json", "shortgpt-1/metrics.json", "sleb-1/metrics.json", "sleb-1/model.bin"} {
		if a, b := mustRead(t, filepath.Join(ref, "out", f)), mustRead(t, filepath.Join(dir, "out", f)); string(a) != string(b) {
			t.Errorf("%s differs from the local apply's", f)
		}
	}
	// Every heavy node the recipe needs ran as a job, none locally.
	var jobNames []string
	for _, j := range all {
		if j.state == "COMPLETED" {
			jobNames = append(jobNames, j.name)
		}
	}
	for _, n := range g.Nodes {
		if slurm.IsHeavy(n.Op) && !slices.Contains(jobNames, jobNameOf(n)) {
			t.Errorf("heavy node %s %s ran as no job", n.Op, n.Label)
		}
	}

	// A third apply submits nothing.
	code, _, errs = lrmc(t, args...)
	if code != 0 || !strings.Contains(errs, "nothing to submit") || len(fakeJobs(t, state)) != len(all) {
		t.Errorf("third apply: exit %d, %d submissions: %s", code, len(fakeJobs(t, state))-len(all), errs)
	}
}

func TestPlanEmitSlurmScriptsSubmit(t *testing.T) {
	state := fakeSlurm(t)
	dir := t.TempDir()
	recipe := slurmRecipe(t, dir)
	remote := filepath.Join(dir, "remote")
	os.Mkdir(remote, 0o755)
	url := "file://" + remote
	emit := filepath.Join(dir, "emit")
	if code, _, errs := lrmc(t, "--cache", filepath.Join(dir, "c1"), "plan", "--emit", "slurm", emit, recipe); code != 1 || !strings.Contains(errs, "needs a shared cache") {
		t.Fatalf("emit without a remote: exit %d: %s", code, errs)
	}
	code, out, errs := lrmc(t, "--cache", filepath.Join(dir, "c1"), "--remote-cache", url, "plan", "--emit", "slurm", emit, recipe)
	if code != 0 || !strings.Contains(out, "wrote 9 batch script(s) and "+filepath.Join(emit, "submit.sh")) {
		t.Fatalf("plan --emit slurm: exit %d: %s%s", code, out, errs)
	}
	if jobs := fakeJobs(t, state); len(jobs) != 0 {
		t.Fatalf("plan --emit submitted %d jobs", len(jobs))
	}
	// The scripts run the planned graph, written beside them, not the
	// recipe.
	graphs, _ := filepath.Glob(filepath.Join(emit, "graph-*.json"))
	if len(graphs) != 1 || !strings.Contains(out, "; the jobs run the nodes of "+graphs[0]+"\n") {
		t.Fatalf("graph files %v; plan said %s", graphs, out)
	}
	scripts, _ := filepath.Glob(filepath.Join(emit, "lrmc-*.sh"))
	for _, sc := range scripts {
		if b := string(mustRead(t, sc)); !strings.Contains(b, " exec --graph "+graphs[0]+" ") || strings.Contains(b, recipe) {
			t.Errorf("%s does not run exec --graph %s:\n%s", sc, graphs[0], b)
		}
	}
	// The recipe is edited while the jobs wait in the queue: they still
	// run what was planned (before, they replanned the recipe and failed
	// with "no node").
	planned := mustRead(t, recipe)
	writeRunsRecipe(t, dir, "r.cue", `"other": prune: {paradigm: "depth", method: "shortgpt", remove: 2}`)
	// submit.sh submits them, with their dependencies.
	sub := exec.Command("bash", filepath.Join(emit, "submit.sh"))
	if b, err := sub.CombinedOutput(); err != nil {
		t.Fatalf("submit.sh: %v\n%s", err, b)
	}
	if err := os.WriteFile(recipe, planned, 0o644); err != nil {
		t.Fatal(err)
	}
	jobs := fakeJobs(t, state)
	if len(jobs) != 9 {
		t.Fatalf("submit.sh submitted %d jobs, want 9", len(jobs))
	}
	checkEdges(t, graphOf(t, recipe), jobs)
	for _, j := range jobs {
		if j.state != "COMPLETED" {
			t.Errorf("job %s %s", j.name, j.state)
		}
	}
	// The collecting apply (no executor) runs nothing heavy.
	if ran := heavyStarted(applyEvents(t, "--cache", filepath.Join(dir, "c2"), "--remote-cache", url, recipe)); len(ran) != 0 {
		t.Errorf("collecting apply ran %v", ran)
	}
}

func TestSlurmRequestFromClusterBlockAndFlags(t *testing.T) {
	fakeSlurm(t)
	dir := t.TempDir()
	recipe := slurmRecipe(t, dir)
	f, err := os.OpenFile(recipe, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`cluster: {partition: "cpu", account: "lab", cpus: 3, mem: "5G", time: "1:00:00"}` + "\n")
	f.Close()
	remote := "file://" + t.TempDir()
	emit := filepath.Join(dir, "emit")
	code, _, errs := lrmc(t, "--cache", filepath.Join(dir, "c"), "--remote-cache", remote, "plan", "--emit", "slurm", "--partition", "big", "--cpus", "5", recipe, emit)
	if code != 0 {
		t.Fatalf("plan --emit slurm RECIPE DIR: exit %d: %s", code, errs)
	}
	scripts, _ := filepath.Glob(filepath.Join(emit, "lrmc-*.sh"))
	if len(scripts) != 9 {
		t.Fatalf("%d scripts, want 9", len(scripts))
	}
	// Flags override the block; the block's values are not clamped to
	// the (fake) 2-CPU node: Slurm judges what a recipe asks for.
	s := string(mustRead(t, scripts[0]))
	for _, want := range []string{"\n#SBATCH --partition=big\n", "\n#SBATCH --account=lab\n", "\n#SBATCH --cpus-per-task=5\n", "\n#SBATCH --mem=5G\n", "\n#SBATCH --time=1:00:00\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", strings.TrimSpace(want), s)
		}
	}
	code, _, errs = lrmc(t, "--cache", filepath.Join(dir, "c"), "--remote-cache", remote, "plan", "--emit", "slurm", "--mem", "5GB", emit, recipe)
	if code != 1 || !strings.Contains(errs, `--mem "5GB": want Slurm's syntax`) {
		t.Errorf("bad --mem: exit %d: %s", code, errs)
	}
}

func TestSlurmJobsReadLocalOnlyEntriesThroughTheSharedCache(t *testing.T) {
	state := fakeSlurm(t)
	dir := t.TempDir()
	cacheDir := filepath.Join(dir, "cache")
	// An apply without the shared cache computes shortgpt-1's captures
	// and block influences into the local cache only.
	if code, _, errs := lrmc(t, "--cache", cacheDir, "apply", writeRecipe(t, dir, 1)); code != 0 {
		t.Fatalf("local apply: exit %d: %s", code, errs)
	}
	// shortgpt-2 reuses them: its only heavy node to run is its
	// perplexity, whose job reads the block influences.
	recipe := writeRecipe(t, dir, 1, 2)
	remoteDir := filepath.Join(dir, "remote")
	os.Mkdir(remoteDir, 0o755)
	url := "file://" + remoteDir
	code, _, errs := lrmc(t, "--cache", cacheDir, "--remote-cache", url, "apply", "--executor", "slurm", "--slurm-poll", "10ms", recipe)
	if code != 0 {
		t.Fatalf("slurm apply: exit %d: %s", code, errs)
	}
	jobs := fakeJobs(t, state)
	if len(jobs) != 1 || !strings.HasPrefix(jobs[0].name, "lrmc-eval.perplexity-") || jobs[0].state != "COMPLETED" {
		t.Fatalf("jobs %+v, want shortgpt-2's perplexity alone", jobs)
	}
	remote, err := cache.OpenRemote(url)
	if err != nil {
		t.Fatal(err)
	}
	var bi, captures int
	for _, n := range graphOf(t, recipe).Nodes {
		_, _, err := remote.Get(n.Key)
		switch {
		case n.Op == shortgpt.OpBI && err == nil:
			bi++
		case n.Op == capture.OpBlock && err == nil:
			captures++
		}
	}
	// Shared before the job ran, the block influences spared it the
	// captures: a job that recomputed them would have written them back.
	if bi != 5 || captures != 0 {
		t.Errorf("shared cache holds %d block influences and %d captures, want 5 and 0", bi, captures)
	}
}
