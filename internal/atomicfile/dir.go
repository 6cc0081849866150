package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// A directory tree is made atomic the same way as a file: the caller
// builds it whole under a temporary name beside its destination (synced:
// ReplaceDir moves names, it writes no data), and ReplaceDir puts it in
// place.

var errNoExchange = errors.New("atomic exchange not supported")

// ReplaceDir puts the directory staging at dst. A missing dst is a plain
// rename; an existing one is replaced whole and removed: in one step where
// the system can swap two names (renameat2 RENAME_EXCHANGE), else with two
// renames, dst aside to aside and staging in (a failed second rename puts
// dst back). aside is where the old directory waits between the two, a
// name the caller's sweeper recognises; whatever is already there is
// removed first. With aside "", a fresh ".NAME.old*" name beside dst is
// used.
//
// The parent directory is synced after, so that the new name survives a
// crash.
func ReplaceDir(staging, dst, aside string) error {
	return replaceDirSynced(staging, dst, aside, exchange)
}

// ReplaceDirByRenames is ReplaceDir's two-rename fallback, for tests of
// callers that must work where the system has no exchange.
func ReplaceDirByRenames(staging, dst, aside string) error {
	return replaceDirSynced(staging, dst, aside, func(a, b string) error { return errNoExchange })
}

func replaceDirSynced(staging, dst, aside string, exchange func(a, b string) error) error {
	err := replaceDir(staging, dst, aside, exchange)
	if err == nil {
		err = syncDir(filepath.Dir(filepath.Clean(dst)))
	}
	if err != nil {
		return fmt.Errorf("replace %s: %w", dst, err)
	}
	return nil
}

func replaceDir(staging, dst, aside string, exchange func(a, b string) error) error {
	if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
		return os.Rename(staging, dst)
	}
	err := exchange(staging, dst)
	if err == nil {
		// staging now holds the previous directory.
		return os.RemoveAll(staging)
	}
	if !errors.Is(err, errNoExchange) {
		return err
	}
	if aside == "" {
		parent, base := filepath.Split(filepath.Clean(dst))
		if parent == "" {
			parent = "."
		}
		// MkdirTemp reserves a unique name; the rename below takes it.
		if aside, err = os.MkdirTemp(parent, "."+base+".old*"); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(aside); err != nil {
		return err
	}
	if err := os.Rename(dst, aside); err != nil {
		return err
	}
	if err := os.Rename(staging, dst); err != nil {
		if back := os.Rename(aside, dst); back != nil {
			return fmt.Errorf("%w (and the previous %s stays at %s: %v)", err, dst, aside, back)
		}
		return err
	}
	return os.RemoveAll(aside)
}
