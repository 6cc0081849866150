package cache

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"

	"lrmc/digest"
)

// damageFixture is a small cache written through Store: values in the
// value log (5 MiB, two chunks) and in the LSM tree (small), some flushed to
// tables by a Close, some only in the write-ahead log (copied while open,
// after a Sync, as a kill -9 would leave them).
type damageFixture struct {
	dir    string
	values map[digest.Digest][]byte
}

func newDamageFixture(t *testing.T) damageFixture {
	t.Helper()
	f := damageFixture{dir: t.TempDir(), values: map[digest.Digest][]byte{}}
	live := filepath.Join(t.TempDir(), "live")
	put := func(s *Store, name string, n int) {
		k, v := key(name), payload(uint64(len(f.values)+1), n)
		if err := s.Put(k, "op", name, v); err != nil {
			t.Fatal(err)
		}
		f.values[k] = v
	}
	small := Options{valueLogFileSize: 8 << 20}
	s, err := Open(live, small)
	if err != nil {
		t.Fatal(err)
	}
	put(s, "big flushed", 5<<20)
	put(s, "small flushed", 1000)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(live, small)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put(s, "big in log", 5<<20)
	put(s, "small in log", 2000)
	if err := s.db.Sync(); err != nil {
		t.Fatal(err)
	}
	copyTree(t, live, f.dir)
	return f
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		return copySparse(p, dst) // logs are preallocated, mostly holes
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkNoWrongValue opens dir and Gets every fixture key: a value returned
// must be the one stored; errors are fine, panics are not (they fail the
// test binary). It returns how many values were read intact.
func (f damageFixture) checkNoWrongValue(t *testing.T, dir, what string) (intact int, openErr error) {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		return 0, err
	}
	defer s.Close()
	for k, want := range f.values {
		got, _, err := s.Get(k)
		if err != nil {
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: Get %s returned wrong bytes", what, k.Short())
			continue
		}
		intact++
	}
	if _, err := s.List(); err != nil && !errors.Is(err, ErrDamaged) {
		t.Errorf("%s: List: %v", what, err)
	}
	return intact, nil
}

