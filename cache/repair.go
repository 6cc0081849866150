package cache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"lrmc/digest"
)

// RepairReport says what Repair kept and dropped.
type RepairReport struct {
	Kept    []Meta // entries whose value verified
	Dropped []Meta // entries found damaged (only Key is set for a damaged Meta record)
	// MovedAside is where the damaged database went when Badger could not
	// open it ("" when it could); Salvaged says whether its entries could
	// be read at all. The user deletes MovedAside when done with it.
	MovedAside string
	Salvaged   bool
	Cause      error // why the database was moved aside
}

// Repair makes the cache in dir usable again, keeping every entry whose
// value verifies. When Badger opens the database, that is Verify. When it
// cannot (damaged MANIFEST, tables, key registry, or a panic), the database
// is moved aside to badger.damaged-<time>, a fresh one takes its place, and
// the entries that can still be read from the damaged copy, each verified
// against its sealed Meta and content hash, are copied over.
func Repair(dir string, opts Options) (*RepairReport, error) {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	s, err := Open(dir, opts)
	if err == nil {
		bad, verr := s.Verify()
		var kept []Meta
		if verr == nil {
			kept, verr = s.List()
		}
		cerr := s.Close()
		if verr == nil {
			return &RepairReport{Kept: kept, Dropped: bad}, cerr
		}
		if !errors.Is(verr, ErrDamaged) {
			return nil, verr
		}
		err = verr
	}
	if !errors.Is(err, ErrDamaged) {
		return nil, err
	}
	rep := &RepairReport{Cause: err}
	log.Warn("cache database is damaged; moving it aside", "dir", dir, "error", err)

	lock, err := acquireLock(dir, opts, log)
	if err != nil {
		return nil, err
	}
	defer lock.release()
	rep.MovedAside = filepath.Join(dir, "badger.damaged-"+time.Now().UTC().Format("20060102T150405.000"))
	if err := os.Rename(filepath.Join(dir, "badger"), rep.MovedAside); err != nil {
		return nil, fmt.Errorf("cache: repair: move the damaged database aside: %w", err)
	}
	fresh, err := openDB(dir, filepath.Join(dir, "badger"), opts, log, true)
	if err != nil {
		return nil, fmt.Errorf("cache: repair: start a fresh database: %w", err)
	}
	defer func() {
		if cerr := fresh.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	old, err := openDamaged(dir, rep.MovedAside, opts, log)
	if err != nil {
		log.Warn("nothing could be salvaged from the damaged cache database", "path", rep.MovedAside, "error", err)
		return rep, nil
	}
	defer old.Close()
	rep.Salvaged = true
	metas, damagedMetas, err := old.listSafe()
	if err != nil {
		log.Warn("could not list the damaged cache database's entries", "path", rep.MovedAside, "error", err)
	}
	for _, k := range damagedMetas {
		rep.Dropped = append(rep.Dropped, Meta{Key: k})
	}
	for _, m := range metas {
		v, got, err := old.Get(m.Key)
		if err == nil {
			err = fresh.Put(m.Key, got.Op, got.Name, v)
			if errors.Is(err, ErrNoSpace) {
				return rep, err
			}
		}
		if err != nil {
			log.Warn("dropping unreadable cache entry", "key", m.Key.String(), "op", m.Op, "name", m.Name, "error", err)
			rep.Dropped = append(rep.Dropped, m)
			continue
		}
		rep.Kept = append(rep.Kept, got)
	}
	return rep, nil
}

// openDamaged opens a moved-aside database for salvage, without table
// checksum verification (every record read is verified by its own hash),
// and replacing a damaged key registry: lrmc does not encrypt, so the
// registry holds no keys the data needs.
func openDamaged(dir, path string, opts Options, log hclog.Logger) (*Store, error) {
	s, err := openDB(dir, path, opts, log, false)
	var de *DamagedError
	if errors.As(err, &de) && strings.Contains(de.Error(), "KEYREGISTRY") {
		if rerr := os.Remove(filepath.Join(path, "KEYREGISTRY")); rerr == nil {
			s, err = openDB(dir, path, opts, log, false)
		}
	}
	return s, err
}

// listSafe is list with Badger's panics turned into errors.
func (s *Store) listSafe() (metas []Meta, damagedMetas []digest.Digest, err error) {
	defer s.recoverPanic(&err)
	return s.list()
}

// Reset deletes the cache database in dir (every entry, and any
// badger.damaged-* left by Repair), under the process lock.
func Reset(dir string, opts Options) error {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	lock, err := acquireLock(dir, opts, log)
	if err != nil {
		return err
	}
	defer lock.release()
	paths, _ := filepath.Glob(filepath.Join(dir, "badger.damaged-*"))
	for _, p := range append(paths, filepath.Join(dir, "badger")) {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("cache: reset %s: %w", dir, err)
		}
	}
	return nil
}
