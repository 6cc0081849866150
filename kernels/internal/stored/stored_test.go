package stored

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckSparse(t *testing.T) {
	dir := t.TempDir()
	sparse := filepath.Join(dir, "sparse.bin")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("header")); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	fi, err := os.Stat(sparse)
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := storedBytes(fi); !ok || n == 0 {
		t.Skipf("this filesystem reports no block counts (%d, %v)", n, ok)
	}
	err = Check(sparse, fi)
	if err == nil || !strings.Contains(err.Error(), "sparse file") || !strings.Contains(err.Error(), sparse) {
		t.Fatalf("Check(sparse) = %v, want a sparse-file error naming the file", err)
	}

	// A small file and a dense one pass.
	small := filepath.Join(dir, "small.bin")
	if err := os.WriteFile(small, make([]byte, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, _ = os.Stat(small)
	if err := Check(small, fi); err != nil {
		t.Fatal(err)
	}
	dense := filepath.Join(dir, "dense.bin")
	if err := os.WriteFile(dense, make([]byte, minCheckedSize+4096), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, _ = os.Stat(dense)
	if err := Check(dense, fi); err != nil {
		t.Fatalf("Check(dense) = %v", err)
	}
}
