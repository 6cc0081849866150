package cache

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"lrmc/digest"
	"lrmc/internal/atomicfile"
	"lrmc/internal/fsync"
)

// Large values as files.
//
// A value of blobThreshold bytes or more is stored as one file,
// DIR/blobs/<key hex>, and Badger holds only its sealed Meta (Blob set,
// with the value's size and BLAKE3). Through Badger such a value was copied
// twice on the way in (into the write-ahead batch, then into the
// memory-mapped value log) and kept resident by the value log's mapping,
// about as many bytes of RSS as were written in a session; a file written
// with write(2) and read with read(2) goes through the page cache, which
// the kernel reclaims, once each way.
//
// Crash safety is the value log's: a value is written to blobs/tmp/, then
// renamed into place, and only then is its Meta committed, so a kill leaves
// at worst a temporary file (removed by the next Open) or a file no Meta
// names (an orphan, removed by GC and Verify). Files are not fsynced one by
// one (an fsync per value would hold a Put to the disk's speed, below
// 1 GB/s on these machines); Close fsyncs the files it wrote, as it syncs
// Badger. After a power loss, a file the kernel had not written yet reads
// short or with the wrong hash, and every read checks both, so such an
// entry is a miss that is recomputed, never a wrong value.
//
// The file of a replaced, deleted or evicted entry is removed with its
// Meta (after it, so no Meta ever names a missing file except after
// damage). Readers open the file, check its size against the Meta before
// allocating, and hash what they read.

// blobThreshold is the value size from which values are files. Measured
// per CPU-second (BenchmarkLayout, both layouts in one run): a file is
// written 2.5–5× cheaper than a value-log chunk at every size from 256 KiB,
// but read cheaper only from about 1 MiB (at 256 KiB the open and the
// fresh buffer cost more than Badger's copy out of its mapping); at 1 MiB
// reads cost about the same, at 4 MiB the file wins both ways.
const blobThreshold = 1 << 20

const (
	blobDir    = "blobs"
	blobTmpDir = "tmp"
	// blobReadPiece is how much a read hands to the hashing goroutine at
	// a time, so that hashing overlaps reading.
	blobReadPiece = 4 << 20
)

// useBlob reports whether a value of size bytes is stored as a file.
func (s *Store) useBlob(size int64) bool {
	return s.blobMin > 0 && size >= s.blobMin
}

func blobsDir(dir string) string { return filepath.Join(dir, blobDir) }

func (s *Store) blobPath(key digest.Digest) string {
	return filepath.Join(blobsDir(s.dir), key.String())
}

// syncList records the blob files written since the last sync, for Close.
type syncList struct {
	mu    sync.Mutex
	paths []string
}

func (l *syncList) add(p string) {
	l.mu.Lock()
	l.paths = append(l.paths, p)
	l.mu.Unlock()
}

