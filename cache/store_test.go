package cache

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"

	"lrmc/digest"
)

// openTest opens a store in a fresh directory (or dir, if given) and closes
// it when the test ends.
func openTest(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// payload returns n deterministic pseudo-random bytes.
func payload(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func key(name string) digest.Digest { return digest.Of([]byte(name)) }

// chunksOnly keeps every value in Badger, for the tests of that layout.
var chunksOnly = Options{blobThreshold: -1}

func TestPutGetRoundTrip(t *testing.T) {
	for _, layout := range []struct {
		name string
		opts Options
	}{{"chunks", chunksOnly}, {"files", Options{}}} {
		t.Run(layout.name, func(t *testing.T) { testPutGetRoundTrip(t, layout.opts) })
	}
}

func testPutGetRoundTrip(t *testing.T, opts Options) {
	s := openTest(t, "", opts)
	for _, tc := range []struct {
		n      int
		chunks int
	}{
		{0, 0}, {1, 1}, {100, 1}, {blobThreshold - 1, 1}, {blobThreshold, 1}, {ChunkSize, 1}, {ChunkSize + 1, 2}, {10<<20 + 3, 3},
	} {
		blob := opts.blobThreshold == 0 && tc.n >= blobThreshold
		if blob {
			tc.chunks = 0
		}
		k := key(fmt.Sprint("round trip ", tc.n))
		v := payload(uint64(tc.n), tc.n)
		if err := s.Put(k, "test.op", fmt.Sprint(tc.n, " bytes"), v); err != nil {
			t.Fatal(err)
		}
		got, m, err := s.Get(k)
		if err != nil {
			t.Fatalf("Get(%d bytes): %v", tc.n, err)
		}
		if !bytes.Equal(got, v) {
			t.Errorf("Get(%d bytes) returned different bytes", tc.n)
		}
		want := Meta{Key: k, Op: "test.op", Name: fmt.Sprint(tc.n, " bytes"), Size: int64(tc.n), Chunks: tc.chunks,
			Sum: digest.Of(v), Blob: blob, Created: m.Created, LastUsed: m.Created}
		if !reflect.DeepEqual(m, want) {
			t.Errorf("Meta = %+v, want %+v", m, want)
		}
		st, ok, err := s.Stat(k)
		if err != nil || !ok || !reflect.DeepEqual(st, m) {
			t.Errorf("Stat = %+v, %v, %v; want %+v", st, ok, err, m)
		}
		// A file holds exactly the value, or there is none.
		f, err := os.ReadFile(s.blobPath(k))
		if blob && (err != nil || !bytes.Equal(f, v)) {
			t.Errorf("value file of %d bytes: %d bytes, %v; want the value", tc.n, len(f), err)
		}
		if !blob && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%d bytes in Badger, yet a value file: %v", tc.n, err)
		}
	}

	missing := key("never stored")
	if _, ok, err := s.Stat(missing); ok || err != nil {
		t.Errorf("Stat(missing) = %v, %v; want false, nil", ok, err)
	}
	_, _, err := s.Get(missing)
	if want := "cache: entry " + missing.Short() + ": not found"; !errors.Is(err, ErrNotFound) || err.Error() != want {
		t.Errorf("Get(missing) error = %v, want %q", err, want)
	}
}

func TestReopenPersists(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	v := payload(7, 9<<20)
	k := key("persist")
	if err := s.Put(k, "op", "nine MiB", v); err != nil {
		t.Fatal(err)
	}
	before, _, _ := s.Stat(k)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, dir, Options{})
	got, m, err := s.Get(k)
	if err != nil || !bytes.Equal(got, v) {
		t.Fatalf("after reopen: Get = %d bytes, %v; want the stored 9 MiB", len(got), err)
	}
	if !reflect.DeepEqual(m, before) {
		t.Errorf("after reopen: Meta = %+v, want %+v", m, before)
	}
}

