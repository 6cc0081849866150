package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"

	"lrmc/digest"
)

// fileStamp is what FileDigest trusts to say a file is unchanged. Size, mtime
// and inode are what the planner's users change (rewriting, copying over,
// replacing by rename); ctime also moves on writes that restore the mtime,
// and the device tells apart equal inode numbers on different file systems.
type fileStamp struct {
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtime_ns"`
	CtimeNs int64  `json:"ctime_ns"`
	Inode   uint64 `json:"inode"`
	Dev     uint64 `json:"dev"`
}

type fileMemo struct {
	Stamp  fileStamp     `json:"stamp"`
	Digest digest.Digest `json:"digest"`
}

func stampOf(path string) (fileStamp, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileStamp{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return fileStamp{
		Size:    st.Size,
		MtimeNs: st.Mtim.Nano(),
		CtimeNs: st.Ctim.Nano(),
		Inode:   st.Ino,
		Dev:     uint64(st.Dev),
	}, nil
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
	stamp, err := stampOf(abs)
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

	d, err := digest.File(abs)
	if err != nil {
		return digest.Digest{}, fmt.Errorf("cache: file digest: %w", err)
	}
	after, err := stampOf(abs)
	if err != nil {
		return digest.Digest{}, fmt.Errorf("cache: file digest: %w", err)
	}
	if after != stamp {
		// The bytes hashed may mix two versions of the file.
		return digest.Digest{}, fmt.Errorf("cache: file digest: %s changed while it was being hashed", abs)
	}

	if s.ReadOnly() {
		return d, nil // a read-only view records nothing
	}
	b, err := json.Marshal(fileMemo{Stamp: stamp, Digest: d})
	if err != nil {
		return digest.Digest{}, fmt.Errorf("cache: file digest of %s: %w", abs, err)
	}
	s.sweep.RLock()
	defer s.sweep.RUnlock()
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(key, b) }); err != nil {
		return digest.Digest{}, fmt.Errorf("cache: file digest of %s: record: %w", abs, err)
	}
	return d, nil
}
