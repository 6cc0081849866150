package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"lrmc/cache"
	"lrmc/digest"
)

// holdCache opens the cache in dir with one entry and holds it until the
// test ends, as a running apply would.
func holdCache(t *testing.T, dir string) *cache.Store {
	t.Helper()
	s, err := cache.Open(dir, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Put(digest.Of([]byte("held")), "test.op", "held entry", make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestWaitSaysWhatItWaitsForAndTakesADuration(t *testing.T) {
	dir := t.TempDir()
	holdCache(t, dir)
	start := time.Now()
	code, _, errs := lrmc(t, "--cache", dir, "--wait=300ms", "cache", "gc", "--max-size", "0")
	if code != 1 {
		t.Fatalf("gc on a held cache with --wait=300ms: exit %d", code)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond || waited > 5*time.Second {
		t.Errorf("--wait=300ms waited %s", waited)
	}
	holder := regexp.QuoteMeta(fmt.Sprintf("pid %d (", os.Getpid()))
	for _, want := range []string{
		`\[WARN\] *lrmc\.cache: waiting \(up to 300ms\) for the cache ` + regexp.QuoteMeta(dir) + `, held by ` + holder,
		`(?m)lrmc: cache ` + regexp.QuoteMeta(dir) + ` is still in use by ` + holder + `.* after waiting 3\d\dms$`,
	} {
		if !regexp.MustCompile(want).MatchString(errs) {
			t.Errorf("stderr lacks %s:\n%s", want, errs)
		}
	}
	if code, _, errs := lrmc(t, "--cache", dir, "--wait=soon", "cache", "du"); code != 1 || !strings.Contains(errs, "want a positive duration") {
		t.Errorf("--wait=soon: exit %d: %s", code, errs)
	}
	// Bare --wait still parses (and waits indefinitely: not run here).
	var w waitFlag
	if err := w.Set("true"); err != nil || !w.on || w.max != 0 {
		t.Errorf("bare --wait: %+v %v", w, err)
	}
}

func TestReadOnlyCommandsWorkWhileTheCacheIsHeld(t *testing.T) {
	dir := t.TempDir()
	cacheDir := filepath.Join(dir, "cache")
	holder := holdCache(t, cacheDir)

	code, out, errs := lrmc(t, "--cache", cacheDir, "cache", "ls")
	if code != 0 || !strings.Contains(out, "held entry") {
		t.Errorf("cache ls while held: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = lrmc(t, "--cache", cacheDir, "cache", "du")
	if code != 0 || !strings.HasSuffix(out, "\ntotal    1        1000 B  1000 B\n") {
		t.Errorf("cache du while held: exit %d\n%s%s", code, out, errs)
	}
	recipe := writeRecipe(t, dir, 1)
	code, out, errs = lrmc(t, "--cache", cacheDir, "plan", recipe)
	if code != 0 || !regexp.MustCompile(`(?m)^Plan: 0 cached, \d+ to run$`).MatchString(out) {
		t.Errorf("plan while held: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = lrmc(t, "--cache", cacheDir, "graph", recipe)
	if code != 0 || !strings.HasPrefix(out, "digraph") {
		t.Errorf("graph while held: exit %d\n%.200s%s", code, out, errs)
	}
	// A command that writes is still refused, naming the holder.
	code, _, errs = lrmc(t, "--cache", cacheDir, "cache", "gc", "--max-size", "0")
	if code != 1 || !strings.Contains(errs, fmt.Sprintf("is in use by pid %d", os.Getpid())) {
		t.Errorf("gc while held: exit %d: %s", code, errs)
	}
	// The holder was never blocked.
	if err := holder.Put(digest.Of([]byte("later")), "test.op", "later", []byte("x")); err != nil {
		t.Error(err)
	}
}

func TestDamagedCacheSaysTheWayOutAndRepairs(t *testing.T) {
	dir := t.TempDir()
	s, err := cache.Open(dir, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Put(digest.Of([]byte("k")), "test.op", "an entry", make([]byte, 100))
	s.Close()
	if err := os.Truncate(filepath.Join(dir, "badger", "MANIFEST"), 0); err != nil {
		t.Fatal(err)
	}
	code, _, errs := lrmc(t, "--cache", dir, "cache", "ls")
	want := fmt.Sprintf("lrmc: cache %s is damaged (MANIFEST: manifest has bad magic); run lrmc cache verify --repair\n", dir)
	if code != 1 || errs != want {
		t.Errorf("cache ls on a damaged cache: exit %d\n got %q\nwant %q", code, errs, want)
	}
	code, out, errs := lrmc(t, "--cache", dir, "cache", "verify", "--repair")
	if code != 0 || !strings.HasPrefix(out, "database damaged (MANIFEST: manifest has bad magic)\nmoved it aside to "+filepath.Join(dir, "badger.damaged-")) || !strings.HasSuffix(out, "\n1 entries kept, 0 dropped\n") {
		t.Errorf("verify --repair: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = lrmc(t, "--cache", dir, "cache", "du")
	if code != 0 || !strings.HasSuffix(out, "\ntotal    1        100 B  100 B\n") {
		t.Errorf("du after repair: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = lrmc(t, "--cache", dir, "cache", "reset")
	if m, _ := filepath.Glob(filepath.Join(dir, "badger*")); code != 0 || len(m) != 0 {
		t.Errorf("reset: exit %d, left %v\n%s%s", code, m, out, errs)
	}
}
