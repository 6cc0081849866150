// Package cache is lrmc's content-addressed result store.
//
// Results are stored under the node key the planner computes (a
// digest.Digest) and described by a Meta record in a Badger database inside
// the cache directory; the Meta, written after the value, is the entry. A
// value of 1 MiB or more is one file beside the database (blobs/, see
// blob.go); a smaller one is split into ChunkSize pieces, each its own Badger
// entry (pieces of 64 KiB and more go to Badger's value log, so the LSM tree
// holds only pointers). A crash while writing leaves a file or chunks without
// a Meta, which are garbage that GC and Verify drop. Every Get re-hashes the
// value against Meta.Sum, so damage on disk turns into ErrCorrupt (and a
// recomputation) instead of wrong results.
//
// One process at a time owns a cache directory (see Open); others may read a
// point-in-time view of it meanwhile (Options.ReadOnly). Meta records are
// sealed with their own BLAKE3, so damaged metadata also reads as a missing
// or corrupt entry. Damaged Badger files (a panic or refusal inside Badger)
// become a *DamagedError, repaired by Repair; a disk too full to write
// safely, a *NoSpaceError (Badger writes through memory maps, where a full
// disk is SIGBUS rather than an error, so free space is checked first).
//
// Beside the local store, a Remote (OpenRemote: file:///DIR on a shared file
// system, or s3://BUCKET/PREFIX) is a content-addressed store that many
// machines share, keyed by the same node keys (Store.SetRemote). The local
// store reads through it on a miss (Get verifies the remote entry and copies
// it in; Stat only checks its header and size, so remote-only entries count
// as cached without being downloaded) and writes new entries back (Put).
// Remote entries are immutable and written whole (rename into place, or one
// object), so concurrent writers need no locks; a remote entry that fails
// verification is never used: it reads as a miss, is recomputed, and the
// recomputed value replaces it. Local eviction, GC, Verify and Delete act on
// the local store only; nothing evicts remote entries.
package cache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
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
	// ReadOnly opens a private, point-in-time view of the cache instead of
	// the cache itself: it takes no lock, so it works while another process
	// writes, and never writes to dir (see openView).
	ReadOnly bool
	// NoWrite opens the cache itself, lock and all, with its database
	// read-only, for a command that expects to find everything it needs
	// (a fully cached apply): see nowrite.go. Open fails with an
	// ErrNeedsWrite error when the cache cannot be read without writing.
	NoWrite bool

	// valueLogFileSize overrides the value-log file size; tests use small
	// files to observe space reclamation.
	valueLogFileSize int64
	// blobThreshold overrides the size from which values are files
	// (blobThreshold); negative keeps every value in Badger, so tests and
	// benchmarks can exercise and compare both layouts.
	blobThreshold int64
}

