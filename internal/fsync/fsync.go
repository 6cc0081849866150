// Package fsync flushes a file or directory to stable storage by path:
// after a rename, syncing the directory makes the new name durable, and a
// file written without a sync of its own is flushed before its metadata is
// committed elsewhere.
package fsync

import "os"

// Path opens path (a file or a directory) and syncs it.
func Path(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
