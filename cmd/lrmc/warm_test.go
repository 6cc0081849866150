package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"lrmc/cache"
)

// cacheFiles lists the files of a cache directory with size and
// modification time, without the lock file (which records each holder).
func cacheFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	st := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "lrmc.lock" {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st[p] = fmt.Sprint(info.Size(), " ", info.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// A fully cached apply opens the cache without writing: the cache
// directory is left exactly as it was (a writable open creates a new
// value-log file every time), and what apply prints and writes is what a
// writable open gives (LRMC_NO_WARM=1). An entry found damaged on the way
// makes apply execute again on the cache opened for writing: the damaged
// entry is dropped and recomputed, the outputs are the same bytes, and
// the next apply is again one that writes nothing.
func TestWarmApplyWritesNothingAndRecoversFromDamage(t *testing.T) {
	dir := t.TempDir()
	cacheDir := filepath.Join(dir, "cache")
	recipe := writeRunsRecipe(t, dir, "r.cue", goodRun)
	results := filepath.Join(dir, "out", "results.json")
	apply := func(what string) string {
		t.Helper()
		code, out, errs := lrmc(t, "--cache", cacheDir, "apply", "--progress=plain", recipe)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s\n%s", what, code, out, errs)
		}
		return out
	}
	apply("cold apply")
	want := mustRead(t, results)
	// The first rerun records the digest memos of the outputs the cold
	// apply wrote (and may refresh entries' last use after a slow one).
	apply("first rerun")

	before := cacheFiles(t, cacheDir)
	warm := apply("warm apply")
	if !strings.Contains(warm, "Nothing to run") {
		t.Fatalf("warm apply ran something:\n%s", warm)
	}
	if after := cacheFiles(t, cacheDir); !maps.Equal(after, before) {
		t.Errorf("a fully cached apply changed the cache directory:\nbefore: %v\nafter:  %v", before, after)
	}
	t.Setenv("LRMC_NO_WARM", "1")
	if writable := apply("apply with the cache opened for writing"); writable != warm {
		t.Errorf("apply prints otherwise with the cache opened for writing:\n%s\nwithout writing:\n%s", writable, warm)
	}
	if after := cacheFiles(t, cacheDir); maps.Equal(after, before) {
		t.Error("LRMC_NO_WARM=1 left the cache directory as it was: the test cannot tell the two opens apart")
	}
	os.Unsetenv("LRMC_NO_WARM")

	// Damage the results entry and remove the outputs, so that apply
	// must read it.
	if err := cache.Tamper(cacheDir, firstNode(t, recipe, "report.results").Key); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "out")); err != nil {
		t.Fatal(err)
	}
	if out := apply("apply over a damaged entry"); !strings.Contains(out, "Applied: 1 ran") {
		t.Errorf("apply over a damaged entry did not recompute exactly it:\n%s", out)
	}
	if got := mustRead(t, results); string(got) != string(want) {
		t.Errorf("results.json after recomputing the damaged entry differs:\n%s\nwant:\n%s", got, want)
	}
	// The first rerun after outputs were written records their digest
	// memos (postponed by the cache opened without writing, then caught
	// up); the next writes nothing.
	if out := apply("first rerun after the repair"); !strings.Contains(out, "Nothing to run") {
		t.Errorf("first rerun after the repair ran something:\n%s", out)
	}
	before = cacheFiles(t, cacheDir)
	if out := apply("warm apply after the repair"); !strings.Contains(out, "Nothing to run") {
		t.Errorf("warm apply after the repair ran something:\n%s", out)
	}
	if after := cacheFiles(t, cacheDir); !maps.Equal(after, before) {
		t.Errorf("the warm apply after the repair changed the cache directory:\nbefore: %v\nafter:  %v", before, after)
	}
}

// load raises GOGC for compiling and planning only: the ops that follow
// run at the GOGC the process had, and GOGC=off or a higher one is kept.
func TestLoadRestoresGCPercent(t *testing.T) {
	dir := t.TempDir()
	recipe := writeRunsRecipe(t, dir, "r.cue", goodRun)
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)
	for _, pct := range []int{100, 50, -1, 800} {
		debug.SetGCPercent(pct)
		g := &globals{cacheDir: filepath.Join(dir, "cache"), stderr: io.Discard}
		s, err := g.load(recipe)
		if err != nil {
			t.Fatal(err)
		}
		s.store.Close()
		if got := debug.SetGCPercent(pct); got != pct {
			t.Errorf("GOGC %d before load, %d after", pct, got)
		}
	}
}
