package cache

import (
	"fmt"
	"os"

	"github.com/dgraph-io/badger/v4"

	"lrmc/digest"
)

// Tamper flips one byte (the middle one) of the value stored under key in the
// cache in dir, so that the next Get reports ErrCorrupt. It exists for the
// fault-injection tests of the packages above the cache (the executor must
// recompute a damaged result) and is never used otherwise. The store must be
// closed: Tamper opens it, and so fails with ErrLocked while it is open.
// The flipped chunk is rewritten through Badger rather than edited in its
// files, so the damage is exactly one byte wherever Badger keeps the value;
// a value stored as a file is edited in place.
func Tamper(dir string, key digest.Digest) (err error) {
	s, err := Open(dir, Options{})
	if err != nil {
		return fmt.Errorf("cache: tamper: %w", err)
	}
	defer func() {
		if cerr := s.Close(); err == nil {
			err = cerr
		}
	}()
	m, ok, err := s.Stat(key)
	if err != nil {
		return fmt.Errorf("cache: tamper: %w", err)
	}
	if !ok {
		return fmt.Errorf("cache: tamper: %w", notFound(key))
	}
	if m.Size == 0 {
		return fmt.Errorf("cache: tamper: %s is empty: no byte to flip", m.describe())
	}
	off := m.Size / 2
	if m.Blob {
		return flipFileByte(s.blobPath(key), off)
	}
	ck := chunkKey(key, int(off/ChunkSize))
	return s.db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(ck)
		if err != nil {
			return fmt.Errorf("cache: tamper: %s: chunk %d: %w", m.describe(), off/ChunkSize, err)
		}
		chunk, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("cache: tamper: %s: chunk %d: %w", m.describe(), off/ChunkSize, err)
		}
		chunk[off%ChunkSize] ^= 0xff
		return txn.Set(ck, chunk)
	})
}

// flipFileByte inverts the byte at off in the file p.
func flipFileByte(p string, off int64) error {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("cache: tamper: %w", err)
	}
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	if err == nil {
		b[0] ^= 0xff
		_, err = f.WriteAt(b, off)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cache: tamper: %s: %w", p, err)
	}
	return nil
}
