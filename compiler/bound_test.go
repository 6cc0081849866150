package compiler

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hugeRecipe writes a recipe whose evaluation takes far longer and more
// memory than any real one: CUE's comprehension over 20,000 elements takes
// about 2 s and 90 MiB here, and grows faster than the square of the count
// (300,000 took 8.5 minutes and 1.2 GiB; the 10^8 of the report, 5 GB and
// more than anyone waits).
func hugeRecipe(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "huge.cue")
	src := "import \"list\"\n\njunk: [for i in list.Range(0, 20000, 1) {i}]\n"
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// setBounds sets the evaluation bounds for one test.
func setBounds(t *testing.T, timeout time.Duration, heap uint64) {
	oldT, oldH := evalTimeout, evalMaxHeap
	evalTimeout, evalMaxHeap = timeout, heap
	t.Cleanup(func() { evalTimeout, evalMaxHeap = oldT, oldH })
}

func TestEvalTimeout(t *testing.T) {
	setBounds(t, 100*time.Millisecond, 1<<40)
	path := hugeRecipe(t)
	start := time.Now()
	_, err := Compile(path)
	took := time.Since(start)
	want := path + ": recipe evaluation exceeded 100ms"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Compile = %v, want %q…", err, want)
	}
	if took > time.Second {
		t.Errorf("Compile returned after %v, want about 100ms", took)
	}
}

func TestEvalMemory(t *testing.T) {
	setBounds(t, time.Minute, 16<<20)
	// A real recipe allocates about 1 MiB in all: far under the bound.
	if _, err := Compile("../recipes/stories260k-depth.cue"); err != nil && strings.Contains(err.Error(), "exceeded") {
		t.Fatalf("a real recipe passed the bounds: %v", err)
	}
	path := hugeRecipe(t)
	start := time.Now()
	_, err := Compile(path)
	want := path + ": recipe evaluation exceeded 16 MiB of memory"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Compile = %v, want %q…", err, want)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Compile returned after %v", took)
	}
}
