package cache

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"

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
// Delete, RecordApply of different keys, GC, Verify, dropping a corrupt
// entry) is refused and counted by Refused, so a caller that finds a write
// was needed opens the cache again without NoWrite and redoes the work
// there. Bookkeeping that a correct result does not need (a refresh of
// LastUsed that a Get would make, a file-digest or derived memo) is only
// postponed (Postponed), for the caller to make on a writable store
// (CatchUp) when there is any.

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
	return newStore(dir, db, opts, log, true)
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

// Postponed is the bookkeeping a store opened with NoWrite did not write:
// LastUsed refreshes of entries it read (a writable store's Get makes one
// when the last is older than touchInterval), file-digest memos of files
// it hashed and derived memos (SetDerived). None is needed for a correct
// result, so they are not counted by Refused; CatchUp makes them on a
// writable store.
type Postponed struct{ writes []func(*Store) }

// Len is the number of writes postponed.
func (p Postponed) Len() int { return len(p.writes) }

// Postponed returns the writes postponed so far.
func (s *Store) Postponed() Postponed {
	s.postponedMu.Lock()
	defer s.postponedMu.Unlock()
	return Postponed{slices.Clone(s.postponed)}
}

// CatchUp makes on s, a writable store, the writes a NoWrite store
// postponed (best effort, as they are on a writable store: a LastUsed is
// refreshed only if its entry was not replaced meanwhile).
func (s *Store) CatchUp(p Postponed) {
	for _, w := range p.writes {
		w(s)
	}
}

// postpone notes a bookkeeping write for Postponed.
func (s *Store) postpone(w func(*Store)) {
	s.postponedMu.Lock()
	s.postponed = append(s.postponed, w)
	s.postponedMu.Unlock()
}
