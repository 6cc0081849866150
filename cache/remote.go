package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"lrmc/digest"
	"lrmc/internal/atomicfile"
)

// Remote is a content-addressed store shared by many machines, keyed by the
// same node keys as the local cache and verified on read like local entries.
//
// Entries are immutable: a key names one result forever, so writers need no
// locks, and a writer finding an entry already there leaves it alone (two
// machines computing one node write equivalent entries; the first one
// stays). The one exception is an entry found damaged: the store that found
// it replaces it with the value it recomputes (Replace).
//
// Every entry, whatever the backend, is one blob: an 8-byte little-endian
// length n, the sealed Meta record (n bytes, as the local store keeps it),
// then the value (Meta.Size bytes). A blob whose length disagrees with its
// Meta, whose Meta does not unseal, or whose value does not hash to Meta.Sum
// is corrupt: it is never used, only reported and recomputed.
type Remote interface {
	// Stat returns key's Meta from the entry's header, checking the
	// blob's size against it but not reading the value: a cheap existence
	// check. It returns an ErrNotFound error, or a *RemoteCorruptError.
	Stat(key digest.Digest) (Meta, error)
	// Get returns key's value verified against its recorded BLAKE3, an
	// ErrNotFound error, or a *RemoteCorruptError (the entry is not used).
	Get(key digest.Digest) ([]byte, Meta, error)
	// Put stores value under m.Key unless an entry is already there.
	Put(m Meta, value []byte) error
	// Replace stores value under m.Key whether or not an entry is there;
	// it is for entries found corrupt.
	Replace(m Meta, value []byte) error
}

// OpenRemote opens the remote store named by url: file:///DIR, a directory
// on a file system every machine mounts, or s3://BUCKET/PREFIX (see
// openS3Remote for the endpoint and credentials).
func OpenRemote(url string) (Remote, error) {
	if strings.HasPrefix(url, "s3://") {
		return openS3Remote(url)
	}
	dir, ok := strings.CutPrefix(url, "file://")
	if !ok {
		return nil, fmt.Errorf("cache: remote %q: want file:///DIR or s3://BUCKET/PREFIX", url)
	}
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("cache: remote %s: the directory must be an absolute path (file:///DIR)", url)
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

// RemoteCorruptError reports a remote entry that is damaged, implausible or
// not what it claims to be; it matches ErrCorrupt. The entry is left where
// it is (other machines may be reading it); a Store that meets one reads it
// as a miss and replaces it with the value it recomputes.
type RemoteCorruptError struct {
	URL    string // where the entry is: file:///DIR/ab/KEY or s3://BUCKET/PREFIX/KEY
	Key    digest.Digest
	Reason string
}

func (e *RemoteCorruptError) Error() string {
	return fmt.Sprintf("cache: remote entry %s at %s is corrupt: %s", e.Key.Short(), e.URL, e.Reason)
}

func (e *RemoteCorruptError) Is(target error) bool { return target == ErrCorrupt }

// maxRemoteMeta bounds a remote entry's Meta record. Real ones are a few
// hundred bytes (more with a long list of runs); the bound keeps a damaged
// length field from making a reader allocate gigabytes.
const maxRemoteMeta = 1 << 20

// remoteValueLimit bounds the value a remote entry may claim: a value that
// does not fit in this machine's memory cannot be read into it, so a larger
// claim is treated as damage rather than attempted. Tests lower it.
var remoteValueLimit = sync.OnceValue(func() int64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil || si.Totalram == 0 {
		return 64 << 30
	}
	return int64(si.Totalram) * int64(si.Unit)
})

// encodeRemoteHeader is the blob header of m: its length, then the sealed
// Meta record.
func encodeRemoteHeader(m Meta) ([]byte, error) {
	meta, err := encodeMeta(m)
	if err != nil {
		return nil, err
	}
	hdr := binary.LittleEndian.AppendUint64(make([]byte, 0, 8+len(meta)), uint64(len(meta)))
	return append(hdr, meta...), nil
}