// sync fsyncs the recorded files that still exist, then the blob directory
// (for the renames).
func (l *syncList) sync(dir string) error {
	l.mu.Lock()
	paths := l.paths
	l.paths = nil
	l.mu.Unlock()
	if len(paths) == 0 {
		return nil
	}
	var errs []error
	for _, p := range paths {
		if err := fsync.Path(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, fsync.Path(blobsDir(dir)))
	return errors.Join(errs...)
}

// writeBlob writes m's value to its file and returns its BLAKE3 (sum, when
// not zero, is the already known one). The caller holds the key's lock and
// sweep for reading, and commits the Meta after.
func (s *Store) writeBlob(m Meta, value []byte, sum digest.Digest) (digest.Digest, error) {
	tmpDir := filepath.Join(blobsDir(s.dir), blobTmpDir)
	if err := os.MkdirAll(tmpDir, 0o755); err != nil {
		return sum, fmt.Errorf("cache: put %s: %w", m.describe(), err)
	}
	var sumc chan digest.Digest
	if sum.IsZero() {
		// Hash on another core while the kernel copies: the two take
		// similar time, so overlapping them nearly halves a Put.
		sumc = make(chan digest.Digest, 1)
		go func() { sumc <- digest.Of(value) }()
	}
	// In blobs/tmp (which Open empties) rather than beside the value
	// files, and not synced here: Close syncs the files it wrote. 0600,
	// the mode value files have always had.
	err := atomicfile.WriteBytes(s.blobPath(m.Key), 0o600, value,
		atomicfile.TempDir(tmpDir), atomicfile.Pattern("put-*"), atomicfile.NoSync())
	if sumc != nil {
		sum = <-sumc // wait even on error: value is the caller's again after Put
	}
	if err != nil {
		return sum, s.writeError(fmt.Errorf("cache: put %s: write value file: %w", m.describe(), err), m.Size)
	}
	s.unsynced.add(s.blobPath(m.Key))
	return sum, nil
}

// openBlob opens m's file and checks its size against m before anything
// is allocated; reason is non-empty when the file is missing or wrong.
func (s *Store) openBlob(m Meta) (f *os.File, reason string, err error) {
	if m.Size < 0 || m.Chunks != 0 {
		return nil, fmt.Sprintf("metadata says %d bytes in a file and %d chunks", m.Size, m.Chunks), nil
	}
	f, err = os.Open(s.blobPath(m.Key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "value file is missing", nil
	}
	if err != nil {
		return nil, fmt.Sprintf("value file is unreadable: %v", err), nil
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Sprintf("value file is unreadable: %v", err), nil
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, "value file is not a regular file", nil
	}
	if fi.Size() != m.Size {
		f.Close()
		return nil, fmt.Sprintf("value file has %d bytes, want %d", fi.Size(), m.Size), nil
	}
	return f, "", nil
}

// readBlob reads and checks m's value, returning a non-empty reason if the
// file is damaged. A goroutine hashes each piece while the next is read.
func (s *Store) readBlob(m Meta) (value []byte, reason string) {
	f, reason, _ := s.openBlob(m)
	if reason != "" {
		return nil, reason
	}
	defer f.Close()
	value = make([]byte, m.Size)
	ends := make(chan int64, m.Size/blobReadPiece+1)
	sumc := make(chan digest.Digest, 1)
	go hashRegions(value, ends, sumc)
	var rerr error
	for off := int64(0); off < m.Size && rerr == nil; off += blobReadPiece {
		end := min(off+blobReadPiece, m.Size)
		_, rerr = io.ReadFull(io.NewSectionReader(f, off, end-off), value[off:end])
		if rerr == nil {
			ends <- end
		}
	}
	close(ends)
	sum := <-sumc
	if rerr != nil {
		return nil, fmt.Sprintf("value file is unreadable: %v", rerr)
	}
	if reason := checkSum(m, sum); reason != "" {
		return nil, reason
	}
	return value, ""
}

// checkBlob hashes m's file without keeping it (Verify).
func (s *Store) checkBlob(m Meta) (reason string) {
	f, reason, _ := s.openBlob(m)
	if reason != "" {
		return reason
	}
	defer f.Close()
	h := digest.New()
	if n, err := io.Copy(h, f); err != nil || n != m.Size {
		return fmt.Sprintf("value file is unreadable after %d bytes: %v", n, err)
	}
	return checkSum(m, h.Digest())
}

// removeBlob removes key's file, if any.
func (s *Store) removeBlob(key digest.Digest) error {
	if err := os.Remove(s.blobPath(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cache: remove value file of %s: %w", key.Short(), err)
	}
	return nil
}

// cleanBlobTmp removes the temporary files of writes a killed process left.
// The caller holds the process lock, so no write is in flight.
func cleanBlobTmp(dir string) error {
	tmp := filepath.Join(blobsDir(dir), blobTmpDir)
	ents, err := os.ReadDir(tmp)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(tmp, e.Name())); err != nil {
			return fmt.Errorf("cache: remove a killed write's leftover: %w", err)
		}
	}
	return nil
}

// dropOrphanBlobs removes every file in the blob directory that no entry
// in metas owns as its value file (and any temporary file). The caller
// holds sweep for writing, so no Put is midway.
func (s *Store) dropOrphanBlobs(metas []Meta) (n int, err error) {
	owned := make(map[string]bool)
	for _, m := range metas {
		if m.Blob {
			owned[m.Key.String()] = true
		}
	}
	ents, err := os.ReadDir(blobsDir(s.dir))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("cache: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if name == blobTmpDir {
			if err := cleanBlobTmp(s.dir); err != nil {
				return n, err
			}
			continue
		}
		if owned[name] {
			continue
		}
		if _, herr := hex.DecodeString(name); herr != nil || len(name) != 2*digest.Size {
			continue // not a file this package writes: leave it alone
		}
		if err := os.Remove(filepath.Join(blobsDir(s.dir), name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, fmt.Errorf("cache: remove orphan value file: %w", err)
		}
		n++
	}
	return n, nil
}