func TestPutReplacesAndRefreshes(t *testing.T) {
	s := openTest(t, "", chunksOnly)
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return clock }
	k := key("replace")
	if err := s.Put(k, "op", "v1", payload(1, 10<<20)); err != nil {
		t.Fatal(err)
	}
	created, _, _ := s.Stat(k)

	// The same bytes again only mark a use.
	clock = clock.Add(time.Hour)
	if err := s.Put(k, "op", "v1", payload(1, 10<<20)); err != nil {
		t.Fatal(err)
	}
	m, _, _ := s.Stat(k)
	if !m.Created.Equal(created.Created) || !m.LastUsed.Equal(clock) {
		t.Errorf("re-Put of the same value: Created %v, LastUsed %v; want %v, %v", m.Created, m.LastUsed, created.Created, clock)
	}

	// Different, shorter bytes replace the entry and leave no stale chunks.
	v2 := payload(2, 1000)
	if err := s.Put(k, "op", "v2", v2); err != nil {
		t.Fatal(err)
	}
	got, m, err := s.Get(k)
	if err != nil || !bytes.Equal(got, v2) || m.Name != "v2" || m.Chunks != 1 {
		t.Fatalf("after replacing: Get = %d bytes, %+v, %v", len(got), m, err)
	}
	// The two chunks past the new end are garbage for GC.
	if keys, _ := s.keysWithPrefix(chunksOf(k)); len(keys) != 3 {
		t.Errorf("after replacing 3 chunks by 1: %d chunk keys before GC, want 3", len(keys))
	}
	if _, err := s.GC(1 << 40); err != nil {
		t.Fatal(err)
	}
	if keys, _ := s.keysWithPrefix(chunksOf(k)); len(keys) != 1 {
		t.Errorf("after replacing 3 chunks by 1: %d chunk keys after GC, want 1", len(keys))
	}
	if got, _, err := s.Get(k); err != nil || !bytes.Equal(got, v2) {
		t.Errorf("after GC: Get = %d bytes, %v", len(got), err)
	}
}

func TestDeleteAndReclaim(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{valueLogFileSize: 9 << 20})
	keep := key("keep")
	if err := s.Put(keep, "op", "keep", payload(3, 1000)); err != nil {
		t.Fatal(err)
	}
	var gone []digest.Digest
	for i := range 5 {
		k := key(fmt.Sprint("delete ", i))
		if err := s.Put(k, "op", "x", payload(uint64(i), 8<<20)); err != nil {
			t.Fatal(err)
		}
		gone = append(gone, k)
	}
	for _, k := range gone {
		if err := s.Delete(k); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.Stat(k); ok {
			t.Errorf("entry %s still there after Delete", k.Short())
		}
	}
	err := s.Delete(gone[0])
	if want := "cache: entry " + gone[0].Short() + ": not found"; !errors.Is(err, ErrNotFound) || err.Error() != want {
		t.Errorf("second Delete error = %v, want %q", err, want)
	}

	before := vlogBytes(t, dir)
	if removed, err := s.GC(1 << 40); err != nil || len(removed) != 0 {
		t.Fatalf("GC = %v, %v; want nothing evicted", removed, err)
	}
	after := vlogBytes(t, dir)
	t.Logf("value log: %.1f MiB before GC, %.1f MiB after", float64(before)/(1<<20), float64(after)/(1<<20))
	for _, k := range gone {
		if keys, _ := s.keysWithPrefix(chunksOf(k)); len(keys) != 0 {
			t.Errorf("%d chunks of deleted %s remain after GC", len(keys), k.Short())
		}
	}
	// 40 MiB deleted; at most the file being appended to may keep some.
	if after > 9<<20 {
		t.Errorf("value log holds %.1f MiB after GC, want at most 9", float64(after)/(1<<20))
	}
	if _, _, err := s.Get(keep); err != nil {
		t.Errorf("kept entry: %v", err)
	}
}