// readRemoteHeader reads the header of key's blob, total bytes long, at url
// from r, and checks it before anything is allocated from it: the Meta must
// unseal and describe key, and the blob must be exactly header plus
// Meta.Size bytes, within remoteValueLimit. Damage is a *RemoteCorruptError;
// other errors are r's.
func readRemoteHeader(r io.Reader, total int64, key digest.Digest, url string) (Meta, error) {
	bad := func(format string, a ...any) error {
		return &RemoteCorruptError{URL: url, Key: key, Reason: fmt.Sprintf(format, a...)}
	}
	if total < 8 {
		return Meta{}, bad("truncated header: the entry has %d bytes", total)
	}
	var n8 [8]byte
	if _, err := io.ReadFull(r, n8[:]); err != nil {
		return Meta{}, fmt.Errorf("cache: remote %s: read header: %w", url, err)
	}
	n := binary.LittleEndian.Uint64(n8[:])
	if n > maxRemoteMeta {
		return Meta{}, bad("metadata record of %d bytes is over the %d-byte limit", n, maxRemoteMeta)
	}
	if int64(n) > total-8 {
		return Meta{}, bad("metadata length %d is past the end of the %d-byte entry", n, total)
	}
	rec := make([]byte, n)
	if _, err := io.ReadFull(r, rec); err != nil {
		return Meta{}, fmt.Errorf("cache: remote %s: read metadata: %w", url, err)
	}
	m, err := decodeMeta(key, rec)
	if err != nil {
		return Meta{}, bad("%v", err)
	}
	if limit := remoteValueLimit(); m.Size < 0 || m.Size > limit {
		return Meta{}, bad("metadata claims a %d-byte value, over this machine's %d-byte limit", m.Size, limit)
	}
	if want := 8 + int64(n) + m.Size; total != want {
		return Meta{}, bad("the entry has %d bytes, its metadata says %d (%d-byte value)", total, want, m.Size)
	}
	return m, nil
}

// readRemoteValue reads the m.Size-byte value that follows a checked header
// from r and verifies it against m.Sum.
func readRemoteValue(r io.Reader, m Meta, url string) ([]byte, error) {
	value := make([]byte, m.Size)
	if _, err := io.ReadFull(r, value); err != nil {
		return nil, fmt.Errorf("cache: remote %s: read value of %s: %w", url, m.describe(), err)
	}
	if reason := checkSum(m, digest.Of(value)); reason != "" {
		return nil, &RemoteCorruptError{URL: url, Key: m.Key, Reason: reason}
	}
	return value, nil
}

// sealForRemote fills in what Put computes for a new entry (size, chunk
// count, sum, and its times unless set) and returns m with the blob header.
func sealForRemote(m Meta, value []byte) (Meta, []byte, error) {
	m.Size, m.Chunks, m.Sum = int64(len(value)), numChunks(int64(len(value))), digest.Of(value)
	if m.Created.IsZero() {
		m.Created = time.Now().UTC()
	}
	if m.LastUsed.IsZero() {
		m.LastUsed = m.Created
	}
	hdr, err := encodeRemoteHeader(m)
	if err != nil {
		return m, nil, fmt.Errorf("encode metadata of %s: %w", m.describe(), err)
	}
	return m, hdr, nil
}

// FileRemote stores each entry as one file DIR/ab/KEY holding the blob
// described at Remote. Files are written to a temporary name beside their
// final one, synced, and renamed into place, so readers never see half an
// entry and concurrent writers of one key each leave a whole entry (the
// last rename wins; every one of them is sound). No locks are taken, which
// suits NFS and other shared file systems.
type FileRemote struct{ dir string }

func (r *FileRemote) path(key digest.Digest) string {
	s := key.String()
	return filepath.Join(r.dir, s[:2], s)
}

func (r *FileRemote) url(key digest.Digest) string { return "file://" + r.path(key) }