func TestDamagedFilesNeverPanicOrLieAndRepair(t *testing.T) {
	f := newDamageFixture(t)
	ents, err := os.ReadDir(filepath.Join(f.dir, "badger"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	trials, detected := 0, 0
	for _, e := range ents {
		name := e.Name()
		ext := filepath.Ext(name)
		if name == "LOCK" || name == "DISCARD" || ext == "" && name != "MANIFEST" && name != "KEYREGISTRY" {
			continue
		}
		kinds[map[string]string{".sst": "sst", ".vlog": "vlog", ".mem": "mem"}[ext]+map[bool]string{true: name}[ext == ""]] = true
		info, _ := e.Info()
		size := info.Size()
		type damage struct {
			what string
			do   func(p string) error
		}
		var damages []damage
		cuts, flips := []int64{size / 2}, []int64{7, size / 2}
		if os.Getenv("LRMC_DAMAGE_FULL") != "" { // the wider matrix: ≈20 s
			cuts, flips = []int64{0, size / 2, size - 1}, []int64{0, 7, 40, size / 2, size - 20}
		}
		for _, cut := range cuts {
			damages = append(damages, damage{fmt.Sprintf("truncate to %d", cut), func(p string) error { return os.Truncate(p, cut) }})
		}
		for _, off := range flips {
			if off < 0 || off >= size {
				continue
			}
			damages = append(damages, damage{fmt.Sprintf("flip byte %d", off), func(p string) error { return flipByte(p, off) }})
		}
		for _, d := range damages {
			what := name + ": " + d.what
			dir := t.TempDir()
			copyTree(t, f.dir, dir)
			if err := d.do(filepath.Join(dir, "badger", name)); err != nil {
				t.Fatal(err)
			}
			trials++
			intact, openErr := f.checkNoWrongValue(t, dir, what)
			if err := openErr; err != nil {
				if !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrNoSpace) {
					t.Errorf("%s: Open error %q is not ErrDamaged", what, err)
				}
				if de := (*DamagedError)(nil); errors.As(err, &de) && de.File == "" {
					t.Errorf("%s: Open error %q names no file", what, err)
				}
				if want := fmt.Sprintf("cache %s is damaged (", dir); !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "; run lrmc cache verify --repair") {
					t.Errorf("%s: Open error %q does not name the way out", what, err)
				}
			}
			if openErr != nil || intact < len(f.values) {
				detected++
			}
			rep, err := Repair(dir, Options{})
			if err != nil {
				t.Errorf("%s: repair: %v", what, err)
				continue
			}
			after, err := f.checkNoWrongValue(t, dir, what+" (repaired)")
			if err != nil {
				t.Errorf("%s: Open after repair: %v", what, err)
				continue
			}
			// A damaged header of a log, registry or MANIFEST loses
			// nothing: Repair restores or rebuilds it.
			if ext != ".sst" && d.what == "flip byte 7" && len(rep.Kept) != len(f.values) {
				t.Errorf("%s: repair kept %d of %d entries", what, len(rep.Kept), len(f.values))
			}
			if after != len(rep.Kept) {
				t.Errorf("%s: repair kept %d entries but %d read back", what, len(rep.Kept), after)
			}
			t.Logf("%s: open error %v, %d/%d intact before repair, kept %d, dropped %d, moved aside %q",
				what, openErr, intact, len(f.values), len(rep.Kept), len(rep.Dropped), filepath.Base(rep.MovedAside))
		}
	}
	for _, k := range []string{"sst", "vlog", "mem", "MANIFEST", "KEYREGISTRY"} {
		if !kinds[k] {
			t.Errorf("the fixture has no %s file to damage (has %v)", k, kinds)
		}
	}
	t.Logf("%d damage trials, %d detected", trials, detected)
}

func flipByte(p string, off int64) error {
	fh, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer fh.Close()
	b := []byte{0}
	if _, err := fh.ReadAt(b, off); err != nil {
		return err
	}
	b[0] ^= 0xa5
	_, err = fh.WriteAt(b, off)
	return err
}

func TestDamagedMetaReadsAsCorruptNotWrong(t *testing.T) {
	s := openTest(t, "", Options{})
	k := key("meta")
	v := payload(3, 100)
	if err := s.Put(k, "op", "meta", v); err != nil {
		t.Fatal(err)
	}
	// Damage the record's JSON (its Size) without touching the seal, as a
	// bit flip on disk would.
	err := s.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(metaKey(k))
		if err != nil {
			return err
		}
		b, _ := item.ValueCopy(nil)
		i := bytes.Index(b, []byte(`"Size":100`))
		b[i+len(`"Size":1`)] = '1' // 100 -> 110
		return txn.Set(metaKey(k), b)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Stat(k); ok || err != nil {
		t.Errorf("Stat of a damaged Meta: ok %v, err %v; want a miss", ok, err)
	}
	if metas, err := s.List(); err != nil || len(metas) != 0 {
		t.Errorf("List with a damaged Meta: %v, %v", metas, err)
	}
	if _, _, err := s.Get(k); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "metadata record is damaged") {
		t.Errorf("Get of a damaged Meta: %v, want ErrCorrupt", err)
	}
	if _, _, err := s.Get(k); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after the drop: %v, want ErrNotFound", err)
	}
}