func TestTamperIsDetectedAndEntryDropped(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	k, other := key("tampered"), key("untouched")
	v := payload(4, 10<<20)
	if err := s.Put(k, "prune.wanda", "layer 3 scores", v); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(other, "op", "other", payload(5, 100)); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(key("empty"), "op", "empty", nil); err != nil {
		t.Fatal(err)
	}

	if err := Tamper(dir, k); !errors.Is(err, ErrLocked) {
		t.Errorf("Tamper on an open store: error %v, want ErrLocked", err)
	}
	s.Close()
	if err := Tamper(dir, k); err != nil {
		t.Fatal(err)
	}
	err := Tamper(dir, key("empty"))
	if want := `cache: tamper: entry ` + key("empty").Short() + ` (op "op", "empty") is empty: no byte to flip`; err == nil || err.Error() != want {
		t.Errorf("Tamper(empty) error = %v, want %q", err, want)
	}
	if err := Tamper(dir, key("absent")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Tamper(absent) error = %v, want ErrNotFound", err)
	}

	s = openTest(t, dir, Options{})
	// What the flipped byte does to the hash, recomputed independently.
	bad := bytes.Clone(v)
	bad[len(bad)/2] ^= 0xff
	_, _, err = s.Get(k)
	want := fmt.Sprintf(`cache: entry %s (op "prune.wanda", "layer 3 scores") is corrupt: content hash %s does not match the recorded %s; entry deleted`,
		k.Short(), digest.Of(bad).Short(), digest.Of(v).Short())
	if !errors.Is(err, ErrCorrupt) || err.Error() != want {
		t.Errorf("Get(tampered) error =\n%v\nwant\n%s", err, want)
	}
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Meta.Key != k {
		t.Errorf("error %v does not carry the entry's Meta", err)
	}
	if _, _, err := s.Get(k); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after corruption: error %v, want ErrNotFound", err)
	}
	if _, _, err := s.Get(other); err != nil {
		t.Errorf("untouched entry: %v", err)
	}
}

func TestMissingShortOrMisdescribedChunksAreCorrupt(t *testing.T) {
	s := openTest(t, "", chunksOnly)
	missing, short, huge := key("missing chunk"), key("short chunk"), key("huge")
	for _, k := range []digest.Digest{missing, short, huge} {
		if err := s.Put(k, "capture", "acts", payload(6, 10<<20)); err != nil {
			t.Fatal(err)
		}
	}
	// Metadata that disagrees with itself must not drive an allocation.
	m, _, _ := s.Stat(huge)
	m.Size = 1 << 62
	if err := s.writeMeta(m); err != nil {
		t.Fatal(err)
	}
	err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Delete(chunkKey(missing, 1)); err != nil {
			return err
		}
		return txn.Set(chunkKey(short, 2), []byte("short"))
	})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		k      digest.Digest
		reason string
	}{
		{missing, "chunk 1 of 3 is missing"},
		{short, fmt.Sprintf("chunk 2 of 3 has 5 bytes, want %d", 10<<20-2*ChunkSize)},
		{huge, "metadata says 4611686018427387904 bytes in 3 chunks"},
	} {
		_, _, err := s.Get(tc.k)
		want := fmt.Sprintf(`cache: entry %s (op "capture", "acts") is corrupt: %s; entry deleted`, tc.k.Short(), tc.reason)
		if !errors.Is(err, ErrCorrupt) || err.Error() != want {
			t.Errorf("Get error = %v, want %q", err, want)
		}
		if _, ok, _ := s.Stat(tc.k); ok {
			t.Errorf("corrupt entry %s still listed", tc.k.Short())
		}
	}
}

// setClock makes s.now return *clock.
func setClock(s *Store, clock *time.Time) { s.now = func() time.Time { return *clock } }

