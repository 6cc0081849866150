package cache

import (
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"lrmc/digest"
)

// Derived memos are small values computed from content named by its
// digest (a tokenizer's vocabulary size from its files' digest), so that
// planning need not load a large file again to learn one number. They are
// keyed by content, never by path or time, so a memo is right whenever
// its digest is; each is sealed by its BLAKE3 like a Meta, and a damaged
// one reads as absent. They are not entries: ls, du and gc ignore them.

func derivedKey(kind string, of digest.Digest) []byte {
	return append([]byte(derivedPrefix+kind+"/"), of[:]...)
}

// Derived returns the memo of kind for the content of, if there is one.
// A failing read is a miss (the caller recomputes).
func (s *Store) Derived(kind string, of digest.Digest) (v []byte, ok bool) {
	var err error
	defer s.recoverPanic(&err)
	err = s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(derivedKey(kind, of))
		if err != nil {
			return err
		}
		return item.Value(func(b []byte) error {
			v, ok = unseal(b)
			v = append([]byte(nil), v...)
			return nil
		})
	})
	return v, ok && err == nil
}

// SetDerived records v as the memo of kind for the content of. A
// read-only view records nothing; a NoWrite store postpones it.
func (s *Store) SetDerived(kind string, of digest.Digest, v []byte) (err error) {
	defer s.recoverPanic(&err)
	if s.view != "" {
		return nil
	}
	if s.noWrite {
		// Bookkeeping: postponed, as file-digest memos are.
		v = slices.Clone(v)
		s.postpone(func(w *Store) { w.SetDerived(kind, of, v) })
		return nil
	}
	b := seal(v)
	s.sweep.RLock()
	defer s.sweep.RUnlock()
	if err := s.checkSpace(int64(len(b))); err != nil {
		return err
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(derivedKey(kind, of), b) }); err != nil {
		return s.writeError(fmt.Errorf("cache: record %s of %s: %w", kind, of.Short(), err), int64(len(b)))
	}
	return nil
}