func TestOpenMigratesFormatV1(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	k, v := key("old"), payload(4, 3000)
	if err := s.Put(k, "op", "old", v); err != nil {
		t.Fatal(err)
	}
	// Rewrite as lrmc-cache/1 left it: bare JSON.
	m, _, _ := s.Stat(k)
	err := s.db.Update(func(txn *badger.Txn) error {
		b, _ := encodeMeta(m)
		if err := txn.Set(metaKey(k), b[digest.Size:]); err != nil {
			return err
		}
		return txn.Set(formatKey, []byte(formatVersionV1))
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTest(t, dir, Options{})
	if got, _, err := s.Get(k); err != nil || !bytes.Equal(got, v) {
		t.Errorf("Get after migration: %v", err)
	}
}

func TestPutRefusedWhenDiskIsNearlyFull(t *testing.T) {
	s := openTest(t, "", Options{})
	k0, v0 := key("before"), payload(1, 3<<20)
	if err := s.Put(k0, "op", "before", v0); err != nil {
		t.Fatal(err)
	}
	defer func(f func(string) (uint64, error)) { freeSpace = f }(freeSpace)
	freeSpace = func(string) (uint64, error) { return 10 << 20, nil }
	err := s.Put(key("big"), "op", "big", payload(2, 8<<20))
	want := fmt.Sprintf("cache %s: no space left (need ≈28 MiB, 10 MiB free); free space or run lrmc cache gc", s.Dir())
	if !errors.Is(err, ErrNoSpace) || err.Error() != want {
		t.Errorf("Put on a full disk: %v\nwant %s", err, want)
	}
	if got, _, err := s.Get(k0); err != nil || !bytes.Equal(got, v0) {
		t.Errorf("Get after a refused Put: %v", err)
	}
	if _, err := s.GC(0); !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "lrmc cache reset") {
		t.Errorf("GC on a full disk: %v", err)
	}
	freeSpace = func(string) (uint64, error) { return 100 << 10, nil }
	s.Close()
	if _, err := Open(s.Dir(), Options{}); !errors.Is(err, ErrNoSpace) {
		t.Errorf("Open on a full disk: %v, want ErrNoSpace", err)
	}
}

// TestSmallTmpfsFillsWithoutSIGBUS fills a real 40 MiB tmpfs: Badger writes
// through memory maps of sparse files, so before the space check this died
// with SIGBUS.
func TestSmallTmpfsFillsWithoutSIGBUS(t *testing.T) {
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=40m"); err != nil {
		t.Skipf("cannot mount a small tmpfs here (%v); the space check is covered by TestPutRefusedWhenDiskIsNearlyFull", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	dir := filepath.Join(mnt, "cache")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[digest.Digest][]byte{}
	var putErr error
	for i := range 20 {
		k, v := key(fmt.Sprint("fill ", i)), payload(uint64(i), 4<<20+1000)
		if putErr = s.Put(k, "op", "fill", v); putErr != nil {
			break
		}
		stored[k] = v
	}
	if !errors.Is(putErr, ErrNoSpace) || !strings.Contains(putErr.Error(), "no space left (need ≈") {
		t.Fatalf("filling a 40 MiB tmpfs: %v, want a no-space error", putErr)
	}
	t.Logf("%d puts of 4 MiB stored, then: %v", len(stored), putErr)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Fill the rest with another file: Open must refuse, not fault.
	filler, _ := os.Create(filepath.Join(mnt, "filler"))
	for {
		if _, err := filler.Write(make([]byte, 1<<20)); err != nil {
			break
		}
	}
	filler.Close()
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrNoSpace) {
		t.Errorf("Open on a full tmpfs: %v, want ErrNoSpace", err)
	}
	os.Remove(filepath.Join(mnt, "filler"))
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for k, v := range stored {
		if got, _, err := s.Get(k); err != nil || !bytes.Equal(got, v) {
			t.Errorf("Get %s after the disk filled: %v", k.Short(), err)
		}
	}
	if bad, err := s.Verify(); err != nil || len(bad) != 0 {
		t.Errorf("Verify after the disk filled: %v, %d bad", err, len(bad))
	}
}

// dirState lists dir's files with size and modification time.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	st := map[string]string{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			info, _ := d.Info()
			st[p] = fmt.Sprint(info.Size(), info.ModTime().UnixNano())
		}
		return nil
	})
	return st
}

