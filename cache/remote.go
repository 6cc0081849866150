package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"lrmc/digest"
)

// Remote is a content-addressed store shared by many machines, keyed by the
// same node keys as the local cache. Entries are immutable: a key names one
// value forever, so writers need no locks. A file:// implementation is here;
// an s3:// one can implement the same two methods later.
type Remote interface {
	// Get returns key's value verified against its recorded BLAKE3, an
	// ErrNotFound error, or a *CorruptError (the entry is ignored).
	Get(key digest.Digest) ([]byte, Meta, error)
	// Put stores value under m.Key unless an entry is already there.
	Put(m Meta, value []byte) error
}

// OpenRemote opens the remote store named by url (file://DIR).
func OpenRemote(url string) (Remote, error) {
	dir, ok := strings.CutPrefix(url, "file://")
	if !ok {
		return nil, fmt.Errorf("cache: remote %q: only file://DIR is supported (s3:// is not built yet)", url)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("cache: remote %s: %w", url, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("cache: remote %s: not a directory", url)
	}
	return &FileRemote{dir: dir}, nil
}

// FileRemote stores each entry as one file DIR/ab/KEY: an 8-byte length, the
// sealed Meta record, then the value. Files are written to a temporary name
// and renamed into place, so readers never see half an entry and concurrent
// writers of one key each leave a whole, identical file.
type FileRemote struct{ dir string }

func (r *FileRemote) path(key digest.Digest) string {
	s := key.String()
	return filepath.Join(r.dir, s[:2], s)
}

// Get implements Remote.
func (r *FileRemote) Get(key digest.Digest) ([]byte, Meta, error) {
	b, err := os.ReadFile(r.path(key))
	if errors.Is(err, os.ErrNotExist) {
		return nil, Meta{}, notFound(key)
	}
	if err != nil {
		return nil, Meta{}, fmt.Errorf("cache: remote %s: %w", r.dir, err)
	}
	bad := func(reason string) error {
		return &CorruptError{Meta: Meta{Key: key}, Reason: "remote file " + r.path(key) + ": " + reason}
	}
	if len(b) < 8 {
		return nil, Meta{}, bad("truncated header")
	}
	n := binary.LittleEndian.Uint64(b)
	if n > uint64(len(b)-8) {
		return nil, Meta{}, bad("metadata length past end of file")
	}
	m, err := decodeMeta(key, b[8:8+n])
	if err != nil {
		return nil, Meta{}, bad(err.Error())
	}
	value := b[8+n:]
	if int64(len(value)) != m.Size {
		return nil, Meta{}, bad(fmt.Sprintf("value has %d bytes, want %d", len(value), m.Size))
	}
	if reason := checkSum(m, digest.Of(value)); reason != "" {
		return nil, Meta{}, bad(reason)
	}
	return value, m, nil
}

// Put implements Remote.
func (r *FileRemote) Put(m Meta, value []byte) error {
	p := r.path(m.Key)
	if _, err := os.Stat(p); err == nil {
		return nil // immutable: the entry is already there
	}
	m.Size, m.Chunks, m.Sum = int64(len(value)), numChunks(int64(len(value))), digest.Of(value)
	meta, err := encodeMeta(m)
	if err != nil {
		return fmt.Errorf("cache: remote %s: encode metadata of %s: %w", r.dir, m.describe(), err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("cache: remote %s: %w", r.dir, err)
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return fmt.Errorf("cache: remote %s: %w", r.dir, err)
	}
	defer os.Remove(f.Name()) // no-op after the rename
	var hdr [8]byte
	binary.LittleEndian.PutUint64(hdr[:], uint64(len(meta)))
	_, err = f.Write(append(hdr[:], meta...))
	if err == nil {
		_, err = f.Write(value)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		return fmt.Errorf("cache: remote %s: put %s: %w", r.dir, m.describe(), err)
	}
	return nil
}

// SetRemote makes s read through r on a local miss and write new entries
// back to it.
func (s *Store) SetRemote(r Remote) { s.remote.Store(&r) }

// readThrough copies key's verified remote entry into the local store. A
// corrupt remote entry is reported and read as a miss, so it is recomputed.
func (s *Store) readThrough(r Remote, key digest.Digest) ([]byte, Meta, error) {
	v, m, err := r.Get(key)
	if errors.Is(err, ErrCorrupt) {
		s.log.Warn("ignoring corrupt remote cache entry", "key", key.String(), "error", err)
		return nil, Meta{}, notFound(key)
	}
	if err != nil {
		return nil, Meta{}, err
	}
	if err := s.put(key, m.Op, m.Name, v, m.Recipe, m.Runs); err != nil {
		return nil, Meta{}, err
	}
	return s.getLocal(key)
}
