package cache

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// Read-only views.
//
// Badger cannot share a live database: its read-only mode takes a shared
// flock on the directory (so the writer could not start while a reader
// runs) and refuses a write-ahead log that still has room, which a running
// writer always has. A view therefore copies the part of the database that
// Stat, List and file-digest memos need (the LSM tree: write-ahead logs,
// MANIFEST, KEYREGISTRY and tables, a few MiB because values live in the
// value log) into a private temporary directory and opens the copy. The
// cache directory is only read: no lock is taken, so a writer is never kept
// waiting, and nothing there is written or truncated. Memo writes and
// corruption handling inside the view change only the copy.
//
// The copy is consistent enough: files are copied in the order Badger makes
// data durable in them (logs, then MANIFEST, then tables), so a record is in
// the copied log or in a table the copied MANIFEST names; a log entry torn by
// a concurrent write fails its CRC and ends the replay, as after a crash. A
// compaction that deletes a named table midway is retried.
//
// Value-log files are neither copied (they are the bulk of the cache) nor
// mapped: the writer truncates a value-log file when it moves on to the
// next, and a reader that had mapped the old length would take SIGBUS on
// the cut pages. So a view answers Stat, List and FileDigest (hashing
// without recording a memo), and its Get, Put, Delete, GC and Verify
// answer ErrReadOnly. Value files (blob.go) are not read either: a view
// answers from the Meta records of its copy alone, so it is as consistent
// as the copy whatever the writer does to the files meanwhile.

// ErrReadOnly matches (errors.Is) an operation a read-only view refuses.
var ErrReadOnly = errors.New("read-only view of the cache")

// viewAttempts bounds the retries of a copy raced by a compaction.
const viewAttempts = 5

func openView(dir string, opts Options, log hclog.Logger) (*Store, error) {
	src := filepath.Join(dir, "badger")
	var lastErr error
	for range viewAttempts {
		tmp, err := os.MkdirTemp("", "lrmc-view-")
		if err != nil {
			return nil, fmt.Errorf("cache: read-only view of %s: %w", dir, err)
		}
		s, err := copyAndOpenView(dir, src, tmp, opts, log)
		if err == nil {
			return s, nil
		}
		os.RemoveAll(tmp)
		lastErr = err
		if errors.Is(err, ErrNoSpace) {
			break
		}
	}
	return nil, lastErr
}

func copyAndOpenView(dir, src, tmp string, opts Options, log hclog.Logger) (*Store, error) {
	dst := filepath.Join(tmp, "badger")
	if err := os.Mkdir(dst, 0o700); err != nil {
		return nil, fmt.Errorf("cache: read-only view of %s: %w", dir, err)
	}
	for _, pass := range []func(string) bool{
		func(n string) bool { return strings.HasSuffix(n, ".mem") },
		func(n string) bool { return n == "MANIFEST" || n == "KEYREGISTRY" },
		func(n string) bool { return strings.HasSuffix(n, ".sst") },
	} {
		ents, err := os.ReadDir(src)
		if errors.Is(err, os.ErrNotExist) {
			break // no cache yet: an empty view
		}
		if err != nil {
			return nil, fmt.Errorf("cache: read-only view of %s: %w", dir, err)
		}
		for _, e := range ents {
			if !e.Type().IsRegular() || !pass(e.Name()) {
				continue
			}
			err := copySparse(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()))
			if errors.Is(err, os.ErrNotExist) {
				continue // flushed or compacted away since the listing
			}
			if err != nil {
				return nil, fmt.Errorf("cache: read-only view of %s: %w", dir, err)
			}
		}
	}
	// The copy is private: open it as a writable database so Badger replays
	// and trims the copied logs (its read-only mode refuses to).
	s, err := openDB(dir, dst, opts, log, true)
	if err != nil {
		return nil, err
	}
	s.view = tmp
	return s, nil
}

// copySparse copies a file, leaving holes for all-zero blocks: write-ahead
// logs are preallocated and mostly empty.
func copySparse(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	var off int64
	for {
		n, rerr := io.ReadFull(in, buf)
		if n > 0 {
			if !allZero(buf[:n]) {
				if _, err := out.WriteAt(buf[:n], off); err != nil {
					out.Close()
					return err
				}
			}
			off += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			out.Close()
			return rerr
		}
	}
	if err := out.Truncate(off); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// readOnly returns an ErrReadOnly error for op, a write, on a view or a
// store opened with NoWrite (counting it there), nil otherwise.
func (s *Store) readOnly(op string) error {
	if !s.refuse() {
		return nil
	}
	if s.noWrite {
		return fmt.Errorf("cache %s: %s: opened without writing: %w", s.dir, op, ErrReadOnly)
	}
	return fmt.Errorf("cache %s: %s: %w", s.dir, op, ErrReadOnly)
}

// ReadOnly reports whether s refuses writes: a read-only view, or a store
// opened with NoWrite.
func (s *Store) ReadOnly() bool { return s.view != "" || s.noWrite }
