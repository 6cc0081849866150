//go:build unix

package atomicfile

import (
	"path/filepath"
	"syscall"
	"testing"
)

// The umask does not narrow the mode: the file gets exactly perm, as the
// chmod after os.CreateTemp in each writer this package replaced gave it.
func TestModeIgnoresUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "f")
	if err := WriteBytes(path, 0o644, []byte("x")); err != nil {
		t.Fatal(err)
	}
	wantFile(t, path, "x", 0o644)
}
