package cache

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"lrmc/digest"
)

// TestFileRemoteSweep leaves the temporary files of crashed writers in a
// file:// remote, one old and one young, and checks that Sweep removes only
// the old one (a dry run none), and never an entry or a file outside the
// store's shard directories, however old.
func TestFileRemoteSweep(t *testing.T) {
	r := openFileRemote(t)
	key := digest.Of([]byte("entry"))
	val := []byte("a finished entry")
	if err := r.Put(Meta{Key: key, Op: "op"}, val); err != nil {
		t.Fatal(err)
	}
	shard := filepath.Dir(r.path(key))
	if err := os.MkdirAll(filepath.Join(r.dir, "notes"), 0o755); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(shard, ".tmp-111")
	young := filepath.Join(shard, ".tmp-222")
	foreign := filepath.Join(r.dir, "notes", ".tmp-333") // not a shard directory
	twoHoursAgo := time.Now().Add(-2 * time.Hour)
	for _, p := range []string{old, young, foreign} {
		if err := os.WriteFile(p, make([]byte, 1234), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{old, foreign, r.path(key)} {
		if err := os.Chtimes(p, twoHoursAgo, twoHoursAgo); err != nil {
			t.Fatal(err)
		}
	}
	cutoff := time.Now().Add(-time.Hour)

	left, err := r.Sweep(cutoff, true)
	if err != nil || len(left) != 1 || left[0].URL != "file://"+old || left[0].Size != 1234 ||
		left[0].What != "temporary file" || !left[0].Modified.Equal(twoHoursAgo) {
		t.Fatalf("dry run: %+v %v, want %s alone", left, err, old)
	}
	if _, err := os.Stat(old); err != nil {
		t.Fatalf("the dry run removed %s: %v", old, err)
	}

	left, err = r.Sweep(cutoff, false)
	if err != nil || len(left) != 1 || left[0].URL != "file://"+old {
		t.Fatalf("sweep: %+v %v, want %s alone", left, err, old)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatalf("%s is still there: %v", old, err)
	}
	for _, p := range []string{young, foreign} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("the sweep removed %s: %v", p, err)
		}
	}
	if v, _, err := r.Get(key); err != nil || !bytes.Equal(v, val) {
		t.Fatalf("the entry after the sweep: %q %v", v, err)
	}
	if left, err := r.Sweep(cutoff, false); err != nil || len(left) != 0 {
		t.Fatalf("a second sweep: %+v %v, want nothing", left, err)
	}
}
