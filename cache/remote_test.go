package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"lrmc/digest"
)

func openFileRemote(t *testing.T) *FileRemote {
	t.Helper()
	r, err := OpenRemote("file://" + t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return r.(*FileRemote)
}

func openStore(t *testing.T, r Remote) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if r != nil {
		s.SetRemote(r)
	}
	return s
}

func TestFileRemoteRoundTripCorruptConcurrent(t *testing.T) {
	r := openFileRemote(t)
	key := digest.Of([]byte("node"))
	val := []byte("hello remote value")
	// Replace skips the existence check, so all eight race to rename.
	writeConcurrently(t, r.Replace, Meta{Key: key, Op: "x"}, val)
	got, m, err := r.Get(key)
	if err != nil || string(got) != string(val) || m.Sum != digest.Of(val) || m.Size != int64(len(val)) || m.Op != "x" {
		t.Fatalf("get: %q %+v %v", got, m, err)
	}
	sm, err := r.Stat(key)
	if err != nil || sm.Sum != m.Sum || sm.Size != m.Size || !slices.Equal(sm.Runs, m.Runs) {
		t.Fatalf("stat: %+v %v, want %+v", sm, err, m)
	}
	// Put leaves an existing entry alone, even one with other metadata.
	if err := r.Put(Meta{Key: key, Op: "other"}, []byte("another value")); err != nil {
		t.Fatal(err)
	}
	if got, m, _ := r.Get(key); string(got) != string(val) || m.Op != "x" {
		t.Fatalf("Put replaced an existing entry: %q %q", got, m.Op)
	}
	p := r.path(key)
	b, _ := os.ReadFile(p)
	b[len(b)-1] ^= 1
	os.WriteFile(p, b, 0o644)
	_, _, err = r.Get(key)
	var ce *RemoteCorruptError
	if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) || !strings.Contains(err.Error(), "file://"+p) || !strings.Contains(err.Error(), "content hash") {
		t.Fatalf("corrupt entry: got %v", err)
	}
	if _, _, err := r.Get(digest.Of([]byte("other"))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := r.Stat(digest.Of([]byte("other"))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing stat: %v", err)
	}
	if _, err := OpenRemote("file://" + r.dir + "/nope"); err == nil || !strings.Contains(err.Error(), r.dir+"/nope") {
		t.Fatalf("missing dir error: %v", err)
	}
	if _, err := OpenRemote("file://relative/dir"); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Fatalf("relative dir error: %v", err)
	}
	if _, err := OpenRemote("ftp://x"); err == nil || !strings.Contains(err.Error(), "s3://") {
		t.Fatalf("unknown scheme error: %v", err)
	}
}

// writeConcurrently calls write from eight goroutines at once, each with m
// naming another run.
func writeConcurrently(t *testing.T, write func(Meta, []byte) error, m Meta, val []byte) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := m
			m.Runs = []string{strconv.Itoa(i)}
			errs[i] = write(m, val)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// writeBlob writes a remote entry file for key by hand: the length field n,
// the record, then value.
func writeBlob(t *testing.T, r *FileRemote, key digest.Digest, n uint64, rec, value []byte) {
	t.Helper()
	b := binary.LittleEndian.AppendUint64(nil, n)
	b = append(append(b, rec...), value...)
	if err := os.MkdirAll(filepath.Dir(r.path(key)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.path(key), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRemoteSizeChecks feeds hostile and damaged entries to the file
// remote: each is rejected by Stat and Get before anything is allocated
// from its claims, with an error naming the entry's URL and the reason.
func TestRemoteSizeChecks(t *testing.T) {
	r := openFileRemote(t)
	key := digest.Of([]byte("k"))
	val := []byte("twelve bytes")
	m := Meta{Key: key, Op: "op", Size: int64(len(val)), Chunks: 1, Sum: digest.Of(val)}
	rec, err := encodeMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	huge := m
	huge.Size = 1 << 50
	hugeRec, _ := encodeMeta(huge)
	otherRec, _ := encodeMeta(Meta{Key: digest.Of([]byte("someone else")), Size: int64(len(val)), Sum: m.Sum})
	cases := []struct {
		name, want string
		n          uint64
		rec, value []byte
	}{
		{"metadata length huge", "metadata record of 1099511627776 bytes is over the 1048576-byte limit", 1 << 40, rec, val},
		{"metadata past end", fmt.Sprintf("metadata length %d is past the end", len(rec)+100), uint64(len(rec) + 100), rec, val},
		{"value claim over memory", "metadata claims a 1125899906842624-byte value, over this machine's", uint64(len(hugeRec)), hugeRec, val},
		{"value truncated", fmt.Sprintf("the entry has %d bytes, its metadata says %d", 8+len(rec)+5, 8+len(rec)+len(val)), uint64(len(rec)), rec, val[:5]},
		{"value too long", fmt.Sprintf("the entry has %d bytes, its metadata says %d", 8+len(rec)+len(val)+1, 8+len(rec)+len(val)), uint64(len(rec)), rec, append(slices.Clone(val), 'x')},
		{"record of another key", "it describes " + digest.Of([]byte("someone else")).Short(), uint64(len(otherRec)), otherRec, val},
		{"record damaged", "hash mismatch", uint64(len(rec)), append([]byte{rec[0] ^ 1}, rec[1:]...), val},
	}
	for _, c := range cases {
		writeBlob(t, r, key, c.n, c.rec, c.value)
		_, serr := r.Stat(key)
		_, _, gerr := r.Get(key)
		for _, err := range []error{serr, gerr} {
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), r.url(key)) || !strings.Contains(err.Error(), key.Short()) {
				t.Errorf("%s: got %v, want a corrupt error naming %s, %s and %q", c.name, err, r.url(key), key.Short(), c.want)
			}
		}
	}
	// A header of under 8 bytes.
	if err := os.WriteFile(r.path(key), []byte{1, 2}, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Stat(key); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "truncated header") {
		t.Errorf("short file: %v", err)
	}
	// The sound entry reads back; with a lower memory bound it is refused.
	writeBlob(t, r, key, uint64(len(rec)), rec, val)
	if v, _, err := r.Get(key); err != nil || string(v) != string(val) {
		t.Fatalf("sound entry: %q %v", v, err)
	}
	old := remoteValueLimit
	remoteValueLimit = func() int64 { return 11 }
	defer func() { remoteValueLimit = old }()
	if _, _, err := r.Get(key); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "12-byte value, over this machine's 11-byte limit") {
		t.Errorf("over the bound: %v", err)
	}
}

