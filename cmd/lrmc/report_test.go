package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestApplyWritesReport(t *testing.T) {
	dir := t.TempDir()
	cacheDir := filepath.Join(dir, "cache")
	recipe := writeRecipe(t, dir, 1, 2)
	out := filepath.Join(dir, "out")

	// Before apply there is nothing to report, and the error says why.
	code, _, errs := lrmc(t, "--cache", cacheDir, "report", recipe)
	if code != 1 || !strings.Contains(errs, "recipe r has not been applied yet") || !strings.Contains(errs, filepath.Join(out, "results.json")) {
		t.Fatalf("report before apply: exit %d: %s", code, errs)
	}

	if code, _, errs := lrmc(t, "--cache", cacheDir, "apply", "--progress=plain", recipe); code != 0 {
		t.Fatalf("apply: exit %d: %s", code, errs)
	}
	read := func(path string) []byte {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	md, page := read(filepath.Join(out, "report.md")), read(filepath.Join(out, "report.html"))
	for _, want := range []string{
		"| run | method | ratio | params | blocks | removed | perplexity |",
		"| dense | dense | 0.0% | 260032 | 5 | - |",
		"| shortgpt-1 | shortgpt | 17.5% | 214592 | 4 |",
		"| shortgpt-2 | shortgpt | 34.9% | 169152 | 3 |",
	} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	for _, want := range []string{"perplexity vs pruning ratio", "shortgpt block scores"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("report.html lacks the plot %q", want)
		}
	}
	if n := bytes.Count(page, []byte("<svg")); n < 2 {
		t.Errorf("report.html has %d plots, want at least 2", n)
	}

	// The report is no node: a second apply runs nothing and writes the
	// same bytes.
	code, stdout, errs := lrmc(t, "--cache", cacheDir, "apply", "--progress=plain", recipe)
	if code != 0 || !strings.Contains(stdout, "Nothing to run") {
		t.Fatalf("second apply: exit %d:\n%s%s", code, stdout, errs)
	}
	if !bytes.Equal(read(filepath.Join(out, "report.md")), md) || !bytes.Equal(read(filepath.Join(out, "report.html")), page) {
		t.Error("the second apply wrote a different report")
	}
	if code, _, _ := lrmc(t, "--cache", cacheDir, "plan", "--detailed-exitcode", recipe); code != 0 {
		t.Errorf("plan after apply: exit %d, want 0", code)
	}

	// lrmc report writes what apply wrote.
	other := filepath.Join(dir, "elsewhere")
	code, stdout, errs = lrmc(t, "--cache", cacheDir, "report", "-o", other, recipe)
	if code != 0 || !strings.Contains(stdout, filepath.Join(other, "report.html")) {
		t.Fatalf("report -o: exit %d:\n%s%s", code, stdout, errs)
	}
	if !bytes.Equal(read(filepath.Join(other, "report.md")), md) || !bytes.Equal(read(filepath.Join(other, "report.html")), page) {
		t.Error("lrmc report wrote a different report than apply")
	}

	// A sweep over two files: one report, runs named by recipe. The second
	// recipe's nodes are the first's, all cached but its results.
	dir2 := filepath.Join(dir, "second")
	if err := os.Mkdir(dir2, 0o755); err != nil {
		t.Fatal(err)
	}
	recipe2 := filepath.Join(dir2, "r2.cue")
	if err := os.Rename(writeRecipe(t, dir2, 1), recipe2); err != nil {
		t.Fatal(err)
	}
	if code, stdout, errs := lrmc(t, "--cache", cacheDir, "apply", "--progress=plain", recipe2); code != 0 || !strings.Contains(stdout, "Applied: 1 ran") {
		t.Fatalf("apply of the second recipe: exit %d:\n%s%s", code, stdout, errs)
	}
	if code, _, errs := lrmc(t, "--cache", cacheDir, "report", recipe, recipe2); code != 0 {
		t.Fatalf("report of two recipes: exit %d: %s", code, errs)
	}
	both := read(filepath.Join(out, "report.md"))
	for _, want := range []string{"# lrmc report: r, r2", "| r/dense |", "| r/shortgpt-2 |", "| r2/dense |", "| r2/shortgpt-1 |"} {
		if !bytes.Contains(both, []byte(want)) {
			t.Errorf("report of two recipes lacks %q:\n%s", want, both)
		}
	}
}
