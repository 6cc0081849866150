package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"lrmc/digest"
	"lrmc/internal/atomicfile"
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
		if err == nil && got.Blob {
			// The value file beside the database has just verified:
			// the fresh database needs only its Meta.
			err = fresh.writeMeta(got)
		} else if err == nil {
			err = fresh.put(m.Key, got.Op, got.Name, v, got.Recipe, got.Runs)
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
	// Value files of entries that did not survive are orphans now.
	if _, _, err := fresh.dropOrphans(); err != nil {
		log.Warn("could not remove the value files of dropped entries; lrmc cache gc removes them", "error", err)
	}
	// What each recipe's latest apply needs, so gc keeps telling.
	applies, _, err := old.appliesSafe()
	for _, a := range applies {
		if err == nil {
			err = fresh.RecordApply(a)
		}
	}
	if err != nil {
		log.Warn("could not copy the damaged cache's apply records; the next apply of each recipe records its own", "error", err)
	}
	return rep, nil
}

// openDamaged opens a moved-aside database for salvage, without table
// checksum verification (every record read is verified by its own hash),
// and replacing a damaged key registry: lrmc does not encrypt, so the
// registry holds no keys the data needs.
//
// A damaged MANIFEST (which says which table is at which level) is rebuilt
// from the tables on disk, all at level 0, where Badger allows tables to
// overlap and resolves each key by its version, as it does across levels:
// the union of the tables reads as the database did. Tables that do not
// open are renamed *.sst.damaged and left out.
func openDamaged(dir, path string, opts Options, log hclog.Logger) (*Store, error) {
	var s *Store
	err := checkTables(dir, path)
	if err == nil {
		s, err = openDB(dir, path, opts, log, false)
	}
	for range 4 { // several files may need fixing
		var de *DamagedError
		if !errors.As(err, &de) {
			break
		}
		switch {
		case (strings.HasSuffix(de.File, ".vlog") || strings.HasSuffix(de.File, ".mem")) && strings.Contains(de.Cause, "Invalid datakey id"):
			// The log's header names an encryption key; lrmc's are
			// all 0 (none), so a damaged one is restored. Its entries
			// carry their own CRCs.
			if rerr := zeroKeyID(filepath.Join(path, de.File)); rerr != nil {
				return nil, err
			}
		case de.File == "KEYREGISTRY":
			if rerr := os.Remove(filepath.Join(path, "KEYREGISTRY")); rerr != nil {
				return nil, err
			}
		case de.File == "MANIFEST" || strings.HasSuffix(de.File, ".sst") || strings.HasPrefix(de.Cause, "file does not exist for table"):
			n, rerr := rebuildManifest(path)
			if rerr != nil {
				return nil, fmt.Errorf("%w; rebuilding its MANIFEST: %v", err, rerr)
			}
			log.Warn("rebuilt the damaged cache database's MANIFEST from its tables", "path", path, "tables", n)
		default:
			return nil, err
		}
		s, err = openDB(dir, path, opts, log, false)
	}
	return s, err
}

// rebuildManifest writes a MANIFEST for the Badger directory path that
// creates every sound table at level 0, in Badger's file format (magic,
// then one length- and CRC-prefixed ManifestChangeSet), and returns the
// number of tables. All lrmc tables use Badger's default compression and
// no encryption.
func rebuildManifest(path string) (int, error) {
	names, err := filepath.Glob(filepath.Join(path, "*.sst"))
	if err != nil {
		return 0, err
	}
	topt := tableCheckOptions()
	var set pb.ManifestChangeSet
	for _, name := range names {
		id, ok := table.ParseFileID(name)
		if ok && checkTable(name, topt) == nil {
			set.Changes = append(set.Changes, &pb.ManifestChange{
				Id: id, Op: pb.ManifestChange_CREATE, Level: 0, Compression: uint32(topt.Compression)})
			continue
		}
		if err := os.Rename(name, name+".damaged"); err != nil {
			return 0, err
		}
	}
	body, err := proto.Marshal(&set)
	if err != nil {
		return 0, err
	}
	buf := []byte{'B', 'd', 'g', 'r', 0, 0, 0, manifestVersion}
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(body)))
	buf = binary.BigEndian.AppendUint32(buf, crc32.Checksum(body, y.CastagnoliCrcTable))
	buf = append(buf, body...)
	// Atomically: a repair killed here leaves the old MANIFEST, and
	// running it again rebuilds from the same tables.
	return len(set.Changes), atomicfile.WriteBytes(filepath.Join(path, "MANIFEST"), 0o644, buf)
}

// zeroKeyID clears the data-key id at the start of a write-ahead or value
// log file (its first 8 bytes; the 12 after them are an IV that only
// encryption uses).
func zeroKeyID(name string) error {
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(make([]byte, 8), 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// manifestVersion is Badger v4's MANIFEST format version
// (badgerMagicVersion); Open rejects a MANIFEST of another.
const manifestVersion = 8

// appliesSafe is applies with Badger's panics turned into errors.
func (s *Store) appliesSafe() (applies []Apply, damaged [][]byte, err error) {
	defer s.recoverPanic(&err)
	return s.applies()
}

// listSafe is list with Badger's panics turned into errors.
func (s *Store) listSafe() (metas []Meta, damagedMetas []digest.Digest, err error) {
	defer s.recoverPanic(&err)
	return s.list()
}

// Reset deletes the cache database in dir (every entry and value file, and
// any badger.damaged-* left by Repair), under the process lock.
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
	for _, p := range append(paths, filepath.Join(dir, "badger"), blobsDir(dir)) {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("cache: reset %s: %w", dir, err)
		}
	}
	return nil
}
