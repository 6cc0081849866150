package executor

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// inodes maps every file under root to its inode: a rewritten output is a
// new file (staged, then swapped in), an unchanged one keeps its inode.
func inodes(t *testing.T, root string) map[string]uint64 {
	t.Helper()
	m := map[string]uint64{}
	for rel := range tree(t, root) {
		st, err := os.Lstat(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().IsRegular() {
			m[rel] = st.Sys().(*syscall.Stat_t).Ino
		}
	}
	return m
}

// A rerun that would write the same bytes leaves the files in place; any
// difference (content, an extra or missing file, a mode) rewrites the unit
// it is in, and only that unit.
func TestUnchangedOutputsAreNotRewritten(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	g, r := outputs(t, out, 1)
	write(t, g, r)
	before := inodes(t, out)
	write(t, g, r)
	wantTree(t, out, v1Tree())
	after := inodes(t, out)
	for rel, ino := range before {
		if after[rel] != ino {
			t.Errorf("%s was rewritten though unchanged", rel)
		}
	}

	// A changed byte in a's bundle and a results.json of another mode:
	// those units are rewritten and restored, b is left alone.
	os.WriteFile(filepath.Join(out, "a", "hf", "model.safetensors"), []byte("model.safetensors v2"), 0o644)
	os.Chmod(filepath.Join(out, "results.json"), 0o600)
	before = inodes(t, out)
	write(t, g, r)
	wantTree(t, out, v1Tree())
	after = inodes(t, out)
	for rel, ino := range after {
		if rewritten := before[rel] != ino; rewritten != (filepath.Dir(rel) != "b") {
			t.Errorf("%s rewritten: %v", rel, rewritten)
		}
	}

	// An extra file, a file cut short, an extra empty directory: each
	// makes its unit rewritten, which drops what is not an output.
	for _, damage := range []func(){
		func() { os.WriteFile(filepath.Join(out, "b", "stray.txt"), []byte("x"), 0o644) },
		func() { os.Truncate(filepath.Join(out, "b", "model.bin"), 3) },
		func() { os.Mkdir(filepath.Join(out, "a", "empty"), 0o755) },
		func() { os.Remove(filepath.Join(out, "a", "hf", "config.json")) },
	} {
		damage()
		write(t, g, r)
		wantTree(t, out, v1Tree())
	}
}
