package compiler

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestCompileNamedPipe: calibration data (or a model) that is a named pipe
// is reported by vet at the path's position, promptly: opening it to read
// would wait for a writer forever.
func TestCompileNamedPipe(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"data.txt", "model.bin"} {
		if err := syscall.Mkfifo(filepath.Join(dir, name), 0o644); err != nil {
			t.Skipf("cannot make a named pipe here: %v", err)
		}
	}
	file := filepath.Join(dir, "recipe.cue")
	writeFile(t, file, `model: path: "model.bin"
calibration: {data: path: "data.txt", samples: 8, seqLen: 32}
dense: false
runs: a: prune: {paradigm: "depth", method: "shortgpt", remove: 1}
`)
	done := make(chan error, 1)
	go func() {
		_, err := Compile(file)
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Compile did not return within 10s: it is reading a named pipe")
	}
	want := file + ":1:14: model.path: " + filepath.Join(dir, "model.bin") + " is not a regular file (a named pipe)\n" +
		file + ":2:27: calibration.data.path: " + filepath.Join(dir, "data.txt") + " is not a regular file (a named pipe)"
	if err == nil || err.Error() != want {
		t.Errorf("Compile error:\n%v\nwant:\n%s", err, want)
	}
}
