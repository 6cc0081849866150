package cache

import (
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"lrmc/digest"
)

func TestFileDigestMemo(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	path := filepath.Join(t.TempDir(), "model.bin")
	v1 := payload(10, 3<<20)
	if err := os.WriteFile(path, v1, 0o644); err != nil {
		t.Fatal(err)
	}

	d, err := s.FileDigest(path)
	if err != nil || d != digest.Of(v1) {
		t.Fatalf("FileDigest = %s, %v; want %s", d, err, digest.Of(v1))
	}

	// Prove the second call trusts the memo: plant a different digest
	// under the same stamp and see it come back without a re-hash.
	planted := key("planted")
	memoKey := append([]byte(filePrefix), path...)
	err = s.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(memoKey)
		if err != nil {
			return err
		}
		var m fileMemo
		if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &m) }); err != nil {
			return err
		}
		m.Digest = planted
		b, _ := json.Marshal(m)
		return txn.Set(memoKey, b)
	})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := s.FileDigest(path); err != nil || d != planted {
		t.Errorf("unchanged file: FileDigest = %s, %v; want the memo's %s", d.Short(), err, planted.Short())
	}

	// Same size, same mtime, different bytes: the ctime still moves. (The
	// kernel may stamp times at jiffy resolution, hence the pause.)
	fi, _ := os.Stat(path)
	time.Sleep(20 * time.Millisecond)
	v2 := payload(11, 3<<20)
	if err := os.WriteFile(path, v2, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if d, err := s.FileDigest(path); err != nil || d != digest.Of(v2) {
		t.Errorf("rewritten file: FileDigest = %s, %v; want %s", d.Short(), err, digest.Of(v2).Short())
	}

	// Replaced by rename (new inode), reached through a relative path, and
	// remembered across reopening.
	v3 := payload(12, 1000)
	tmp := path + ".new"
	if err := os.WriteFile(tmp, v3, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	t.Chdir(filepath.Dir(path))
	if d, err := s.FileDigest("model.bin"); err != nil || d != digest.Of(v3) {
		t.Errorf("renamed-over file: FileDigest = %s, %v; want %s", d.Short(), err, digest.Of(v3).Short())
	}
	s.Close()
	s = openTest(t, dir, Options{})
	if d, err := s.FileDigest(path); err != nil || d != digest.Of(v3) {
		t.Errorf("after reopening: FileDigest = %s, %v", d.Short(), err)
	}

	_, err = s.FileDigest(filepath.Join(filepath.Dir(path), "absent"))
	if want := "cache: file digest: stat " + filepath.Join(filepath.Dir(path), "absent") + ": no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("absent file: error %v, want %q", err, want)
	}
}

// TestFileDigestSpecialFiles: a named pipe or a device is refused before
// it is opened (opening a pipe waits for a writer, reading /dev/zero never
// ends), and nothing is memoized for it.
func TestFileDigestSpecialFiles(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	fifo := filepath.Join(t.TempDir(), "data.txt")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("cannot make a named pipe here: %v", err)
	}
	for path, kind := range map[string]string{fifo: "a named pipe", "/dev/zero": "a character device"} {
		done := make(chan error, 1)
		go func() { _, err := s.FileDigest(path); done <- err }()
		select {
		case err := <-done:
			want := "cache: file digest: " + path + " is not a regular file (" + kind + ")"
			if err == nil || err.Error() != want {
				t.Errorf("FileDigest(%s) error = %v, want %q", path, err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("FileDigest(%s) did not return within 10s", path)
		}
	}
}

// TestFileDigestFollowsLinks: a path that is a symbolic link (a hub
// snapshot's file) is digested as its target's bytes, and pointing the
// link at another target gives the other target's digest, not the memo.
func TestFileDigestFollowsLinks(t *testing.T) {
	s := openTest(t, t.TempDir(), Options{})
	dir := t.TempDir()
	for name, b := range map[string][]byte{"blob1": payload(1, 5000), "blob2": payload(2, 5000)} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "model.safetensors")
	if err := os.Symlink("blob1", link); err != nil {
		t.Fatal(err)
	}
	if d, err := s.FileDigest(link); err != nil || d != digest.Of(payload(1, 5000)) {
		t.Fatalf("FileDigest(link to blob1) = %s, %v", d.Short(), err)
	}
	tmp := link + ".new"
	if err := os.Symlink("blob2", tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
	if d, err := s.FileDigest(link); err != nil || d != digest.Of(payload(2, 5000)) {
		t.Errorf("FileDigest(link moved to blob2) = %s, %v; want blob2's digest", d.Short(), err)
	}
}
