// Package cache is lrmc's content-addressed result store.
//
// Results are stored under the node key the planner computes (a
// digest.Digest) in a Badger database inside the cache directory. A value is
// split into ChunkSize pieces, each its own Badger entry (4 MiB pieces go to
// Badger's value log, so the LSM tree holds only pointers), and described by a
// Meta record written after all of its chunks: the Meta is the entry. A crash
// while writing leaves chunks without a Meta, which are garbage that GC and
// Verify drop. Every Get re-hashes the value against Meta.Sum, so damage on
// disk turns into ErrCorrupt (and a recomputation) instead of wrong results.
//
// One process at a time owns a cache directory (see Open).
package cache

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/go-hclog"

	"lrmc/digest"
)

// Options configure Open. The zero value is valid.
type Options struct {
	// Logger receives the store's messages and Badger's (Badger's errors and
	// warnings at their level, its chatty info at Debug). Nil discards them.
	Logger hclog.Logger
	// Wait makes Open wait for a process holding the cache instead of failing.
	Wait bool
	// WaitTimeout bounds the wait; zero waits indefinitely.
	WaitTimeout time.Duration

	// valueLogFileSize overrides the value-log file size; tests use small
	// files to observe space reclamation.
	valueLogFileSize int64
}

// Badger sizing. The defaults (5 × 64 MiB memtables, 256 MiB block cache)
// suit a database whose keys are its data; here the LSM tree holds only chunk
// pointers, metadata and small values, so small memtables and caches lose
// nothing and keep the store's resident memory near 60 MiB.
const (
	memTableSize   = 16 << 20
	numMemtables   = 2
	blockCacheSize = 16 << 20
	// valueLogFileSize is the unit in which value-log GC reclaims disk space:
	// a file is rewritten only when enough of it is garbage, and the file
	// being appended to never is. Smaller files reclaim sooner; larger ones
	// keep the count of open, memory-mapped files down (a 100 GiB cache is
	// 400 of these).
	valueLogFileSize = 256 << 20
)

// formatKey holds formatVersion; Open refuses a directory written in another
// layout rather than misreading it.
var formatKey = []byte("format")

const formatVersion = "lrmc-cache/1"

// Store is an open cache directory. Its methods are safe for concurrent use.
type Store struct {
	dir  string
	db   *badger.DB
	lock *processLock
	log  hclog.Logger
	now  func() time.Time // replaced in tests to order LastUsed

	closeOnce sync.Once
	closeErr  error

	// sweep is held for writing while GC and Verify decide which chunks are
	// orphans and drop them (Badger's DropPrefix also refuses writes then),
	// and for reading by every operation that writes, so that a chunk being
	// written by Put is never mistaken for an orphan.
	sweep sync.RWMutex
	// keyMu serialises writers of the same key (striped by its first byte).
	keyMu [256]sync.Mutex
}

// DefaultDir is $LRMC_CACHE if set, else lrmc under the user cache directory
// (~/.cache/lrmc on Linux), else lrmc-cache under the temporary directory when
// the system has no user cache directory (no $HOME).
func DefaultDir() string {
	if d := os.Getenv("LRMC_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "lrmc")
	}
	return filepath.Join(os.TempDir(), "lrmc-cache")
}

// Open opens (creating if needed) the cache in dir. It first takes an
// exclusive process lock on dir; if another process or another Store in this
// process holds it, Open returns a *LockedError naming the holder, or waits
// for it when opts.Wait is set.
func Open(dir string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	lock, err := acquireLock(dir, opts, log)
	if err != nil {
		return nil, err
	}
	vlogSize := int64(valueLogFileSize)
	if opts.valueLogFileSize > 0 {
		vlogSize = opts.valueLogFileSize
	}
	bopts := badger.DefaultOptions(filepath.Join(dir, "badger")).
		WithLogger(badgerLogger{log.Named("badger")}).
		WithMemTableSize(memTableSize).
		WithNumMemtables(numMemtables).
		WithBlockCacheSize(blockCacheSize).
		WithNumCompactors(2).
		WithValueLogFileSize(vlogSize).
		WithMetricsEnabled(false)
	db, err := badger.Open(bopts)
	if err != nil {
		lock.release()
		return nil, fmt.Errorf("cache: open %s: %w", dir, err)
	}
	s := &Store{dir: dir, db: db, lock: lock, log: log, now: time.Now}
	if err := s.checkFormat(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) checkFormat() error {
	return s.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(formatKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return txn.Set(formatKey, []byte(formatVersion))
		}
		if err != nil {
			return fmt.Errorf("cache: read format of %s: %w", s.dir, err)
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("cache: read format of %s: %w", s.dir, err)
		}
		if !bytes.Equal(v, []byte(formatVersion)) {
			return fmt.Errorf("cache: %s has format %q, this lrmc reads %q", s.dir, v, formatVersion)
		}
		return nil
	})
}

// Dir is the cache directory.
func (s *Store) Dir() string { return s.dir }

// Close flushes Badger to disk and releases the process lock. Later calls
// return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// SyncWrites is off (an fsync per chunk would halve write speed and
		// the per-value hash catches what a crash damages); sync once here.
		errs := []error{s.db.Sync(), s.db.Close(), s.lock.release()}
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("cache: close %s: %w", s.dir, err)
		}
	})
	return s.closeErr
}

func (s *Store) keyLock(key digest.Digest) *sync.Mutex {
	return &s.keyMu[key[0]]
}

// badgerLogger routes Badger's log into hclog. Badger logs every compaction
// and value-log step at Info; that is Debug detail for lrmc's users.
type badgerLogger struct{ l hclog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error(msg(f, a)) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn(msg(f, a)) }
func (b badgerLogger) Infof(f string, a ...any)    { b.l.Debug(msg(f, a)) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.l.Trace(msg(f, a)) }

func msg(f string, a []any) string { return strings.TrimSpace(fmt.Sprintf(f, a...)) }
