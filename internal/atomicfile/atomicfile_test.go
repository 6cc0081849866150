package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// entries lists dir's names, to show that no temporary file is left.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func wantFile(t *testing.T, path, content string, perm fs.FileMode) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != content {
		t.Errorf("%s holds %q, want %q", path, b, content)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != perm {
		t.Errorf("%s has mode %v, want %v", path, st.Mode().Perm(), perm)
	}
}

func wantOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	if got := entries(t, dir); fmt.Sprint(got) != fmt.Sprint(names) {
		t.Errorf("%s holds %q, want only %q", dir, got, names)
	}
}

func TestWriteCreatesWithContentAndMode(t *testing.T) {
	dir := t.TempDir()
	for _, perm := range []fs.FileMode{0o644, 0o600, 0o640} {
		path := filepath.Join(dir, fmt.Sprintf("f%o", perm))
		err := Write(path, perm, func(w io.Writer) error {
			for i := range 3 {
				if _, err := fmt.Fprintf(w, "line %d\n", i); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		wantFile(t, path, "line 0\nline 1\nline 2\n", perm)
	}
	if err := WriteBytes(filepath.Join(dir, "b"), 0o644, []byte("bytes")); err != nil {
		t.Fatal(err)
	}
	wantFile(t, filepath.Join(dir, "b"), "bytes", 0o644)
	wantOnly(t, dir, "b", "f600", "f640", "f644")
}

// A write larger than the buffer, in pieces that straddle its edge, comes
// out whole.
func TestWriteLargerThanBuffer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big")
	want := make([]byte, 3*bufferSize+12345)
	for i := range want {
		want[i] = byte(i * 7 / 3)
	}
	err := Write(path, 0o644, func(w io.Writer) error {
		for rest := want; len(rest) > 0; {
			n := min(len(rest), 100003)
			if _, err := w.Write(rest[:n]); err != nil {
				return err
			}
			rest = rest[n:]
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes (err %v), want the %d written", len(got), err, len(want))
	}
}

func TestWriteReplacesExistingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old content, longer than the new"), 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(path)
	if err := WriteBytes(path, 0o644, []byte("new")); err != nil {
		t.Fatal(err)
	}
	wantFile(t, path, "new", 0o644)
	after, _ := os.Stat(path)
	if os.SameFile(before, after) {
		t.Error("the file was written in place, not replaced by a rename")
	}
	wantOnly(t, dir, "f")
}

// failing destinations: the write's error, a panic, and a rename that
// cannot happen all leave the old content and no temporary file.
func TestFailureLeavesDestinationAndNoTemp(t *testing.T) {
	boom := errors.New("encoder failed")
	for _, tc := range []struct {
		name  string
		write func(w io.Writer) error
		want  string // in the error
	}{
		{"error", func(w io.Writer) error {
			io.WriteString(w, "partial")
			return boom
		}, "encoder failed"},
		{"error after a flushed buffer", func(w io.Writer) error {
			w.Write(make([]byte, 2*bufferSize))
			return boom
		}, "encoder failed"},
		{"panic", func(w io.Writer) error {
			io.WriteString(w, "partial")
			var m map[string]int
			m["x"] = 1 // assignment to entry in nil map
			return nil
		}, "panic: assignment to entry in nil map"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			err := Write(path, 0o644, tc.write)
			if err == nil || !strings.Contains(err.Error(), "write "+path+": ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %s and saying %q", err, path, tc.want)
			}
			if tc.name == "error" && !errors.Is(err, boom) {
				t.Errorf("error %v does not wrap the write's error", err)
			}
			wantFile(t, path, "old", 0o644)
			wantOnly(t, dir, "f")
		})
	}
}

func TestMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "f")
	err := WriteBytes(path, 0o644, []byte("x"))
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "write "+path+": ") {
		t.Fatalf("error %v, want fs.ErrNotExist naming %s", err, path)
	}
}

// A rename that fails (the destination is a non-empty directory) removes
// the temporary file.
func TestRenameFailureRemovesTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "d")
	if err := os.MkdirAll(filepath.Join(path, "inside"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := WriteBytes(path, 0o644, []byte("x"))
	if err == nil || !strings.HasPrefix(err.Error(), "write "+path+": ") {
		t.Fatalf("error %v, want one naming %s", err, path)
	}
	wantOnly(t, dir, "d")
}

func TestOptions(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "f")
	p, err := Stage(path, 0o600, func(w io.Writer) error { _, err := io.WriteString(w, "v"); return err },
		TempDir(tmp), Pattern("put-*"), NoSync())
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(p.Name()) != tmp || !strings.HasPrefix(filepath.Base(p.Name()), "put-") {
		t.Errorf("temporary file %s, want put-* in %s", p.Name(), tmp)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the destination exists before Commit: %v", err)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	wantFile(t, path, "v", 0o600)
	wantOnly(t, tmp)

	// The default name is one the executor's sweeper recognises.
	p, err = Stage(path, 0o644, func(w io.Writer) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if base := filepath.Base(p.Name()); !strings.HasPrefix(base, ".f.tmp") {
		t.Errorf("temporary file %s, want .f.tmp<digits>", base)
	}
	if err := p.Discard(); err != nil {
		t.Fatal(err)
	}
	wantFile(t, path, "v", 0o600)
	wantOnly(t, dir, "f", "tmp")
}

// Writers racing on one path leave one of their files, whole: never a mix,
// a short file or a temporary file.
func TestConcurrentWritersLeaveOneWholeFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	const writers, size = 8, 3 * bufferSize / 2
	contents := make([][]byte, writers)
	for i := range contents {
		contents[i] = bytes.Repeat([]byte{byte('a' + i)}, size)
	}
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			for range 3 {
				if err := Write(path, 0o644, func(w io.Writer) error {
					// In pieces, so that writers interleave mid-file.
					for off := 0; off < size; off += 4096 {
						if _, err := w.Write(contents[i][off:min(off+4096, size)]); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range contents {
		found = found || bytes.Equal(got, c)
	}
	if !found {
		t.Errorf("the file (%d bytes, starting %q) is none of the writers' contents", len(got), got[:min(len(got), 8)])
	}
	wantOnly(t, dir, "f")
}
