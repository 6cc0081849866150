package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"lrmc/digest"
	"lrmc/executor/slurm"
	"lrmc/methods/stats/capture"
	"lrmc/planner"
)

// TestMain lets the test binary stand in for lrmc: the batch scripts of
// apply --executor slurm run os.Executable(), which under go test is this
// binary, with LRMC_TEST_AS_LRMC=1 in the environment they inherit.
func TestMain(m *testing.M) {
	if os.Getenv("LRMC_TEST_AS_LRMC") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// event is one line of apply --progress=json.
type event struct {
	Event string `json:"event"`
	Node  string `json:"node"`
	Op    string `json:"op"`
}

// applyEvents applies with --progress=json and returns the events.
func applyEvents(t *testing.T, args ...string) []event {
	t.Helper()
	code, out, errs := lrmc(t, append(args[:len(args)-1:len(args)-1], "apply", "--progress=json", args[len(args)-1])...)
	if code != 0 {
		t.Fatalf("apply %v: exit %d: %s", args, code, errs)
	}
	var evs []event
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("progress line is not JSON: %q", sc.Text())
		}
		evs = append(evs, ev)
	}
	return evs
}

// heavyStarted lists the heavy ops an apply ran.
func heavyStarted(evs []event) []string {
	var ran []string
	for _, ev := range evs {
		if ev.Event == "started" && slurm.IsHeavy(ev.Op) {
			ran = append(ran, ev.Op+" "+ev.Node[:12])
		}
	}
	return ran
}

// graphOf plans recipe (against a throwaway cache).
func graphOf(t *testing.T, recipe string) *planner.Graph {
	t.Helper()
	g := &globals{cacheDir: t.TempDir(), stderr: io.Discard}
	s, err := g.loadWith(recipe, g.openCacheForReading)
	if err != nil {
		t.Fatal(err)
	}
	s.store.Close()
	return s.graph
}

