package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mkTree makes dir holding one file, name, whose content is content.
func mkTree(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replacers are ReplaceDir as it runs here and its two-rename fallback.
var replacers = map[string]func(staging, dst, aside string) error{
	"ReplaceDir": ReplaceDir, "ReplaceDirByRenames": ReplaceDirByRenames,
}

func TestReplaceDir(t *testing.T) {
	for name, replace := range replacers {
		for _, aside := range []string{"", ".d.old-1"} {
			t.Run(name+"/aside="+aside, func(t *testing.T) {
				dir := t.TempDir()
				dst, staging := filepath.Join(dir, "d"), filepath.Join(dir, ".d.staging")
				asidePath := ""
				if aside != "" {
					asidePath = filepath.Join(dir, aside)
				}
				if name == "ReplaceDirByRenames" && aside != "" {
					// What a killed earlier attempt left where the
					// old directory is set aside goes.
					mkTree(t, asidePath, "stale", "stale")
				}
				// A missing destination: a plain rename.
				mkTree(t, staging, "v1", "one")
				if err := replace(staging, dst, asidePath); err != nil {
					t.Fatal(err)
				}
				wantFile(t, filepath.Join(dst, "v1"), "one", 0o644)
				// An existing one is replaced whole: v1 is gone.
				mkTree(t, staging, "v2", "two")
				if err := replace(staging, dst, asidePath); err != nil {
					t.Fatal(err)
				}
				wantFile(t, filepath.Join(dst, "v2"), "two", 0o644)
				wantOnly(t, dst, "v2")
				wantOnly(t, dir, "d")
			})
		}
	}
}

// A staging directory that is not there fails the swap (the exchange, or
// the second rename, which puts the old directory back): dst is intact.
func TestReplaceDirFailureKeepsDestination(t *testing.T) {
	for name, replace := range replacers {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			dst := filepath.Join(dir, "d")
			mkTree(t, dst, "v1", "one")
			err := replace(filepath.Join(dir, "missing"), dst, "")
			if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "replace "+dst+": ") {
				t.Fatalf("error %v, want a missing file naming %s", err, dst)
			}
			wantFile(t, filepath.Join(dst, "v1"), "one", 0o644)
			wantOnly(t, dir, "d")
		})
	}
}

func TestExchange(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	mkTree(t, a, "name", "a")
	mkTree(t, b, "name", "b")
	err := exchange(a, b)
	if errors.Is(err, errNoExchange) {
		t.Skip("no atomic exchange on this system or filesystem")
	}
	if err != nil {
		t.Fatal(err)
	}
	wantFile(t, filepath.Join(a, "name"), "b", 0o644)
	wantFile(t, filepath.Join(b, "name"), "a", 0o644)
}