// TestStoreStatAndCorruptRemote: Stat reports a remote-only entry as
// present with the Meta its writer recorded, without copying it; when the
// entry then fails verification, Get reads it as a miss (never returning
// its bytes), and the recomputed value's Put replaces it in the remote.
func TestStoreStatAndCorruptRemote(t *testing.T) {
	r := openFileRemote(t)
	a, b := openStore(t, r), openStore(t, r)
	key := digest.Of([]byte("k"))
	val := []byte("the shared value")
	if err := a.Put(key, "op", "label", val); err != nil {
		t.Fatal(err)
	}
	am, _, _ := a.Stat(key)
	bm, ok, err := b.Stat(key)
	if err != nil || !ok {
		t.Fatalf("b.Stat of a remote-only entry: ok=%v %v", ok, err)
	}
	if bm.Op != "op" || bm.Name != "label" || bm.Size != int64(len(val)) || bm.Sum != digest.Of(val) || bm.Chunks != 1 || !bm.Created.Equal(am.Created) {
		t.Fatalf("remote Meta %+v, local writer's %+v", bm, am)
	}
	if _, ok, _ := b.statLocal(key); ok {
		t.Fatal("Stat copied the remote entry")
	}
	// Damage the value; the cheap Stat still says present, Get says miss.
	p := r.path(key)
	blob, _ := os.ReadFile(p)
	blob[len(blob)-3] ^= 0x20
	os.WriteFile(p, blob, 0o644)
	if _, ok, _ := b.Stat(key); !ok {
		t.Fatal("Stat hashed the value")
	}
	if v, _, err := b.Get(key); !errors.Is(err, ErrNotFound) || v != nil {
		t.Fatalf("Get of a corrupt remote entry: %q %v, want a miss", v, err)
	}
	if _, ok, _ := b.statLocal(key); ok {
		t.Fatal("a corrupt remote entry was copied into the local store")
	}
	// The recomputed value replaces the damaged remote entry.
	if err := b.Put(key, "op", "label", val); err != nil {
		t.Fatal(err)
	}
	if v, _, err := r.Get(key); err != nil || string(v) != string(val) {
		t.Fatalf("remote after the recomputed Put: %q %v", v, err)
	}
	// A damaged header reads as absent to Stat too.
	k2 := digest.Of([]byte("k2"))
	writeBlob(t, r, k2, 3, []byte("abc"), nil)
	if _, ok, err := b.Stat(k2); ok || err != nil {
		t.Fatalf("Stat of a damaged remote header: ok=%v %v", ok, err)
	}
}

func TestTwoLocalCachesShareRemote(t *testing.T) {
	r := openFileRemote(t)
	a, b := openStore(t, r), openStore(t, r)
	key := digest.Of([]byte("k"))
	if err := a.Put(key, "op", "n", []byte("shared")); err != nil {
		t.Fatal(err)
	}
	v, m, err := b.Get(key)
	if err != nil || string(v) != "shared" || m.Op != "op" {
		t.Fatalf("b.Get: %q %v", v, err)
	}
	if _, ok, _ := b.statLocal(key); !ok {
		t.Fatal("remote hit was not copied into b")
	}
}