// firstNode is recipe's first node of op.
func firstNode(t *testing.T, recipe, op string) *planner.Node {
	t.Helper()
	for _, n := range graphOf(t, recipe).Nodes {
		if n.Op == op {
			return n
		}
	}
	t.Fatalf("%s has no %s node", recipe, op)
	return nil
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRemoteCacheSharedByTwoLocalCaches(t *testing.T) {
	dir := t.TempDir()
	remote := filepath.Join(dir, "remote")
	if err := os.Mkdir(remote, 0o755); err != nil {
		t.Fatal(err)
	}
	url := "file://" + remote
	os.MkdirAll(filepath.Join(dir, "a"), 0o755)
	os.MkdirAll(filepath.Join(dir, "b"), 0o755)
	recipeA := writeRecipe(t, filepath.Join(dir, "a"), 1)
	recipeB := writeRecipe(t, filepath.Join(dir, "b"), 1)
	cacheA, cacheB := filepath.Join(dir, "cacheA"), filepath.Join(dir, "cacheB")

	if ran := heavyStarted(applyEvents(t, "--cache", cacheA, "--remote-cache", url, recipeA)); len(ran) == 0 {
		t.Fatal("the first apply ran no heavy op")
	}
	// Without the shared cache, cache B has nothing.
	if code, _, errs := lrmc(t, "--cache", cacheB, "plan", "--detailed-exitcode", recipeB); code != 2 {
		t.Fatalf("plan with an empty cache and no remote: exit %d, want 2: %s", code, errs)
	}
	// $LRMC_REMOTE_CACHE is the flag's default.
	t.Setenv("LRMC_REMOTE_CACHE", url)
	code, out, errs := lrmc(t, "--cache", cacheB, "plan", "--detailed-exitcode", recipeB)
	if code != 0 {
		t.Fatalf("plan with cache B and the shared cache: exit %d, want 0 (nothing to run):\n%s%s", code, out, errs)
	}
	if !regexp.MustCompile(`(?m)^Plan: [1-9]\d* cached, 0 to run( \(\d+ not needed\))?$`).MatchString(out) {
		t.Errorf("plan summary:\n%s", out)
	}
	if ran := heavyStarted(applyEvents(t, "--cache", cacheB, recipeB)); len(ran) != 0 {
		t.Errorf("apply with cache B ran heavy ops %v; they are in the shared cache", ran)
	}
	a := mustRead(t, filepath.Join(dir, "a", "out", "results.json"))
	if b := mustRead(t, filepath.Join(dir, "b", "out", "results.json")); string(a) != string(b) {
		t.Errorf("results.json differ:\n%s\n%s", a, b)
	}
	if code, _, errs := lrmc(t, "--cache", cacheB, "--remote-cache", "file://"+filepath.Join(dir, "nope"), "plan", recipeB); code != 1 || !strings.Contains(errs, "--remote-cache") || !strings.Contains(errs, "nope") {
		t.Errorf("a missing remote directory: exit %d, %s", code, errs)
	}
}

func TestExecIsIdempotentAndFeedsApply(t *testing.T) {
	dir := t.TempDir()
	remote := filepath.Join(dir, "remote")
	os.Mkdir(remote, 0o755)
	url := "file://" + remote
	recipe := writeRecipe(t, dir, 1)
	block := firstNode(t, recipe, capture.OpBlock)
	key12 := block.Key.String()[:12]
	c1 := filepath.Join(dir, "c1")
	code, out, errs := lrmc(t, "--cache", c1, "--remote-cache", url, "exec", recipe, key12)
	if code != 0 || !regexp.MustCompile(`^ran `+key12+` capture\.block \d+\.\ds\n$`).MatchString(out) {
		t.Fatalf("exec: exit %d, %q %s", code, out, errs)
	}
	code, out, _ = lrmc(t, "--cache", c1, "--remote-cache", url, "exec", recipe, block.Key.String())
	if code != 0 || out != "cached "+key12+" capture.block\n" {
		t.Errorf("second exec: exit %d, %q", code, out)
	}
	// Another machine's cache finds it in the shared one.
	code, out, _ = lrmc(t, "--cache", filepath.Join(dir, "c2"), "--remote-cache", url, "exec", recipe, key12)
	if code != 0 || out != "cached "+key12+" capture.block\n" {
		t.Errorf("exec with a fresh local cache: exit %d, %q", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Errorf("exec wrote outputs: %v", err)
	}
	// A full apply with a third cache reads the node rather than run it.
	var seen []string
	for _, ev := range applyEvents(t, "--cache", filepath.Join(dir, "c3"), "--remote-cache", url, recipe) {
		if ev.Node == block.Key.String() {
			seen = append(seen, ev.Event)
		}
	}
	if strings.Join(seen, ",") != "cached" {
		t.Errorf("apply's events for the exec'd node: %v, want [cached]", seen)
	}

	code, _, errs = lrmc(t, "--cache", c1, "exec", recipe, "000000000000")
	if code != 1 || !strings.Contains(errs, "no node 000000000000 in "+recipe) {
		t.Errorf("unknown key: exit %d, %s", code, errs)
	}
	code, _, errs = lrmc(t, "--cache", c1, "exec", recipe, key12[:8])
	if code != 1 || !strings.Contains(errs, "at least 12 hex digits") {
		t.Errorf("short key: exit %d, %s", code, errs)
	}
}

// A job whose result never reaches the shared cache fails, naming the
// node, instead of printing "ran" and leaving its dependents to recompute.
func TestExecFailsWhenTheSharedCacheLacksTheResult(t *testing.T) {
	dir := t.TempDir()
	remote := filepath.Join(dir, "remote")
	os.Mkdir(remote, 0o755)
	recipe := writeRecipe(t, dir, 1)
	block := firstNode(t, recipe, capture.OpBlock)
	// A directory where the entry's file would go: the write-back's
	// rename fails (even for root), and so does reading the entry.
	k := block.Key.String()
	if err := os.MkdirAll(filepath.Join(remote, k[:2], k, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, out, errs := lrmc(t, "--cache", filepath.Join(dir, "c"), "--remote-cache", "file://"+remote, "exec", recipe, k[:12])
	if code != 1 || out != "" || !strings.Contains(errs, "ran, but the shared cache does not hold its result") || !strings.Contains(errs, k[:12]) {
		t.Errorf("exec: exit %d, stdout %q, stderr %s", code, out, errs)
	}
}

func TestFindNodeAmbiguousPrefix(t *testing.T) {
	k1, _ := digest.Parse("abcdef0123450000000000000000000000000000000000000000000000000001")
	k2, _ := digest.Parse("abcdef0123450000000000000000000000000000000000000000000000000002")
	g := &planner.Graph{Nodes: []*planner.Node{{Key: k1, Op: "a"}, {Key: k2, Op: "b"}}}
	if _, err := findNode(g, "abcdef012345"); err == nil || !strings.Contains(err.Error(), "ambiguous: 2 nodes start with it") {
		t.Errorf("ambiguous prefix: %v", err)
	}
	if n, err := findNode(g, strings.ToUpper(k1.String())); err != nil || n.Op != "a" {
		t.Errorf("upper-case prefix: %v", err)
	}
	if n, err := findNode(g, k2.String()); err != nil || n.Op != "b" {
		t.Errorf("full key: %v %v", n, err)
	}
}
