package digest

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// within runs f and fails the test if it has not returned after 10 s: a
// regression that reads a named pipe or a device blocks forever.
func within(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return within 10s", what)
		return nil
	}
}

// TestFileRefusesSpecialFiles: File and StatFile refuse a named pipe, a
// device and a directory, promptly and by name, and follow a symbolic link
// to a regular file.
func TestFileRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("cannot make a named pipe here: %v", err)
	}
	for _, c := range []struct{ path, want string }{
		{fifo, fifo + " is not a regular file (a named pipe)"},
		{"/dev/zero", "/dev/zero is not a regular file (a character device)"},
		{dir, dir + " is not a regular file (a directory)"},
	} {
		if _, err := os.Stat(c.path); err != nil {
			continue // no /dev/zero here
		}
		err := within(t, "File("+c.path+")", func() error { _, err := File(c.path); return err })
		var nr *NotRegularError
		if !errors.As(err, &nr) || err.Error() != "digest: "+c.want {
			t.Errorf("File(%s) error = %v, want %q", c.path, err, "digest: "+c.want)
		}
		if _, err := StatFile(c.path); err == nil || err.Error() != c.want {
			t.Errorf("StatFile(%s) error = %v, want %q", c.path, err, c.want)
		}
	}

	// A link is followed: the target's bytes and the target's stamp.
	target := filepath.Join(dir, "blob")
	if err := os.WriteFile(target, []byte("weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "model.safetensors")
	if err := os.Symlink("blob", link); err != nil {
		t.Fatal(err)
	}
	d, s, err := FileStamped(link)
	if err != nil || d != Of([]byte("weights")) {
		t.Fatalf("FileStamped(link) = %s, %v; want the target's digest", d.Short(), err)
	}
	if ts, err := StatFile(target); err != nil || ts != s || s.Size != 7 {
		t.Errorf("stamp through the link %+v, of the target %+v (%v)", s, ts, err)
	}
}

func TestStampChange(t *testing.T) {
	s := Stamp{Size: 10, MtimeNs: 1, CtimeNs: 2, Inode: 3, Dev: 4}
	for _, c := range []struct {
		t    Stamp
		want string
	}{
		{s, ""},
		{Stamp{Size: 10, MtimeNs: 1, CtimeNs: 2, Inode: 9, Dev: 4}, "it was replaced by another file"},
		{Stamp{Size: 12, MtimeNs: 5, CtimeNs: 6, Inode: 3, Dev: 4}, "its size changed from 10 to 12 bytes"},
		{Stamp{Size: 10, MtimeNs: 1, CtimeNs: 7, Inode: 3, Dev: 4}, "it was modified"},
	} {
		if got := s.Change(c.t); got != c.want {
			t.Errorf("Change(%+v) = %q, want %q", c.t, got, c.want)
		}
	}
}
