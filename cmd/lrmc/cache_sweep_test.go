package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCacheGCRemoteSweepsLeftovers runs `lrmc cache gc --remote` on a
// file:// shared cache holding a crashed writer's temporary file (3 hours
// old) and a writer's still at work (just written): the dry run lists only
// the old one, the sweep removes only it, --older-than moves the cut-off,
// and the misuses are refused with their reasons.
func TestCacheGCRemoteSweepsLeftovers(t *testing.T) {
	remote := t.TempDir()
	shard := filepath.Join(remote, "ab")
	if err := os.MkdirAll(shard, 0o755); err != nil {
		t.Fatal(err)
	}
	old, young := filepath.Join(shard, ".tmp-1"), filepath.Join(shard, ".tmp-2")
	for _, p := range []string{old, young} {
		if err := os.WriteFile(p, make([]byte, 2048), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	then := time.Now().Add(-3 * time.Hour)
	if err := os.Chtimes(old, then, then); err != nil {
		t.Fatal(err)
	}
	base := []string{"--cache", t.TempDir(), "--remote-cache", "file://" + remote, "cache", "gc", "--remote"}
	gc := func(args ...string) (int, string, string) {
		return lrmc(t, append(base[:len(base):len(base)], args...)...)
	}

	code, out, errs := gc("--dry-run")
	if code != 0 || !strings.Contains(out, "would remove temporary file file://"+old+" (2.0 KiB, last written ") ||
		strings.Contains(out, young) || !strings.Contains(out, "would remove 1 leftovers older than 1h0m0s from file://"+remote+" (2.0 KiB of temporary files)") {
		t.Fatalf("gc --remote --dry-run: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(old); err != nil {
		t.Fatalf("the dry run removed %s: %v", old, err)
	}
	if code, out, errs = gc(); code != 0 || !strings.Contains(out, "removed 1 leftovers older than 1h0m0s") {
		t.Fatalf("gc --remote: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatalf("%s survived the sweep: %v", old, err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Fatalf("the sweep removed a writer's file still at work: %v", err)
	}
	// With a cut-off of zero even a file just written goes.
	if code, out, errs = gc("--older-than", "0s"); code != 0 || !strings.Contains(out, "removed temporary file file://"+young) {
		t.Fatalf("gc --remote --older-than 0s: exit %d\n%s%s", code, out, errs)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--older-than", "soon"}, `--older-than: cannot read duration "soon"`},
		{[]string{"--max-size", "1GiB"}, "--max-size and --keep-duration are for the local cache"},
	} {
		if code, _, errs := gc(c.args...); code != 1 || !strings.Contains(errs, c.want) {
			t.Errorf("gc --remote %v: exit %d, stderr %q, want %q", c.args, code, errs, c.want)
		}
	}
	t.Setenv("LRMC_REMOTE_CACHE", "")
	if code, _, errs := lrmc(t, "--cache", t.TempDir(), "cache", "gc", "--remote"); code != 1 || !strings.Contains(errs, "no shared cache: set --remote-cache or LRMC_REMOTE_CACHE") {
		t.Errorf("gc --remote without a shared cache: exit %d, %q", code, errs)
	}
	if code, _, errs := lrmc(t, "--cache", t.TempDir(), "cache", "gc", "--older-than", "2h"); code != 1 || !strings.Contains(errs, "--older-than is for gc --remote") {
		t.Errorf("gc --older-than without --remote: exit %d, %q", code, errs)
	}
}