func TestLastUsedAndGCEvictLeastRecentlyUsed(t *testing.T) {
	s := openTest(t, "", Options{})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := t0
	setClock(s, &clock)
	names := []string{"A", "B", "C", "D"}
	for i, n := range names {
		clock = t0.Add(time.Duration(i) * 10 * time.Minute)
		if err := s.Put(key(n), "op", n, payload(uint64(i), 1<<20)); err != nil {
			t.Fatal(err)
		}
	}
	// A used 40 minutes in: refreshed. D used 30 s after its Put: within a
	// minute, so not rewritten.
	clock = t0.Add(40 * time.Minute)
	if _, _, err := s.Get(key("A")); err != nil {
		t.Fatal(err)
	}
	clock = t0.Add(30*time.Minute + 30*time.Second)
	if _, _, err := s.Get(key("D")); err != nil {
		t.Fatal(err)
	}

	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, m := range list {
		order = append(order, fmt.Sprintf("%s@%s", m.Name, m.LastUsed.Sub(t0)))
	}
	if got, want := strings.Join(order, " "), "A@40m0s D@30m0s C@20m0s B@10m0s"; got != want {
		t.Errorf("List order = %s, want %s", got, want)
	}
	if n, size, err := s.Usage(); n != 4 || size != 4<<20 || err != nil {
		t.Errorf("Usage = %d, %d, %v; want 4, %d", n, size, err, 4<<20)
	}

	removed, err := s.GC(2<<20 + 5)
	if err != nil {
		t.Fatal(err)
	}
	var gone []string
	for _, m := range removed {
		gone = append(gone, m.Name)
	}
	if got := strings.Join(gone, " "); got != "B C" {
		t.Errorf("GC removed %q, want \"B C\"", got)
	}
	for _, n := range names {
		_, _, err := s.Get(key(n))
		if wantGone := n == "B" || n == "C"; wantGone != errors.Is(err, ErrNotFound) || (!wantGone && err != nil) {
			t.Errorf("after GC: Get(%s) error = %v", n, err)
		}
	}
	if n, size, _ := s.Usage(); n != 2 || size != 2<<20 {
		t.Errorf("Usage after GC = %d, %d; want 2, %d", n, size, 2<<20)
	}
}

// vlogBytes sums the disk space allocated to Badger's value-log files under
// dir. (Their apparent sizes overstate it: Badger extends the file being
// appended to, sparsely, to twice the value-log file size.)
func vlogBytes(t *testing.T, dir string) int64 {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "badger", "*.vlog"))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, f := range files {
		var st unix.Stat_t
		if err := unix.Stat(f, &st); err != nil {
			t.Fatal(err)
		}
		n += st.Blocks * 512
	}
	return n
}

func TestGCReclaimsDiskSpace(t *testing.T) {
	dir := t.TempDir()
	// 9 MiB value-log files hold two 4 MiB chunks each, so evicting whole
	// entries empties whole files.
	s := openTest(t, dir, Options{valueLogFileSize: 9 << 20})
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	setClock(s, &clock)
	const n, size = 6, 8 << 20
	for i := range n {
		clock = clock.Add(time.Hour)
		if err := s.Put(key(fmt.Sprint("reclaim ", i)), "op", fmt.Sprint(i), payload(uint64(i), size)); err != nil {
			t.Fatal(err)
		}
	}
	before := vlogBytes(t, dir)
	removed, err := s.GC(size)
	if err != nil {
		t.Fatal(err)
	}
	after := vlogBytes(t, dir)
	t.Logf("value log: %.1f MiB before GC, %.1f MiB after evicting %d of %d entries", float64(before)/(1<<20), float64(after)/(1<<20), len(removed), n)
	if len(removed) != n-1 {
		t.Fatalf("GC removed %d entries, want %d", len(removed), n-1)
	}
	// 40 of 48 MiB became garbage. Only the survivor's 8 MiB and the file
	// being appended to (at most 9 MiB, holding no more than the survivor or
	// the rewritten rest of another file) may remain.
	if after > 17<<20 {
		t.Errorf("value log holds %.1f MiB after GC, want at most 17", float64(after)/(1<<20))
	}
	got, _, err := s.Get(key(fmt.Sprint("reclaim ", n-1)))
	if err != nil || !bytes.Equal(got, payload(n-1, size)) {
		t.Errorf("survivor after GC: %d bytes, %v", len(got), err)
	}
}

