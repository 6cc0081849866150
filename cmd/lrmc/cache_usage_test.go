package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dustin/go-humanize"

	"lrmc/cache"
	"lrmc/digest"
	"lrmc/executor"
	"lrmc/planner"
)

// lsEntry is an entry of cache ls --json.
type lsEntry struct {
	Key         string    `json:"key"`
	Op          string    `json:"op"`
	Name        string    `json:"name"`
	Size        int64     `json:"size"`
	LastUsed    time.Time `json:"lastUsed"`
	Reclaimable bool      `json:"reclaimable"`
	UsedBy      []struct {
		Recipe string   `json:"recipe"`
		Runs   []string `json:"runs"`
	} `json:"usedBy"`
	WrittenBy *struct {
		Recipe string   `json:"recipe"`
		Runs   []string `json:"runs"`
	} `json:"writtenBy"`
}

func lsJSON(t *testing.T, cacheDir string, args ...string) []lsEntry {
	t.Helper()
	code, out, errs := lrmc(t, append([]string{"--cache", cacheDir, "cache", "ls", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("cache ls --json %v: exit %d: %s", args, code, errs)
	}
	var es []lsEntry
	if err := json.Unmarshal([]byte(out), &es); err != nil {
		t.Fatalf("cache ls --json: %v\n%s", err, out)
	}
	return es
}

// applyKeys applies recipe and returns the keys of the nodes it read from
// the cache or computed (from its JSON events). Applied to an empty cache,
// that is every node the recipe's plan holds.
func applyKeys(t *testing.T, cacheDir, recipe string) map[string]bool {
	t.Helper()
	code, out, errs := lrmc(t, "--cache", cacheDir, "apply", "--progress=json", recipe)
	if code != 0 {
		t.Fatalf("apply: exit %d: %s", code, errs)
	}
	keys := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var ev struct{ Event, Node string }
		json.Unmarshal(sc.Bytes(), &ev)
		if ev.Event == "cached" || ev.Event == "finished" {
			keys[ev.Node] = true
		}
	}
	return keys
}

// The cache commands tell which recipe and runs need each entry: after a
// run is removed from a recipe, exactly the entries the new apply does not
// need are reclaimable, named by the run that wrote them, and gc, du and
// LRMC_CACHE_MAX act on them.
func TestCacheUsageByRecipeAndRun(t *testing.T) {
	dir := t.TempDir()
	cacheDir := filepath.Join(dir, "cache")
	recipe := writeRecipe(t, dir, 1, 2)
	first := applyKeys(t, cacheDir, recipe)
	es := lsJSON(t, cacheDir)
	if len(es) == 0 {
		t.Fatal("no entries after an apply")
	}
	for _, e := range es {
		if !first[e.Key] || e.Reclaimable || len(e.UsedBy) != 1 || e.UsedBy[0].Recipe != recipe {
			t.Errorf("after the first apply: %s %s reclaimable %v used by %+v", e.Op, e.Name, e.Reclaimable, e.UsedBy)
		}
	}

	writeRecipe(t, dir, 1) // shortgpt-2 removed
	second := applyKeys(t, filepath.Join(dir, "cold"), recipe)
	applyKeys(t, cacheDir, recipe)
	es = lsJSON(t, cacheDir)
	var reclaimable []lsEntry
	byOp := map[string][2]int64{} // op: bytes, reclaimable bytes
	var total, free int64
	for _, e := range es {
		if e.Reclaimable != !second[e.Key] {
			t.Errorf("%s %s: reclaimable %v, but the second apply needed it: %v", e.Op, e.Name, e.Reclaimable, second[e.Key])
		}
		u := byOp[e.Op]
		u[0] += e.Size
		total += e.Size
		if e.Reclaimable {
			reclaimable = append(reclaimable, e)
			u[1] += e.Size
			free += e.Size
			if len(e.UsedBy) != 0 || e.WrittenBy == nil || e.WrittenBy.Recipe != recipe {
				t.Errorf("reclaimable %s %s: used by %+v, written by %+v", e.Op, e.Name, e.UsedBy, e.WrittenBy)
			}
		} else if len(e.UsedBy) != 1 || e.UsedBy[0].Recipe != recipe || !usedByRuns(e.Op, e.UsedBy[0].Runs) {
			t.Errorf("%s %s used by %+v, want dense or shortgpt-1 of %s", e.Op, e.Name, e.UsedBy, recipe)
		}
		byOp[e.Op] = u
	}
	// shortgpt-2's own nodes (its pruning decision, export, evaluation,
	// metrics) and the first results are what the second apply left.
	var ops []string
	for _, e := range reclaimable {
		ops = append(ops, e.Op)
		if e.Op != "report.results" && !slices.Equal(e.WrittenBy.Runs, []string{"shortgpt-2"}) {
			t.Errorf("reclaimable %s %s written by runs %v, want shortgpt-2", e.Op, e.Name, e.WrittenBy.Runs)
		}
	}
	slices.Sort(ops)
	if want := []string{"eval.perplexity", "export.llama2c", "prune.depth", "report.metrics", "report.results"}; !slices.Equal(ops, want) {
		t.Errorf("reclaimable ops %v, want %v", ops, want)
	}

	// The table: the same entries, filtered by op.
	code, out, _ := lrmc(t, "--cache", cacheDir, "cache", "ls", "--op", "prune.*")
	var want []string
	want = append(want, "KEY OP SIZE LAST USED RECLAIMABLE RECIPE RUNS NAME")
	for _, e := range es {
		if e.Op != "prune.depth" {
			continue
		}
		runs := "shortgpt-1"
		if e.Reclaimable {
			runs = "shortgpt-2"
		}
		want = append(want, fmt.Sprintf("%s prune.depth %s %s %v r.cue %s %s", e.Key[:12], humanize.IBytes(uint64(e.Size)),
			e.LastUsed.Local().Format(time.DateTime), e.Reclaimable, runs, e.Name))
	}
	if got := fields(out); code != 0 || len(want) != 3 || got != strings.Join(want, "\n") {
		t.Errorf("cache ls --op 'prune.*': exit %d\n%s\nwant (spacing aside)\n%s", code, out, strings.Join(want, "\n"))
	}
	if es := lsJSON(t, cacheDir, "--older-than", "1h"); len(es) != 0 {
		t.Errorf("--older-than 1h lists %d entries used just now", len(es))
	}
	if got := lsJSON(t, cacheDir, "--older-than", "0s", "--op", "report.metrics"); len(got) != 3 {
		t.Errorf("--older-than 0s --op report.metrics lists %d entries, want 3", len(got))
	}
	if code, _, errs := lrmc(t, "--cache", cacheDir, "cache", "ls", "--older-than", "soon"); code != 1 || !strings.Contains(errs, `--older-than: cannot read duration "soon"`) {
		t.Errorf("--older-than soon: exit %d: %s", code, errs)
	}

	// du: per op and in total, the sizes ls reports.
	code, out, _ = lrmc(t, "--cache", cacheDir, "cache", "du", "--json")
	var du struct {
		Ops []struct {
			Op               string
			Entries          int
			Bytes            int64
			ReclaimableBytes int64
		}
		Total struct {
			Entries                 int
			Bytes, ReclaimableBytes int64
			ReclaimableEntries      int
		}
	}
	if err := json.Unmarshal([]byte(out), &du); code != 0 || err != nil {
		t.Fatalf("du --json: exit %d, %v\n%s", code, err, out)
	}
	if du.Total.Entries != len(es) || du.Total.Bytes != total || du.Total.ReclaimableBytes != free || du.Total.ReclaimableEntries != len(reclaimable) {
		t.Errorf("du total %+v, want %d entries, %d bytes, %d reclaimable in %d", du.Total, len(es), total, free, len(reclaimable))
	}
	got := map[string][2]int64{}
	for i, o := range du.Ops {
		got[o.Op] = [2]int64{o.Bytes, o.ReclaimableBytes}
		if i > 0 && o.Bytes > du.Ops[i-1].Bytes {
			t.Errorf("du rows not largest first: %s after %s", o.Op, du.Ops[i-1].Op)
		}
	}
	if !maps.Equal(got, byOp) {
		t.Errorf("du by op %v, want %v", got, byOp)
	}
	code, out, _ = lrmc(t, "--cache", cacheDir, "cache", "du")
	lines := strings.Split(fields(out), "\n")
	if wantLast := fmt.Sprintf("total %d %s %s", len(es), humanize.IBytes(uint64(total)), humanize.IBytes(uint64(free))); code != 0 || lines[0] != "OP ENTRIES SIZE RECLAIMABLE" || lines[len(lines)-1] != wantLast || len(lines) != len(byOp)+2 {
		t.Errorf("cache du:\n%s\nwant a row per op and %q", out, wantLast)
	}

	// gc: --keep-duration spares what was used within it; --dry-run
	// changes nothing; plain gc evicts the reclaimable entries.
	code, out, _ = lrmc(t, "--cache", cacheDir, "cache", "gc", "--keep-duration", "1d")
	if want := fmt.Sprintf("evicted 0 entries (0 B); %d entries, %s remain\n", len(es), humanize.IBytes(uint64(total))); code != 0 || out != want {
		t.Errorf("gc --keep-duration 1d: exit %d\n%q\nwant %q", code, out, want)
	}
	code, out, _ = lrmc(t, "--cache", cacheDir, "cache", "gc", "--dry-run")
	var wantDry []string
	slices.SortFunc(reclaimable, func(a, b lsEntry) int {
		if c := a.LastUsed.Compare(b.LastUsed); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	for _, e := range reclaimable {
		wantDry = append(wantDry, fmt.Sprintf("would evict %s %s %s %s\n", e.Key[:12], e.Op, humanize.IBytes(uint64(e.Size)), e.Name))
	}
	wantDry = append(wantDry, fmt.Sprintf("would evict %d entries (%s); %d entries, %s would remain\n", len(reclaimable),
		humanize.IBytes(uint64(free)), len(es)-len(reclaimable), humanize.IBytes(uint64(total-free))))
	if code != 0 || out != strings.Join(wantDry, "") {
		t.Errorf("gc --dry-run: exit %d\n%s\nwant\n%s", code, out, strings.Join(wantDry, ""))
	}
	if n := len(lsJSON(t, cacheDir)); n != len(es) {
		t.Errorf("gc --dry-run evicted: %d entries left of %d", n, len(es))
	}
	code, out, _ = lrmc(t, "--cache", cacheDir, "cache", "gc")
	if want := fmt.Sprintf("evicted %d entries (%s); %d entries, %s remain\n", len(reclaimable), humanize.IBytes(uint64(free)),
		len(es)-len(reclaimable), humanize.IBytes(uint64(total-free))); code != 0 || out != want {
		t.Errorf("gc: exit %d\n%q\nwant %q", code, out, want)
	}
	for _, e := range lsJSON(t, cacheDir) {
		if e.Reclaimable || !second[e.Key] {
			t.Errorf("after gc: %s %s (reclaimable %v) is left", e.Op, e.Name, e.Reclaimable)
		}
	}
}

// LRMC_CACHE_MAX makes apply evict least recently used entries it does
// not need, reclaimable ones first, and never one it needs.
func TestCacheBudgetAfterApply(t *testing.T) {
	dir := t.TempDir()
	cacheDir := filepath.Join(dir, "cache")
	recipe := writeRecipe(t, dir, 1, 2)
	applyKeys(t, cacheDir, recipe)
	writeRecipe(t, dir, 1)

	t.Setenv("LRMC_CACHE_MAX", "lots")
	if code, _, errs := lrmc(t, "--cache", cacheDir, "apply", recipe); code != 1 || !strings.Contains(errs, `LRMC_CACHE_MAX: cannot read size "lots"`) {
		t.Errorf("LRMC_CACHE_MAX=lots: exit %d: %s", code, errs)
	}

	t.Setenv("LRMC_CACHE_MAX", "")
	applyKeys(t, cacheDir, recipe) // shortgpt-2's entries become reclaimable
	before := lsJSON(t, cacheDir)
	t.Setenv("LRMC_CACHE_MAX", "1KiB")
	code, _, errs := lrmc(t, "--cache", cacheDir, "apply", "--progress=plain", recipe)
	if code != 0 {
		t.Fatalf("apply under a budget: exit %d: %s", code, errs)
	}
	after := lsJSON(t, cacheDir)
	var evicted, left int64
	n := 0
	for _, e := range before {
		if e.Reclaimable {
			evicted += e.Size
			n++
		} else {
			left += e.Size
		}
	}
	want := fmt.Sprintf("lrmc: cache over LRMC_CACHE_MAX (1.0 KiB): evicted %d entries (%s), %s left\n"+
		"lrmc: cache holds %s, over LRMC_CACHE_MAX (1.0 KiB): the rest is what this apply needs\n",
		n, humanize.IBytes(uint64(evicted)), humanize.IBytes(uint64(left)), humanize.IBytes(uint64(left)))
	if !strings.HasSuffix(errs, want) {
		t.Errorf("stderr:\n%s\nwant it to end with\n%s", errs, want)
	}
	if len(after) != len(before)-n {
		t.Errorf("%d entries left, want %d", len(after), len(before)-n)
	}
	for _, e := range after {
		if e.Reclaimable {
			t.Errorf("%s %s is left though reclaimable", e.Op, e.Name)
		}
	}
	// A budget the cache fits in changes nothing and says nothing.
	t.Setenv("LRMC_CACHE_MAX", "10GiB")
	code, _, errs = lrmc(t, "--cache", cacheDir, "apply", "--progress=plain", recipe)
	if code != 0 || strings.Contains(errs, "LRMC_CACHE_MAX") || len(lsJSON(t, cacheDir)) != len(after) {
		t.Errorf("apply within budget: exit %d\n%s", code, errs)
	}
}

// usedByRuns says whether runs are those that may need an entry of op
// after shortgpt-2 left the recipe: the results belong to no one run.
func usedByRuns(op string, runs []string) bool {
	if op == "report.results" {
		return len(runs) == 0
	}
	for _, r := range runs {
		if r != "dense" && r != "shortgpt-1" {
			return false
		}
	}
	return len(runs) > 0
}

// fields normalizes a table's spacing: each line's fields joined by one
// space, trailing newline dropped.
func fields(s string) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	return strings.Join(lines, "\n")
}

// The checkpoint an interrupted run left is needed by its recipe (to
// resume), not reclaimable.
func TestCheckpointsAreNotReclaimable(t *testing.T) {
	dir := t.TempDir()
	cacheDir := filepath.Join(dir, "cache")
	recipe := writeRecipe(t, dir, 1)
	applyKeys(t, cacheDir, recipe)
	var node digest.Digest
	for _, e := range lsJSON(t, cacheDir, "--op", "capture.block") {
		if err := node.UnmarshalText([]byte(e.Key)); err != nil {
			t.Fatal(err)
		}
	}
	ck := executor.CheckpointKey(&planner.Node{Key: node})
	st, err := cache.Open(cacheDir, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Put(ck, "checkpoint", "training state", []byte("state"))
	st.Close()
	applyKeys(t, cacheDir, recipe)
	for _, e := range lsJSON(t, cacheDir, "--op", "checkpoint") {
		if e.Reclaimable || len(e.UsedBy) != 1 || !slices.Equal(e.UsedBy[0].Runs, []string{"dense", "shortgpt-1"}) && !slices.Equal(e.UsedBy[0].Runs, []string{"shortgpt-1"}) {
			t.Errorf("checkpoint: reclaimable %v, used by %+v", e.Reclaimable, e.UsedBy)
		}
		return
	}
	t.Error("the checkpoint is gone")
}
