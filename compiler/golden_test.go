package compiler

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the compiler's output")

// TestGolden compiles each testdata/*.cue that has errors and compares the
// report with its .golden file. Absolute paths in messages are written with
// the testdata directory as "testdata", so the files hold no machine paths.
// hf: references resolve in testdata/hub, a hub cache holding org/tiny.
func TestGolden(t *testing.T) {
	t.Setenv("HF_HUB_CACHE", filepath.Join("testdata", "hub"))
	files, err := filepath.Glob("testdata/*.cue")
	if err != nil {
		t.Fatal(err)
	}
	absDir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".cue")
		if strings.HasPrefix(name, "valid") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			_, err := Compile(file)
			if err == nil {
				t.Fatalf("Compile(%s) succeeded; want errors", file)
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Compile(%s) error is %T, want Errors", file, err)
			}
			got := strings.ReplaceAll(err.Error(), absDir, "testdata") + "\n"
			golden := strings.TrimSuffix(file, ".cue") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("Compile(%s) errors:\n%s\nwant (%s):\n%s", file, got, golden, want)
			}
			if n := strings.Count(got, "\n"); n != len(es) {
				t.Errorf("%d lines for %d errors", n, len(es))
			}
		})
	}
}
