package cache

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"lrmc/digest"
)

// blobFiles lists the names in the cache's value-file directory, sorted.
func blobFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(blobsDir(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestDamagedValueFilesAreMisses(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	const n = 3<<20 + 5
	names := []string{"deleted", "truncated", "appended", "flipped", "huge meta", "directory"}
	values := map[string][]byte{}
	for i, name := range names {
		values[name] = payload(uint64(i+20), n)
		if err := s.Put(key(name), "capture", name, values[name]); err != nil {
			t.Fatal(err)
		}
	}
	path := func(name string) string { return s.blobPath(key(name)) }
	if err := os.Remove(path("deleted")); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path("truncated"), n-1); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path("appended"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("x"))
	f.Close()
	if err := flipFileByte(path("flipped"), n-1); err != nil {
		t.Fatal(err)
	}
	// Metadata claiming an absurd size must not drive an allocation.
	m, _, _ := s.Stat(key("huge meta"))
	m.Size = 1 << 62
	if err := s.writeMeta(m); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path("directory")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path("directory"), 0o755); err != nil {
		t.Fatal(err)
	}

	flipped := bytes.Clone(values["flipped"])
	flipped[n-1] ^= 0xff
	for _, tc := range []struct{ name, reason string }{
		{"deleted", "value file is missing"},
		{"truncated", fmt.Sprintf("value file has %d bytes, want %d", n-1, n)},
		{"appended", fmt.Sprintf("value file has %d bytes, want %d", n+1, n)},
		{"flipped", fmt.Sprintf("content hash %s does not match the recorded %s", digest.Of(flipped).Short(), digest.Of(values["flipped"]).Short())},
		{"huge meta", fmt.Sprintf("value file has %d bytes, want %d", n, int64(1)<<62)},
		{"directory", "value file is not a regular file"},
	} {
		k := key(tc.name)
		_, _, err := s.Get(k)
		want := fmt.Sprintf(`cache: entry %s (op "capture", %q) is corrupt: %s; entry deleted`, k.Short(), tc.name, tc.reason)
		if !errors.Is(err, ErrCorrupt) || err.Error() != want {
			t.Errorf("Get(%s) error =\n%v\nwant\n%s", tc.name, err, want)
		}
		if _, ok, _ := s.Stat(k); ok {
			t.Errorf("corrupt entry %s still listed", tc.name)
		}
		// The damaged file went with the entry...
		if _, err := os.Stat(path(tc.name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: damaged file still there: %v", tc.name, err)
		}
		// ...and the recomputed value is stored and read back whole.
		if err := s.Put(k, "capture", tc.name, values[tc.name]); err != nil {
			t.Fatal(err)
		}
		if got, _, err := s.Get(k); err != nil || !bytes.Equal(got, values[tc.name]) {
			t.Errorf("%s recomputed: %d bytes, %v", tc.name, len(got), err)
		}
	}
}

func TestValueFilesFollowTheirEntries(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	big, small, evicted, deleted := key("big"), key("small"), key("evicted"), key("deleted")
	for _, k := range []digest.Digest{big, evicted, deleted} {
		if err := s.Put(k, "op", k.Short(), payload(uint64(k[0]), 2<<20)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(small, "op", "small", payload(1, 1000)); err != nil {
		t.Fatal(err)
	}
	want := []string{big.String(), deleted.String(), evicted.String(), blobTmpDir}
	slices.Sort(want)
	if got := blobFiles(t, dir); !slices.Equal(got, want) {
		t.Fatalf("value files %v, want %v", got, want)
	}

	// Delete removes the file at once.
	if err := s.Delete(deleted); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.blobPath(deleted)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("deleted entry's file: %v", err)
	}
	// A small value replacing a file leaves no file; a large one replacing
	// chunks leaves no chunks once GC has run.
	if err := s.Put(big, "op", "now small", payload(2, 10)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.blobPath(big)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("replaced file: %v", err)
	}
	grown := payload(3, 3<<20)
	if err := s.Put(small, "op", "now big", grown); err != nil {
		t.Fatal(err)
	}

	// What crashes leave: a file no Meta names, a temporary file. And a
	// file this package did not write, which is left alone.
	orphan := key("orphan").String()
	for _, p := range []string{orphan, filepath.Join(blobTmpDir, "put-123"), "README"} {
		if err := os.WriteFile(filepath.Join(blobsDir(dir), p), []byte("left over"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Evict one entry by size: its file goes, the orphan and the
	// temporary file too.
	// (The least recently used is evicted: the others were replaced since.)
	removed, err := s.GC(3<<20 + 1000)
	if err != nil || len(removed) != 1 || removed[0].Key != evicted {
		t.Fatalf("GC to 3 MiB evicted %v, %v; want only %s", removed, err, evicted.Short())
	}
	want = []string{"README", small.String(), blobTmpDir}
	slices.Sort(want)
	if got := blobFiles(t, dir); !slices.Equal(got, want) {
		t.Errorf("value files after GC %v, want %v", got, want)
	}
	if tmp, _ := os.ReadDir(filepath.Join(blobsDir(dir), blobTmpDir)); len(tmp) != 0 {
		t.Errorf("GC left %d temporary files", len(tmp))
	}
	if got, _, err := s.Get(small); err != nil || !bytes.Equal(got, grown) {
		t.Errorf("survivor: %d bytes, %v", len(got), err)
	}
	if keys, _ := s.keysWithPrefix(chunksOf(small)); len(keys) != 0 {
		t.Errorf("%d chunks of the value the file replaced survive GC", len(keys))
	}

	// Open removes what a killed write left in tmp/ (it holds the lock).
	s.Close()
	leftover := filepath.Join(blobsDir(dir), blobTmpDir, "put-456")
	if err := os.WriteFile(leftover, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, Options{})
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open kept a killed write's temporary file: %v", err)
	}
	// Verify drops orphans as GC does.
	if err := os.WriteFile(filepath.Join(blobsDir(dir), orphan), []byte("again"), 0o644); err != nil {
		t.Fatal(err)
	}
	if bad, err := s.Verify(); err != nil || len(bad) != 0 {
		t.Errorf("Verify = %v, %v", bad, err)
	}
	if _, err := os.Stat(filepath.Join(blobsDir(dir), orphan)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Verify kept an orphan value file: %v", err)
	}

	// Reset removes the files with the database.
	s.Close()
	if err := Reset(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(blobsDir(dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Reset kept the value files: %v", err)
	}
}

func TestOpenMigratesFormatV2(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, chunksOnly)
	old, v := key("old"), payload(9, 5<<20)
	if err := s.Put(old, "op", "old", v); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(formatKey, []byte(formatVersionV2)) }); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openTest(t, dir, Options{})
	var format []byte
	s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(formatKey)
		if err == nil {
			format, err = item.ValueCopy(nil)
		}
		return err
	})
	if string(format) != formatVersion {
		t.Errorf("format after migration %q, want %q", format, formatVersion)
	}
	// The old entry still reads from its chunks; a new one is a file.
	if got, m, err := s.Get(old); err != nil || !bytes.Equal(got, v) || m.Blob || m.Chunks != 2 {
		t.Errorf("old entry: %d bytes, %+v, %v", len(got), m, err)
	}
	fresh := key("new")
	if err := s.Put(fresh, "op", "new", v); err != nil {
		t.Fatal(err)
	}
	if m, _, _ := s.Stat(fresh); !m.Blob {
		t.Errorf("new large entry %+v is not a file", m)
	}
	if bad, err := s.Verify(); err != nil || len(bad) != 0 {
		t.Errorf("Verify of the mixed cache = %v, %v", bad, err)
	}
}

func TestRepairKeepsValueFiles(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	kept, v := key("kept"), payload(10, 2<<20)
	if err := s.Put(kept, "op", "kept", v); err != nil {
		t.Fatal(err)
	}
	lost := key("lost")
	if err := s.Put(lost, "op", "lost", payload(11, 2<<20)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// The database is unopenable, and one value file is damaged.
	if err := os.WriteFile(filepath.Join(dir, "badger", "MANIFEST"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := flipFileByte(filepath.Join(blobsDir(dir), lost.String()), 7); err != nil {
		t.Fatal(err)
	}
	rep, err := Repair(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.MovedAside == "" || len(rep.Kept) != 1 || rep.Kept[0].Key != kept || len(rep.Dropped) != 1 || rep.Dropped[0].Key != lost {
		t.Fatalf("Repair kept %v dropped %v (moved aside %q)", rep.Kept, rep.Dropped, rep.MovedAside)
	}
	s = openTest(t, dir, Options{})
	if got, m, err := s.Get(kept); err != nil || !bytes.Equal(got, v) || !m.Blob {
		t.Errorf("kept entry after repair: %d bytes, %+v, %v", len(got), m, err)
	}
	if got := blobFiles(t, dir); !slices.Equal(got, []string{kept.String(), blobTmpDir}) && !slices.Equal(got, []string{kept.String()}) {
		t.Errorf("value files after repair %v, want only the kept entry's", got)
	}
}

// cacheResidentBytes sums the resident bytes of this process's mappings of
// files under dir (/proc/self/smaps): what the cache keeps in RSS.
func cacheResidentBytes(t *testing.T, dir string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip("no /proc/self/smaps:", err)
	}
	defer f.Close()
	var total int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":"):
			in = len(fields) >= 6 && strings.HasPrefix(fields[5], dir+"/")
		case in && len(fields) == 3 && fields[0] == "Rss:":
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			total += kb << 10
		}
	}
	return total
}

// vmRSS is this process's resident set size (/proc/self/status).
func vmRSS(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status:", err)
	}
	for l := range strings.Lines(string(b)) {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// TestWrittenValuesAreNotResident writes 64 MiB of 4 MiB values with each
// layout and measures the resident bytes of the process's mappings of the
// cache's files: through Badger's memory-mapped value log they stay
// resident (about the bytes written), as files they are not mapped at all.
// LRMC_RESIDENCY_MIB=2048 measures on a larger scale (not in CI).
func TestWrittenValuesAreNotResident(t *testing.T) {
	const size = 4 << 20
	total := int64(64 << 20)
	if e := os.Getenv("LRMC_RESIDENCY_MIB"); e != "" {
		mib, err := strconv.ParseInt(e, 10, 64)
		if err != nil || mib < 4 {
			t.Fatalf("LRMC_RESIDENCY_MIB=%q: want a number of MiB, at least 4", e)
		}
		total = mib << 20
	}
	resident := map[string]int64{}
	v := payload(1, size)
	for _, layout := range []struct {
		name string
		opts Options
	}{{"chunks", chunksOnly}, {"files", Options{}}} {
		dir := t.TempDir()
		s := openTest(t, dir, layout.opts)
		rss0 := vmRSS(t)
		for i := range total / size {
			binary.LittleEndian.PutUint64(v, uint64(i)) // distinct values
			if err := s.Put(key(fmt.Sprint(layout.name, i)), "capture", "acts", v); err != nil {
				t.Fatal(err)
			}
		}
		resident[layout.name] = cacheResidentBytes(t, dir)
		t.Logf("%s: after writing %d MiB, %.1f MiB of the cache's files resident; process RSS grew %.1f MiB", layout.name, total>>20,
			float64(resident[layout.name])/(1<<20), float64(vmRSS(t)-rss0)/(1<<20))
		s.Close()
	}
	// The control: the value log does keep what was written resident, so
	// the measurement sees what it is meant to.
	if resident["chunks"] < total/2 {
		t.Errorf("value log: %d bytes resident after writing %d; the measurement misses the mapping", resident["chunks"], total)
	}
	// Files: only Badger's own small structures (memtable arena, tables).
	if resident["files"] > 20<<20 {
		t.Errorf("files: %.1f MiB resident after writing %d MiB, want under 20 (the memtable and tables)", float64(resident["files"])/(1<<20), total>>20)
	}
}

// TestReplacedWhileReadNeverLies replaces a file-stored value over and over
// while other goroutines read it and GC sweeps: a read returns one of the
// values put, or not found, never other bytes and never a false corrupt.
func TestReplacedWhileReadNeverLies(t *testing.T) {
	s := openTest(t, "", Options{})
	k := key("replaced")
	vals := [][]byte{payload(30, 2<<20), payload(31, 3<<20)}
	if err := s.Put(k, "op", "v", vals[0]); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	errs := make(chan error, 16)
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				got, _, err := s.Get(k)
				switch {
				case errors.Is(err, ErrNotFound):
				case err != nil && strings.HasSuffix(err.Error(), "keeps changing while being read"):
					// Raced twice in a row: an honest refusal, not a lie.
				case err != nil:
					errs <- err
					return
				case !bytes.Equal(got, vals[0]) && !bytes.Equal(got, vals[1]):
					errs <- fmt.Errorf("read %d bytes that are neither value", len(got))
					return
				}
			}
		})
	}
	for i := range 20 {
		if err := s.Put(k, "op", "v", vals[i%2]); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			if _, err := s.GC(1 << 40); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(done)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