// Badger sizing. The defaults (5 × 64 MiB memtables, 256 MiB block cache)
// suit a database whose keys are its data; here the LSM tree holds only chunk
// pointers, metadata and small values, so small memtables and caches lose
// nothing and keep the store's resident memory near 60 MiB.
//
// Values of valueThreshold and more go to the value log, so that the
// tables hold little but metadata: Open verifies (and decompresses) every
// table, which with values up to Badger's default 1 MiB in them cost a
// warm apply 20 ms. (The memtable stays at 16 MiB: smaller would halve the
// arena every Open zeroes, but Badger exits the process, without a panic
// to recover, when it replays a write-ahead log written with a larger
// memtable than the arena holds: a cache left by a crash of an lrmc with
// 16 MiB memtables.)
const (
	memTableSize   = 16 << 20
	valueThreshold = 64 << 10
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

// formatVersion names the layout. lrmc-cache/3 stores large values as files
// beside the database (see blob.go); lrmc-cache/2 seals each Meta record
// behind its BLAKE3 (see encodeMeta); lrmc-cache/1 stored bare JSON. Open
// migrates older caches: a /1 cache by sealing its records, a /2 one by
// marking it /3 (its values stay in Badger, where /3 still reads them), so
// that an lrmc that knows nothing of value files refuses a cache holding
// them instead of reading their entries as corrupt and leaking the files.
const (
	formatVersion   = "lrmc-cache/3"
	formatVersionV2 = "lrmc-cache/2"
	formatVersionV1 = "lrmc-cache/1"
)

// Store is an open cache directory. Its methods are safe for concurrent use.
type Store struct {
	dir  string
	db   *badger.DB
	lock *processLock // nil for a read-only view
	log  hclog.Logger
	now  func() time.Time // replaced in tests to order LastUsed

	// view is the private directory of a read-only view (see openView),
	// removed by Close; empty for the cache itself.
	view string

	closeOnce sync.Once
	closeErr  error
	// dbDir is Badger's directory as opened: Close checks it is still
	// there (see Close).
	dbDir os.FileInfo

	// sweep is held for writing while GC and Verify decide which chunks are
	// orphans and drop them (Badger's DropPrefix also refuses writes then),
	// and for reading by every operation that writes, so that a chunk being
	// written by Put is never mistaken for an orphan.
	sweep sync.RWMutex
	// keyMu serialises writers of the same key (striped by its first byte).
	keyMu [256]sync.Mutex
	// origin names the writer Put records in new entries (SetOrigin).
	origin atomic.Pointer[origin]
	// badRemote holds the keys whose remote entry this store found
	// corrupt: their next Put replaces it (see writeBack).
	badRemote sync.Map
	// remote, when set (SetRemote), is read through on a local miss and
	// written back on Put.
	remote atomic.Pointer[Remote]

	// blobMin is the value size from which values are files (see blob.go);
	// zero or less stores every value in Badger.
	blobMin int64
	// unsynced lists the value files written since Close last synced.
	unsynced syncList

	// noWrite: Badger is open read-only (Options.NoWrite); refused counts
	// the writes refused or skipped since.
	noWrite bool
	refused atomic.Int64
	// postponed holds the bookkeeping writes a NoWrite store did not make
	// (see Postponed).
	postponedMu sync.Mutex
	postponed   []func(*Store)
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
// for it when opts.Wait is set. With opts.ReadOnly it opens a view instead.
//
// Damaged Badger files make Open return a *DamagedError (errors.Is
// ErrDamaged) naming the file and the way out (Repair); a disk too full to
// open the cache safely, a *NoSpaceError.
func Open(dir string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if opts.ReadOnly {
		return openView(dir, opts, log)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	lock, err := acquireLock(dir, opts, log)
	if err != nil {
		return nil, err
	}
	if opts.NoWrite {
		s, err := openNoWrite(dir, filepath.Join(dir, "badger"), opts, log)
		if err != nil {
			lock.release()
			return nil, err
		}
		s.lock = lock
		return s, nil
	}
	s, err := openDB(dir, filepath.Join(dir, "badger"), opts, log, true)
	if err == nil {
		err = cleanBlobTmp(dir)
		if err != nil {
			s.db.Close()
		}
	}
	if err != nil {
		lock.release()
		return nil, err
	}
	s.lock = lock
	return s, nil
}

// openDB opens the Badger database in path for the cache dir and checks
// (or writes) its format. strict turns on checksum verification of every
// table at open: a damaged table is then an error here, instead of a panic
// later on a compaction goroutine where nothing can recover it. (The LSM
// tree holds pointers and metadata only, so this reads a few MiB.)
func openDB(dir, path string, opts Options, log hclog.Logger, strict bool) (*Store, error) {
	if err := ensureSpace(filepath.Dir(path), openHeadroom); err != nil {
		return nil, err
	}
	if err := checkTables(dir, path); err != nil {
		return nil, err
	}
	db, err := openBadger(badgerOptions(path, opts, log, strict))
	if err != nil {
		return nil, openFailure(dir, err)
	}
	return newStore(dir, db, opts, log, false)
}

// newStore makes the Store of db, the database of the cache dir (opened
// read-only when noWrite), and checks its format.
func newStore(dir string, db *badger.DB, opts Options, log hclog.Logger, noWrite bool) (*Store, error) {
	s := &Store{dir: dir, db: db, log: log, now: time.Now, blobMin: blobThreshold, noWrite: noWrite}
	if fi, err := os.Stat(db.Opts().Dir); err == nil {
		s.dbDir = fi
	}
	if opts.blobThreshold != 0 {
		s.blobMin = opts.blobThreshold
	}
	if err := s.checkFormat(); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

func badgerOptions(path string, opts Options, log hclog.Logger, strict bool) badger.Options {
	vlogSize := int64(valueLogFileSize)
	if opts.valueLogFileSize > 0 {
		vlogSize = opts.valueLogFileSize
	}
	bopts := badger.DefaultOptions(path).
		WithLogger(badgerLogger{log.Named("badger")}).
		WithMemTableSize(memTableSize).
		WithValueThreshold(valueThreshold).
		WithNumMemtables(numMemtables).
		WithBlockCacheSize(blockCacheSize).
		WithNumCompactors(2).
		WithValueLogFileSize(vlogSize).
		WithMetricsEnabled(false)
	if strict {
		bopts = bopts.WithChecksumVerificationMode(options.OnTableRead)
	}
	return bopts
}

// openBadger is badger.Open with its panics (asserts on damaged files)
// turned into errors.
func openBadger(bopts badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%v", r)
		}
	}()
	return badger.Open(bopts)
}

func (s *Store) checkFormat() (err error) {
	defer s.recoverPanic(&err)
	var v []byte
	err = s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(formatKey)
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if s.noWrite && (err != nil || string(v) != formatVersion) {
		// Writing the format, migrating, or reporting damage is the
		// business of a writable open.
		return fmt.Errorf("cache: open %s without writing: format record %q: %w", s.dir, v, ErrNeedsWrite)
	}
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		err = s.db.Update(func(txn *badger.Txn) error { return txn.Set(formatKey, []byte(formatVersion)) })
		if err != nil {
			return s.writeError(fmt.Errorf("cache: write format of %s: %w", s.dir, err), 0)
		}
		return nil
	case err != nil:
		return damaged(s.dir, fmt.Sprintf("format record unreadable: %v", err))
	case string(v) == formatVersion:
		return nil
	case string(v) == formatVersionV1:
		return s.migrateV1()
	case string(v) == formatVersionV2:
		err = s.db.Update(func(txn *badger.Txn) error { return txn.Set(formatKey, []byte(formatVersion)) })
		if err != nil {
			return s.writeError(fmt.Errorf("cache: migrate %s from %s to %s: %w", s.dir, formatVersionV2, formatVersion, err), 0)
		}
		s.log.Info("migrated cache format", "dir", s.dir, "from", formatVersionV2, "to", formatVersion)
		return nil
	}
	return fmt.Errorf("cache: %s has format %q, this lrmc reads %q (use another --cache directory, or lrmc cache reset to empty this one)", s.dir, v, formatVersion)
}

// migrateV1 seals the bare JSON Meta records of an lrmc-cache/1 cache and
// marks it lrmc-cache/2, in one transaction per batch; a record that does not
// decode is deleted (its entry is recomputed when next needed).
func (s *Store) migrateV1() error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	n := 0
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: []byte(metaPrefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := item.KeyCopy(nil)
			var m Meta
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &m) }); err != nil || !bytes.Equal(k, metaKey(m.Key)) {
				if err := wb.Delete(k); err != nil {
					return err
				}
				continue
			}
			b, err := encodeMeta(m)
			if err != nil {
				return err
			}
			if err := wb.Set(k, b); err != nil {
				return err
			}
			n++
		}
		return wb.Set(formatKey, []byte(formatVersion))
	})
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		return s.writeError(fmt.Errorf("cache: migrate %s from %s to %s: %w", s.dir, formatVersionV1, formatVersion, err), 0)
	}
	s.log.Info("migrated cache format", "dir", s.dir, "from", formatVersionV1, "to", formatVersion, "entries", n)
	return nil
}