func TestVerifyAndOrphanChunks(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, chunksOnly)
	good, bad := key("good"), key("bad")
	for _, k := range []digest.Digest{good, bad} {
		if err := s.Put(k, "op", k.Short(), payload(8, 6<<20)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if err := Tamper(dir, bad); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, chunksOnly)

	// What a crash leaves: chunks of a Put that never wrote its Meta, and a
	// chunk past the end of a live entry.
	crashed := key("crashed")
	err := s.db.Update(func(txn *badger.Txn) error {
		for i := range 2 {
			if err := txn.Set(chunkKey(crashed, i), payload(uint64(i), 1000)); err != nil {
				return err
			}
		}
		return txn.Set(chunkKey(good, 2), []byte("stray"))
	})
	if err != nil {
		t.Fatal(err)
	}

	badList, err := s.Verify()
	if err != nil {
		t.Fatal(err)
	}
	if len(badList) != 1 || badList[0].Key != bad {
		t.Errorf("Verify reported %+v, want only %s", badList, bad.Short())
	}
	for _, tc := range []struct {
		prefix []byte
		want   int
	}{{chunksOf(crashed), 0}, {chunksOf(bad), 0}, {chunksOf(good), 2}} {
		if keys, _ := s.keysWithPrefix(tc.prefix); len(keys) != tc.want {
			t.Errorf("after Verify: %d chunks under %x, want %d", len(keys), tc.prefix, tc.want)
		}
	}
	if _, _, err := s.Get(good); err != nil {
		t.Errorf("good entry after Verify: %v", err)
	}

	// GC sweeps orphans too, even when nothing needs evicting.
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(chunkKey(crashed, 0), []byte("x")) }); err != nil {
		t.Fatal(err)
	}
	if removed, err := s.GC(1 << 40); err != nil || len(removed) != 0 {
		t.Fatalf("GC = %v, %v", removed, err)
	}
	if keys, _ := s.keysWithPrefix(chunksOf(crashed)); len(keys) != 0 {
		t.Errorf("GC left %d orphan chunks", len(keys))
	}
}

func TestConcurrentUse(t *testing.T) {
	s := openTest(t, "", Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 4 {
		wg.Go(func() {
			for i := range 5 {
				k := key(fmt.Sprint(g, "/", i))
				v := payload(uint64(g*10+i), (i+1)*(1<<20)+i)
				if err := s.Put(k, "op", "", v); err != nil {
					errs <- err
					return
				}
				got, _, err := s.Get(k)
				if err != nil || !bytes.Equal(got, v) {
					errs <- fmt.Errorf("Get %d/%d: %d bytes, %v", g, i, len(got), err)
				}
			}
		})
	}
	wg.Go(func() {
		for range 3 {
			if _, err := s.GC(1 << 40); err != nil {
				errs <- err
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n, _, _ := s.Usage(); n != 20 {
		t.Errorf("%d entries after concurrent puts, want 20", n)
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("LRMC_CACHE", "/some/where")
	if got := DefaultDir(); got != "/some/where" {
		t.Errorf("DefaultDir with $LRMC_CACHE = %q", got)
	}
	t.Setenv("LRMC_CACHE", "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if got := DefaultDir(); got != "/xdg/lrmc" {
		t.Errorf("DefaultDir with $XDG_CACHE_HOME = %q, want /xdg/lrmc", got)
	}
}

func TestOpenRefusesOtherFormat(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(formatKey, []byte("lrmc-cache/0")) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(dir, Options{})
	if want := fmt.Sprintf(`cache: %s has format "lrmc-cache/0", this lrmc reads "lrmc-cache/3" (use another --cache directory, or lrmc cache reset to empty this one)`, dir); err == nil || err.Error() != want {
		t.Errorf("Open error = %v, want %q", err, want)
	}
	// The refused Open released the lock.
	if err := Tamper(dir, key("x")); errors.Is(err, ErrLocked) {
		t.Errorf("lock still held after a refused Open: %v", err)
	}
}

// A cache whose directory is removed while it is open (a Slurm job's
// cleanup trap racing its own lrmc) used to hang in Close for ever: Badger
// retries the failed memtable flush once a second. Close now returns, with
// an error that says what happened.
func TestCloseAfterTheDirectoryWasRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	s, err := Open(dir, chunksOnly)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(key("k"), "op", "small", payload(3, 1000)); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		want := "cache: close " + dir + ": its directory " + filepath.Join(dir, "badger") +
			" was removed while the cache was open; entries written since it was removed are lost"
		if err == nil || err.Error() != want {
			t.Fatalf("Close = %v, want %q", err, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return within 30 s of its directory's removal")
	}
}
