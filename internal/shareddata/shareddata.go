// Package shareddata locates the project's real test assets (the shared/data
// folder that sits beside the repository) for tests and benchmarks.
//
// The location is $LRMC_DATA when set, else the first "shared/data" found
// walking up from the working directory. When the folder is absent a test is
// skipped with a message saying so, except under CI=true, where the folder is
// always present and its absence is a failure.
package shareddata

import (
	"os"
	"path/filepath"
	"testing"
)

// Find returns the shared data directory, or "" when it cannot be found.
func Find() string {
	if d := os.Getenv("LRMC_DATA"); d != "" {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d
		}
		return ""
	}
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		for _, cand := range []string{filepath.Join(dir, "shared", "data"), filepath.Join(dir, "..", "shared", "data")} {
			if st, err := os.Stat(cand); err == nil && st.IsDir() {
				abs, _ := filepath.Abs(cand)
				return abs
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Dir returns the shared data directory or skips the test (fails it under CI=true).
func Dir(tb testing.TB) string {
	tb.Helper()
	d := Find()
	if d == "" {
		msg := "shared test data not found: set LRMC_DATA or place shared/data beside the repository"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	return d
}

// Path returns the path of a file inside the shared data directory, skipping
// (or failing under CI) when the directory or the file is absent.
func Path(tb testing.TB, rel ...string) string {
	tb.Helper()
	p := filepath.Join(append([]string{Dir(tb)}, rel...)...)
	if _, err := os.Stat(p); err != nil {
		msg := "shared test file missing: " + p
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	return p
}