// Two-process test. The test binary runs itself twice as writers, then twice
// as readers (selected by LRMC_REMOTE_HELPER), each with its own local cache
// and the one file:// remote.
const (
	sharedKeys = 12 // written by both writers
	ownKeys    = 6  // written by one writer each
)

func helperKey(name string) digest.Digest { return digest.Of([]byte("two-process " + name)) }

// helperValue is name's value: 64 KiB and more, so that the two writers'
// writes of a shared key overlap in time, and different for every key.
func helperValue(name string) []byte {
	seed := digest.Of([]byte(name))
	v := make([]byte, 64<<10+int(seed[0])*97)
	for i := range v {
		v[i] = seed[i%len(seed)] ^ byte(i/len(seed))
	}
	return v
}

func helperNames(writers ...string) []string {
	var names []string
	for i := range sharedKeys {
		names = append(names, fmt.Sprintf("shared-%d", i))
	}
	for _, w := range writers {
		for i := range ownKeys {
			names = append(names, fmt.Sprintf("%s-%d", w, i))
		}
	}
	return names
}

// TestRemoteHelperProcess is the child's side; it does nothing in a normal
// run.
func TestRemoteHelperProcess(t *testing.T) {
	mode := os.Getenv("LRMC_REMOTE_HELPER")
	if mode == "" {
		t.Skip("helper for TestTwoProcessesShareFileRemote")
	}
	r, err := OpenRemote(os.Getenv("LRMC_REMOTE_URL"))
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t, r)
	writer := os.Getenv("LRMC_REMOTE_WRITER")
	switch mode {
	case "write":
		// Wait for the go signal, so that both writers start together.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			if _, err := os.Stat(os.Getenv("LRMC_REMOTE_GO")); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no go signal")
			}
		}
		names := helperNames(writer)
		if writer == "b" {
			slices.Reverse(names) // meet the other writer in the middle
		}
		for _, n := range names {
			if err := s.Put(helperKey(n), "op", n, helperValue(n)); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(n, "shared") {
				// Also race the other writer's renames of the same key.
				if err := r.Replace(Meta{Key: helperKey(n), Op: "op", Name: n}, helperValue(n)); err != nil {
					t.Fatal(err)
				}
			}
		}
	case "read":
		for _, n := range helperNames("a", "b") {
			if ok := func() bool { _, ok, err := s.Stat(helperKey(n)); return ok && err == nil }(); !ok {
				t.Errorf("%s: Stat says absent", n)
			}
			v, m, err := s.Get(helperKey(n))
			if err != nil || string(v) != string(helperValue(n)) || m.Name != n {
				t.Errorf("%s: Get: %d bytes, name %q, %v", n, len(v), m.Name, err)
			}
		}
	}
}

func TestTwoProcessesShareFileRemote(t *testing.T) {
	dir := t.TempDir()
	goFile := filepath.Join(t.TempDir(), "go")
	run := func(mode string) {
		t.Helper()
		var cmds []*exec.Cmd
		var outs []*strings.Builder
		for _, w := range []string{"a", "b"} {
			c := exec.Command(os.Args[0], "-test.run=^TestRemoteHelperProcess$", "-test.count=1")
			c.Env = append(os.Environ(), "LRMC_REMOTE_HELPER="+mode, "LRMC_REMOTE_URL=file://"+dir,
				"LRMC_REMOTE_WRITER="+w, "LRMC_REMOTE_GO="+goFile)
			out := &strings.Builder{}
			c.Stdout, c.Stderr = out, out
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			cmds, outs = append(cmds, c), append(outs, out)
		}
		if err := os.WriteFile(goFile, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		for i, c := range cmds {
			if err := c.Wait(); err != nil {
				t.Fatalf("%s process %d: %v\n%s", mode, i, err, outs[i])
			}
			if !strings.Contains(outs[i].String(), "PASS") {
				t.Fatalf("%s process %d ran no helper:\n%s", mode, i, outs[i])
			}
		}
	}
	run("write")
	run("read")
	// Exactly one file per key, and no temporary file left behind.
	var files []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, filepath.Base(p))
		}
		return err
	})
	var want []string
	for _, n := range helperNames("a", "b") {
		want = append(want, helperKey(n).String())
	}
	slices.Sort(files)
	slices.Sort(want)
	if !slices.Equal(files, want) {
		t.Fatalf("remote holds %d files %v, want the %d keys", len(files), files, len(want))
	}
	// And this process, a third, reads and verifies every entry as well.
	r, err := OpenRemote("file://" + dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range helperNames("a", "b") {
		if v, _, err := r.Get(helperKey(n)); err != nil || string(v) != string(helperValue(n)) {
			t.Errorf("%s: %d bytes, %v", n, len(v), err)
		}
	}
}
