package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"

	"lrmc/digest"
)

// fileStamp is what FileDigest trusts to say a file is unchanged (see
// digest.Stamp); its JSON form is the memo's, so memos stay valid.
type fileStamp = digest.Stamp

type fileMemo struct {
	Stamp  fileStamp     `json:"stamp"`
	Digest digest.Digest `json:"digest"`
}

// FileDigest returns the BLAKE3 digest of the file at path, re-reading the
// file only when its size, mtime, ctime, inode or device differ from the last
// time it was hashed, so planning does not re-hash multi-gigabyte model files.
func (s *Store) FileDigest(path string) (_ digest.Digest, err error) {
	defer s.recoverPanic(&err)
	abs, err := filepath.Abs(path)
	if err != nil {
		return digest.Digest{}, fmt.Errorf("cache: file digest: %w", err)
	}
	key := append([]byte(filePrefix), abs...)
	// A named pipe or a device is refused here, before anything opens it:
	// reading it would block or never end.
	stamp, err := digest.StatFile(abs)
	if err != nil {
		return digest.Digest{}, fmt.Errorf("cache: file digest: %w", err)
	}

	var memo fileMemo
	err = s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return json.Unmarshal(v, &memo) })
	})
	switch {
	case err == nil && memo.Stamp == stamp:
		return memo.Digest, nil
	case err != nil && !errors.Is(err, badger.ErrKeyNotFound):
		// An unreadable memo only costs a re-hash.
		s.log.Warn("ignoring unreadable file digest memo", "path", abs, "error", err)
	}

	// The memo records the stamp of the file that was read, which
	// FileStamped checks is the same before and after reading it (the
	// path may have been given another file since the stat above).
	d, stamp, err := digest.FileStamped(abs)
	if err != nil {
		return digest.Digest{}, fmt.Errorf("cache: file digest: %w", err)
	}

	if s.view != "" {
		return d, nil // a read-only view records nothing
	}
	b, err := json.Marshal(fileMemo{Stamp: stamp, Digest: d})
	if err != nil {
		return digest.Digest{}, fmt.Errorf("cache: file digest of %s: %w", abs, err)
	}
	if s.noWrite {
		s.postpone(func(w *Store) { w.recordMemo(key, b) })
		return d, nil
	}
	s.sweep.RLock()
	defer s.sweep.RUnlock()
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(key, b) }); err != nil {
		return digest.Digest{}, fmt.Errorf("cache: file digest of %s: record: %w", abs, err)
	}
	return d, nil
}

// recordMemo records a file-digest memo a NoWrite store postponed; best
// effort: a memo not recorded costs only a re-hash.
func (s *Store) recordMemo(key, b []byte) {
	s.sweep.RLock()
	defer s.sweep.RUnlock()
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(key, b) }); err != nil {
		s.log.Warn("could not record a file digest memo", "path", string(key[len(filePrefix):]), "error", err)
	}
}
