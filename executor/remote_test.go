package executor

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"lrmc/cache"
)

// TestSharedRemoteCache runs the diamond on three machines' worth of local
// caches sharing one file:// remote: the second reads the result through the
// remote without running anything; after the remote copy of the result is
// damaged, Stat still reports it present (a header check), but the third
// cache's Get rejects it, the executor recomputes just that node from its
// verified remote inputs, and the recomputed value replaces the damaged one.
func TestSharedRemoteCache(t *testing.T) {
	dir := t.TempDir()
	remote, err := cache.OpenRemote("file://" + dir)
	if err != nil {
		t.Fatal(err)
	}
	machine := func() *cache.Store {
		s, err := cache.Open(t.TempDir(), cache.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		s.SetRemote(remote)
		return s
	}
	g, n := diamond()
	run := func(s *cache.Store) (ran int32, res *Result) {
		t.Helper()
		runs := new(atomic.Int32)
		res, err := newExec(t, sumOp{runs: runs}, s, 2, nil).Run(context.Background(), g)
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := res.Value(n["d"]); v != 1112 {
			t.Fatalf("d = %v, want 1112", v)
		}
		return runs.Load(), res
	}

	if ran, _ := run(machine()); ran != 4 {
		t.Fatalf("first machine ran %d ops, want 4", ran)
	}
	if ran, res := run(machine()); ran != 0 || res.Cached != 1 {
		t.Fatalf("second machine ran %d ops and read %d results, want 0 and 1", ran, res.Cached)
	}

	// Flip the last byte of d's value in the remote.
	key := n["d"].Key.String()
	path := filepath.Join(dir, key[:2], key)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 1
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	third := machine()
	if _, ok, err := third.Stat(n["d"].Key); !ok || err != nil {
		t.Fatalf("Stat of the damaged remote entry: ok=%v %v, want present", ok, err)
	}
	if ran, _ := run(third); ran != 1 {
		t.Fatalf("third machine ran %d ops, want 1 (d, from b and c read through)", ran)
	}
	if ran, res := run(machine()); ran != 0 || res.Cached != 1 {
		t.Fatalf("after the repair a fourth machine ran %d ops and read %d, want 0 and 1", ran, res.Cached)
	}
}