// open opens key's file and checks its header, leaving the file positioned
// at the value.
func (r *FileRemote) open(key digest.Digest) (*os.File, Meta, error) {
	f, err := os.Open(r.path(key))
	if errors.Is(err, os.ErrNotExist) {
		return nil, Meta{}, notFound(key)
	}
	if err != nil {
		return nil, Meta{}, fmt.Errorf("cache: remote %s: %w", r.url(key), err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = &RemoteCorruptError{URL: r.url(key), Key: key, Reason: "not a regular file"}
	}
	var m Meta
	if err == nil {
		m, err = readRemoteHeader(f, fi.Size(), key, r.url(key))
	}
	if err != nil {
		f.Close()
		return nil, Meta{}, err
	}
	return f, m, nil
}

// Stat implements Remote: it reads the file's header, not its value.
func (r *FileRemote) Stat(key digest.Digest) (Meta, error) {
	f, m, err := r.open(key)
	if err != nil {
		return Meta{}, err
	}
	f.Close()
	return m, nil
}

// Get implements Remote.
func (r *FileRemote) Get(key digest.Digest) ([]byte, Meta, error) {
	f, m, err := r.open(key)
	if err != nil {
		return nil, Meta{}, err
	}
	defer f.Close()
	v, err := readRemoteValue(f, m, r.url(key))
	if err != nil {
		return nil, Meta{}, err
	}
	return v, m, nil
}

// Put implements Remote.
func (r *FileRemote) Put(m Meta, value []byte) error {
	if _, err := os.Lstat(r.path(m.Key)); err == nil {
		return nil // immutable: the entry is already there
	}
	return r.Replace(m, value)
}

// Replace implements Remote.
func (r *FileRemote) Replace(m Meta, value []byte) error {
	p := r.path(m.Key)
	m, hdr, err := sealForRemote(m, value)
	if err == nil {
		err = writeFileAtomic(p, hdr, value)
	}
	if err != nil {
		return fmt.Errorf("cache: remote %s: put %s: %w", r.url(m.Key), m.describe(), err)
	}
	return nil
}

// writeFileAtomic writes the concatenation of parts to path through a
// synced temporary file renamed into place. The temporary file keeps the
// name this remote has always given it, ".tmp-*": a dot name, never a
// key's.
func writeFileAtomic(path string, parts ...[]byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	// 0644: CreateTemp's 0600 would hide it from other users' jobs.
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		for _, p := range parts {
			if _, err := w.Write(p); err != nil {
				return err
			}
		}
		return nil
	}, atomicfile.Pattern(".tmp-*"))
}

// SetRemote makes s read through r on a local miss (Get copies the verified
// remote entry into s; Stat reports a remote entry as present without
// reading it) and write new entries back to it (Put).
func (s *Store) SetRemote(r Remote) { s.remote.Store(&r) }

// Stat returns key's Meta without reading its value; ok is false when there
// is no entry. On a local miss it asks the remote, if one is set, with the
// remote's cheap header check, so that remote-only entries count as cached.
// Such an entry may still fail verification when Get reads it: Get then
// reports a miss and the caller recomputes, exactly as for a local entry
// damaged between Stat and Get.
func (s *Store) Stat(key digest.Digest) (Meta, bool, error) {
	m, ok, err := s.statLocal(key)
	r := s.remote.Load()
	if ok || err != nil || r == nil {
		return m, ok, err
	}
	m, err = (*r).Stat(key)
	switch {
	case err == nil:
		return m, true, nil
	case errors.Is(err, ErrNotFound):
		return Meta{}, false, nil
	case errors.Is(err, ErrCorrupt):
		s.remoteCorrupt(key, err)
		return Meta{}, false, nil
	}
	return Meta{}, false, err
}

// remoteCorrupt logs a corrupt remote entry and remembers to replace it
// when the value is next Put.
func (s *Store) remoteCorrupt(key digest.Digest, err error) {
	s.log.Warn("ignoring corrupt remote cache entry", "key", key.String(), "error", err)
	s.badRemote.Store(key, true)
}

// readThrough copies key's verified remote entry into the local store. A
// corrupt remote entry reads as a miss, so it is recomputed (and the
// recomputed value replaces it, see writeBack).
func (s *Store) readThrough(r Remote, key digest.Digest) ([]byte, Meta, error) {
	v, m, err := r.Get(key)
	if errors.Is(err, ErrCorrupt) {
		s.remoteCorrupt(key, err)
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

// writeBack stores a new entry in the remote, if one is set: over the
// remote entry when this store found that one corrupt, else beside
// whatever is there (an existing entry is left alone).
func (s *Store) writeBack(m Meta, value []byte) error {
	r := s.remote.Load()
	if r == nil {
		return nil
	}
	if lm, ok, err := s.statLocal(m.Key); err == nil && ok {
		// Share the local entry's times, so that Stat reads the same
		// Meta from either.
		m.Created, m.LastUsed = lm.Created, lm.LastUsed
	}
	if _, bad := s.badRemote.LoadAndDelete(m.Key); bad {
		return (*r).Replace(m, value)
	}
	return (*r).Put(m, value)
}