func TestReadOnlyViewWhileWriterHolds(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	big, small := key("big"), key("small")
	if err := w.Put(big, "op", "big", payload(1, 5<<20)); err != nil {
		t.Fatal(err)
	}
	if err := w.Put(small, "op", "small", payload(2, 100)); err != nil {
		t.Fatal(err)
	}
	if err := w.db.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second writer: %v, want ErrLocked", err)
	}
	before := dirState(t, dir)
	v, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []digest.Digest{big, small} {
		if m, ok, err := v.Stat(k); !ok || err != nil || m.Key != k {
			t.Errorf("view Stat %s: %v %v", k.Short(), ok, err)
		}
	}
	if metas, err := v.List(); err != nil || len(metas) != 2 {
		t.Errorf("view List: %d entries, %v", len(metas), err)
	}
	if _, _, err := v.Get(big); !errors.Is(err, ErrReadOnly) {
		t.Errorf("view Get: %v, want ErrReadOnly", err)
	}
	if err := v.Put(key("x"), "op", "x", []byte("x")); !errors.Is(err, ErrReadOnly) {
		t.Errorf("view Put: %v, want ErrReadOnly", err)
	}
	data := filepath.Join(t.TempDir(), "data")
	os.WriteFile(data, []byte("data"), 0o644)
	if d, err := v.FileDigest(data); err != nil || d != digest.Of([]byte("data")) {
		t.Errorf("view FileDigest: %v", err)
	}
	if after := dirState(t, dir); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("opening a view changed the cache directory:\nbefore %v\nafter  %v", before, after)
	}
	// The writer goes on, and a new writer gets the lock while the view is open.
	if err := w.Put(key("after"), "op", "after", payload(3, 5<<20)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w2, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("writer after the view opened: %v", err)
	}
	w2.Close()
	view := v.view
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(view); !os.IsNotExist(err) {
		t.Errorf("view directory %s left behind: %v", view, err)
	}
}

// TestViewsDuringWritesNeverLie opens views while a writer keeps putting,
// replacing and collecting entries: every view opens, and every Meta it
// returns is one the writer stored (no torn record, no crash).
func TestViewsDuringWritesNeverLie(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, Options{valueLogFileSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	value := func(i, gen int) []byte { return payload(uint64(i*1000+gen), 1<<20+i*1000) }
	var (
		mu   sync.Mutex
		gens = map[digest.Digest]map[int]bool{} // every generation stored under a key
	)
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		var err error
		defer func() { done <- err }()
		for gen := 0; ; gen++ {
			for i := range 6 {
				select {
				case <-stop:
					return
				default:
				}
				k := key(fmt.Sprint("view ", i))
				mu.Lock()
				if gens[k] == nil {
					gens[k] = map[int]bool{}
				}
				gens[k][gen] = true
				mu.Unlock()
				if err = w.Put(k, "op", "v", value(i, gen)); err != nil {
					return
				}
			}
			if gen%3 == 2 {
				if _, err = w.GC(4 << 20); err != nil {
					return
				}
			}
		}
	}()
	reads := 0
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		v, err := Open(dir, Options{ReadOnly: true})
		if err != nil {
			t.Fatalf("view during writes: %v", err)
		}
		for i := range 6 {
			k := key(fmt.Sprint("view ", i))
			m, ok, err := v.Stat(k)
			if err != nil {
				t.Fatalf("view Stat during writes: %v", err)
			}
			if !ok {
				continue
			}
			mu.Lock()
			known := false
			for gen := range gens[k] {
				known = known || m.Sum == digest.Of(value(i, gen))
			}
			mu.Unlock()
			if !known {
				t.Errorf("view Stat of %s gives a sum never stored", k.Short())
			}
			reads++
		}
		if _, err := v.List(); err != nil {
			t.Fatalf("view List during writes: %v", err)
		}
		v.Close()
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d entries read through views during writes", reads)
}