// Dir is the cache directory.
func (s *Store) Dir() string { return s.dir }

// Close flushes Badger to disk and releases the process lock; a view's
// private copy is removed instead. Later calls return the first call's
// result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		// Release the lock even when Badger panics on a damaged file
		// (s.lock is nil by then after a normal close).
		defer func() { s.lock.release() }()
		defer s.recoverPanic(&s.closeErr)
		if err := s.dbDirGone(); err != nil {
			// Badger retries a failed memtable flush forever, once a
			// second: closing a cache whose directory was removed under
			// it (a batch job's cleanup racing its own lrmc) would never
			// return. Nothing can be kept there any more; say so.
			s.closeErr = fmt.Errorf("cache: close %s: %w; entries written since it was removed are lost", s.dir, err)
			return
		}
		// SyncWrites is off (an fsync per chunk would halve write speed and
		// the per-value hash catches what a crash damages); sync once here.
		var errs []error
		switch {
		case s.view != "":
			errs = append(errs, s.db.Close(), os.RemoveAll(s.view))
		case s.noWrite:
			// Nothing was written: nothing to sync (and a read-only
			// Badger has no write-ahead log to sync).
			errs = append(errs, s.db.Close(), s.lock.release())
			s.lock = nil
		default:
			// Value files first, so that no Meta is durable before its
			// file.
			errs = append(errs, s.unsynced.sync(s.dir), s.db.Sync(), s.db.Close(), s.lock.release())
			s.lock = nil
		}
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("cache: close %s: %w", s.dir, err)
		}
	})
	return s.closeErr
}

// dbDirGone reports Badger's directory removed or replaced since open.
func (s *Store) dbDirGone() error {
	if s.dbDir == nil {
		return nil
	}
	dir := s.db.Opts().Dir
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !os.SameFile(fi, s.dbDir)) {
		return fmt.Errorf("its directory %s was removed while the cache was open", dir)
	}
	return nil
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
