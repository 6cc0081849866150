package cache

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"lrmc/digest"
)

// filledCache writes two entries (one in Badger, one a value file) and an
// apply record into a fresh cache, closes it and returns its directory.
func filledCache(t *testing.T) (dir string, small, large digest.Digest, recipe string) {
	t.Helper()
	dir = t.TempDir()
	recipe = filepath.Join(dir, "r.cue")
	small, large = key("small"), key("large")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(small, "op", "small", payload(1, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(large, "op", "large", payload(2, blobThreshold+5)); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordApply(Apply{Recipe: recipe, Time: time.Now(), Keys: map[digest.Digest][]string{small: {"a"}, large: {"a"}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, small, large, recipe
}

// A store opened with NoWrite reads everything a writable one does, refuses
// and counts every write, and leaves the directory exactly as it was: no
// write-ahead log, no value-log file, nothing truncated or deleted.
func TestNoWriteReadsAndChangesNothing(t *testing.T) {
	dir, small, large, recipe := filledCache(t)
	lockFile := filepath.Join(dir, "lrmc.lock") // records each holder, by design
	before := dirState(t, dir)
	delete(before, lockFile)

	s, err := Open(dir, Options{NoWrite: true})
	if err != nil {
		t.Fatal(err)
	}
	if !s.NoWrite() || !s.ReadOnly() {
		t.Fatal("NoWrite store does not say so")
	}
	// Another process (or store) cannot take the cache meanwhile.
	if _, err := Open(dir, Options{}); !errors.As(err, new(*LockedError)) {
		t.Errorf("second open while a NoWrite store holds the cache: %v, want a LockedError", err)
	}
	for i, k := range []digest.Digest{small, large} {
		v, m, err := s.Get(k)
		want := payload(uint64(i+1), []int{1000, blobThreshold + 5}[i])
		if err != nil || !bytes.Equal(v, want) || m.Size != int64(len(want)) {
			t.Fatalf("Get %d: err %v, %d bytes (size %d), want %d", i, err, len(v), m.Size, len(want))
		}
	}
	if n := s.Refused(); n != 0 {
		t.Fatalf("reads counted %d refused writes", n)
	}
	// The same apply record is no write; any other is refused.
	same := Apply{Recipe: recipe, Time: time.Now(), Keys: map[digest.Digest][]string{small: {"a"}, large: {"a"}}}
	if err := s.RecordApply(same); err != nil {
		t.Errorf("RecordApply of the recorded keys: %v", err)
	}
	other := Apply{Recipe: recipe, Time: time.Now(), Keys: map[digest.Digest][]string{small: {"a"}}}
	writes := []struct {
		name string
		do   func() error
	}{
		{"put", func() error { return s.Put(key("new"), "op", "new", []byte("v")) }},
		{"delete", func() error { return s.Delete(small) }},
		{"record apply", func() error { return s.RecordApply(other) }},
		{"gc", func() error { _, err := s.GC(0); return err }},
		{"verify", func() error { _, err := s.Verify(); return err }},
	}
	for i, w := range writes {
		err := w.do()
		if !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), "opened without writing") {
			t.Errorf("%s: %v, want an ErrReadOnly saying the cache was opened without writing", w.name, err)
		}
		if n := s.Refused(); n != int64(i+1) {
			t.Errorf("after %s: Refused = %d, want %d", w.name, n, i+1)
		}
	}
	// A file digest is right; its memo is postponed, not refused.
	f := filepath.Join(t.TempDir(), "f")
	os.WriteFile(f, []byte("some bytes"), 0o644)
	d, err := s.FileDigest(f)
	if err != nil || d != digest.Of([]byte("some bytes")) {
		t.Errorf("FileDigest: %v, %v", d, err)
	}
	if n, p := s.Refused(), s.Postponed().Len(); n != int64(len(writes)) || p != 1 {
		t.Errorf("after a file digest: Refused = %d, Postponed = %d; want %d and 1", n, p, len(writes))
	}
	// So is a derived memo.
	if err := s.SetDerived("kind", small, []byte("memo")); err != nil {
		t.Errorf("SetDerived: %v", err)
	}
	if _, ok := s.Derived("kind", small); ok || s.Postponed().Len() != 2 || s.Refused() != int64(len(writes)) {
		t.Errorf("SetDerived on a NoWrite store: recorded %v, Postponed %d, Refused %d", ok, s.Postponed().Len(), s.Refused())
	}
	postponed := s.Postponed()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	after := dirState(t, dir)
	delete(after, lockFile)
	if !maps.Equal(after, before) {
		t.Errorf("a NoWrite store changed the cache directory:\nbefore: %v\nafter:  %v", before, after)
	}

	// Nothing refused was written: a writable open finds the cache as it was.
	w := openTest(t, dir, Options{})
	if _, ok, _ := w.Stat(key("new")); ok {
		t.Error("the refused Put is in the cache")
	}
	if _, ok, _ := w.Stat(small); !ok {
		t.Error("the refused Delete deleted")
	}
	memo := func() bool {
		err := w.db.View(func(txn *badger.Txn) error {
			_, err := txn.Get(append([]byte(filePrefix), f...))
			return err
		})
		return err == nil
	}
	if memo() {
		t.Fatal("the postponed memo was recorded by the NoWrite store")
	}
	w.CatchUp(postponed)
	if !memo() {
		t.Error("CatchUp did not record the postponed file digest memo")
	}
	if v, ok := w.Derived("kind", small); !ok || string(v) != "memo" {
		t.Errorf("CatchUp: derived memo %q, %v; want the postponed one", v, ok)
	}
}

// A cache that cannot be read without writing is refused with
// ErrNeedsWrite, and a writable open then serves it: no cache yet, and
// one whose last writer never closed it (its write-ahead log still holds
// entries and room, which read-only Badger will not replay).
func TestNoWriteNeedsWrite(t *testing.T) {
	if _, err := Open(t.TempDir(), Options{NoWrite: true}); !errors.Is(err, ErrNeedsWrite) {
		t.Errorf("NoWrite open of an empty directory: %v, want ErrNeedsWrite", err)
	}

	dir, small, _, _ := filledCache(t)
	// Small value-log files: an open store's is sparse at twice this
	// size, and the copy below reads it whole.
	s := openTest(t, dir, Options{valueLogFileSize: 1 << 20})
	if err := s.Put(key("unflushed"), "op", "u", []byte("in the write-ahead log")); err != nil {
		t.Fatal(err)
	}
	// A copy taken while s is open is what a crash leaves (s's lock file
	// is copied too, but the lock is a flock, not the file).
	crashed := t.TempDir()
	if err := os.CopyFS(crashed, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(crashed, Options{NoWrite: true}); !errors.Is(err, ErrNeedsWrite) {
		t.Fatalf("NoWrite open of a cache left open: %v, want ErrNeedsWrite", err)
	}
	w := openTest(t, crashed, Options{})
	for _, k := range []digest.Digest{small, key("unflushed")} {
		if _, _, err := w.Get(k); err != nil {
			t.Errorf("writable open after ErrNeedsWrite: %v", err)
		}
	}
}

// A damaged entry read through a NoWrite store is an error that counts a
// refused write (dropping the entry is one), never a value; a writable
// store then drops it as usual.
func TestNoWriteDamagedEntryIsRefusedNotServed(t *testing.T) {
	dir, small, large, _ := filledCache(t)
	for _, k := range []digest.Digest{small, large} {
		if err := Tamper(dir, k); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(dir, Options{NoWrite: true})
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range []digest.Digest{small, large} {
		v, _, err := s.Get(k)
		if !errors.Is(err, ErrReadOnly) || v != nil {
			t.Errorf("Get of a damaged entry %d: %d bytes, %v; want ErrReadOnly", i, len(v), err)
		}
		if n := s.Refused(); n != int64(i+1) {
			t.Errorf("Refused = %d, want %d", n, i+1)
		}
	}
	s.Close()
	w := openTest(t, dir, Options{})
	for _, k := range []digest.Digest{small, large} {
		if _, _, err := w.Get(k); !errors.Is(err, ErrCorrupt) {
			t.Errorf("writable Get of a damaged entry: %v, want ErrCorrupt", err)
		}
		if _, ok, _ := w.Stat(k); ok {
			t.Error("damaged entry not dropped by the writable store")
		}
	}
}

// Reads through a NoWrite store that a writable one would have recorded as
// a use (LastUsed older than touchInterval) are postponed, not refused;
// CatchUp on a writable store records them.
func TestNoWriteStaleReadsAreCaughtUp(t *testing.T) {
	dir, small, large, _ := filledCache(t)
	s, err := Open(dir, Options{NoWrite: true})
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(2 * touchInterval)
	setClock(s, &later)
	if _, _, err := s.Get(small); err != nil {
		t.Fatal(err)
	}
	p := s.Postponed()
	if p.Len() != 1 || s.Refused() != 0 {
		t.Fatalf("Postponed %d, Refused %d; want 1 and 0", p.Len(), s.Refused())
	}
	s.Close()

	w := openTest(t, dir, Options{})
	setClock(w, &later)
	w.CatchUp(p)
	m, _, _ := w.Stat(small)
	if !m.LastUsed.Equal(later.UTC()) {
		t.Errorf("LastUsed after CatchUp = %v, want %v", m.LastUsed, later.UTC())
	}
	if m, _, _ := w.Stat(large); m.LastUsed.Equal(later.UTC()) {
		t.Error("CatchUp touched an entry that was not read")
	}
}
