package cache

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Opening without writing (Options.NoWrite).
//
// A writable Badger open creates a write-ahead log (a 32 MiB sparse file)
// and a new value-log file (512 MiB sparse), and its close syncs and
// deletes them: on a fully cached apply that is a sixth of the command's
// CPU time, the page faults that zero the first pages of both maps included,
// for nothing written. A store opened with NoWrite takes the process lock as
// a writable one does (so no other process changes the cache under it) but
// opens Badger read-only: nothing in the directory is created, truncated or
// deleted. Gets read values and verify them as usual; every write (Put,
// Delete, RecordApply of different keys, GC, Verify, a file-digest memo, a
// derived memo, dropping a corrupt entry) is refused or skipped and counted
// by Refused, so a caller that finds a write was needed opens the cache
// again without NoWrite and redoes the work there. A refresh of LastUsed
// that a Get would make is only noted (StaleReads), for the caller to make
// on a writable store (Refresh) when there are any.

// ErrNeedsWrite matches (errors.Is) an Open with NoWrite that cannot serve
// reads without writing first: a write-ahead log left by a process that
// did not close the cache (Badger read-only refuses to replay one that
// still has room), a format to migrate, or a database that does not exist
// yet. Open the cache without NoWrite instead.
var ErrNeedsWrite = errors.New("the cache needs writing before it can be read")

// openNoWrite opens the database in path read-only for the cache dir
// whose lock the caller holds.
func openNoWrite(dir, path string, opts Options, log hclog.Logger) (*Store, error) {
	if err := checkTables(dir, path); err != nil {
		return nil, err
	}
	if !hasDatabase(path) {
		return nil, fmt.Errorf("cache: open %s without writing: %w", dir, ErrNeedsWrite)
	}
	db, err := openBadger(badgerOptions(path, opts, log, true).WithReadOnly(true))
	if err != nil {
		return nil, fmt.Errorf("cache: open %s without writing: %v: %w", dir, err, ErrNeedsWrite)
	}
	s := &Store{dir: dir, db: db, log: log, now: time.Now, blobMin: blobThreshold, noWrite: true}
	if opts.blobThreshold != 0 {
		s.blobMin = opts.blobThreshold
	}
	if err := s.checkFormat(); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

// hasDatabase says whether path holds a Badger database (its MANIFEST):
// read-only Badger would otherwise fail on an empty or missing directory.
func hasDatabase(path string) bool {
	ok, _ := filepath.Glob(filepath.Join(path, "MANIFEST"))
	return len(ok) > 0
}

// refuse counts a write a NoWrite store does not make and says whether
// writes are refused (a view's too, which are not counted).
func (s *Store) refuse() bool {
	if s.noWrite {
		s.refused.Add(1)
		return true
	}
	return s.view != ""
}

// Refused is how many writes a store opened with NoWrite refused or
// skipped so far (see Options.NoWrite); zero for any other store.
func (s *Store) Refused() int64 { return s.refused.Load() }

// NoWrite reports whether s was opened with Options.NoWrite.
func (s *Store) NoWrite() bool { return s.noWrite }

// StaleReads returns the entries a store opened with NoWrite read without
// refreshing their LastUsed, as Get does on a writable store when the last
// refresh is older than touchInterval; Refresh on a writable store makes
// up for it. They are not counted by Refused: the values read are sound.
func (s *Store) StaleReads() []Meta {
	s.staleMu.Lock()
	defer s.staleMu.Unlock()
	return slices.Clone(s.stale)
}

// Refresh sets the LastUsed of the entries in ms, as reading them would
// have (see StaleReads), unless they were replaced since; best effort, as
// that refresh is.
func (s *Store) Refresh(ms []Meta) {
	for _, m := range ms {
		s.touch(m)
	}
}
