package cache

import (
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"

	"lrmc/digest"
)

// discardRatio is the fraction of a value-log file that must be garbage
// before GC rewrites the file's live values elsewhere and deletes it: disk
// use stays under about 1/(1-0.3) = 1.4× the live data in closed files, and
// each reclaimed byte costs at most 2.3 bytes of rewriting.
const discardRatio = 0.3

// GC evicts least-recently-used entries until the values left total at most
// maxBytes (those no recipe's latest apply needs first: see Policy), drops
// chunks and value files that no entry owns (left by crashed writes), and
// returns the disk space to the file system as far as Badger allows (a
// value file's space returns at once).
//
// How Badger frees space: values live in append-only value-log files, which
// are only ever deleted whole. GC drops the chunks of evicted entries, and of
// entries removed earlier by Delete or by Get's corruption handling, with
// DropPrefix, which flushes the memtable, compacts the dropped keys out of
// the LSM tree and records, per value-log file, how many bytes became
// garbage. (Deleting keys one by one records nothing until background
// compactions happen to merge the deletions with the values, which in a
// cache whose LSM tree holds only pointers can take indefinitely.) Then
// Badger's value-log GC rewrites the live rest of each file that is at least
// discardRatio garbage and deletes it. So space is reclaimed in units of
// value-log files (256 MiB); files with less garbage, and the file currently
// being appended to, keep their garbage until later writes and GCs. Chunks
// superseded by a Put that replaced an entry's value with a different one
// are overwritten rather than dropped and wait for those compactions.
//
// Writers block while GC decides what to drop; readers do not.
func (s *Store) GC(maxBytes int64) (removed []Meta, err error) {
	entries, err := s.Prune(Policy{MaxBytes: max(maxBytes, 0)})
	for _, e := range entries {
		removed = append(removed, e.Meta)
	}
	return removed, err
}

// gc is Prune's eviction (see GC).
func (s *Store) gc(p Policy) (removed []Entry, err error) {
	// Dropping flushes the memtable into a table and value-log GC copies
	// live values: both write through memory maps.
	if err := ensureSpace(s.dir, spaceHeadroom); err != nil {
		var ne *NoSpaceError
		if errors.As(err, &ne) {
			ne.Hint = "too little even for gc: free space on that disk, or run lrmc cache reset"
		}
		return nil, err
	}
	defer func() {
		if err != nil && !errors.Is(err, ErrNoSpace) {
			err = fmt.Errorf("cache: gc: %w", err)
		}
	}()
	removed, total, orphans, stale, err := s.evict(p)
	if err != nil {
		return nil, err
	}
	files, err := s.reclaim()
	if err != nil {
		return removed, err
	}
	s.log.Info("cache gc", "evicted", len(removed), "kept_bytes", total, "orphan_prefixes", len(orphans), "stale_apply_records", stale, "value_log_files_rewritten", files)
	return removed, nil
}

// evict drops the entries p selects, the orphan chunks and the Apply
// records that protect nothing, under sweep (released by defer, so that a
// panic recovered above does not leave every writer blocked).
func (s *Store) evict(p Policy) (removed []Entry, total int64, orphans [][]byte, stale int, err error) {
	s.sweep.Lock()
	defer s.sweep.Unlock()
	metas, err := s.List()
	if err != nil {
		return nil, 0, nil, 0, err
	}
	orphans, err = s.orphanChunks(metas)
	if err != nil {
		return nil, 0, nil, 0, err
	}
	applies, staleKeys, err := s.staleApplies()
	if err != nil {
		return nil, 0, nil, 0, err
	}
	for _, m := range metas {
		total += m.Size
	}
	removed = selectEvictions(usage(metas, applies), p, s.now().UTC())
	drop := orphans
	gone := make([]Meta, len(removed))
	for i, e := range removed {
		gone[i] = e.Meta
		drop = append(drop, chunksOf(e.Key))
		total -= e.Size
	}
	if err := s.dropKeys(staleKeys); err != nil {
		return nil, 0, nil, 0, err
	}
	if err := s.dropEntries(gone, drop); err != nil {
		return nil, 0, nil, 0, err
	}
	evicted := make(map[digest.Digest]bool, len(gone))
	for _, m := range gone {
		evicted[m.Key] = true
	}
	kept := slices.DeleteFunc(slices.Clone(metas), func(m Meta) bool { return evicted[m.Key] })
	if _, err := s.dropOrphanBlobs(kept); err != nil { // the evicted entries' files too
		return nil, 0, nil, 0, err
	}
	return removed, total, orphans, len(staleKeys), nil
}

// dropKeys deletes keys in one batch.
func (s *Store) dropKeys(keys [][]byte) error {
	if len(keys) == 0 {
		return nil
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			return fmt.Errorf("delete %q: %w", k, err)
		}
	}
	return wb.Flush()
}

// dropEntries deletes the Metas of entries (ending them) and then drops all
// keys under the prefixes. The caller holds sweep for writing.
func (s *Store) dropEntries(entries []Meta, prefixes [][]byte) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, m := range entries {
		if err := wb.Delete(metaKey(m.Key)); err != nil {
			return fmt.Errorf("delete %s: %w", m.describe(), err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("delete metadata: %w", err)
	}
	if len(prefixes) == 0 {
		return nil
	}
	if err := s.db.DropPrefix(prefixes...); err != nil {
		return fmt.Errorf("drop %d chunk ranges: %w", len(prefixes), err)
	}
	return nil
}

// orphanChunks returns key prefixes covering every chunk that no entry in
// metas owns: all chunks of a key without Meta, and chunks past the count a
// Meta records. The caller holds sweep for writing, so no Put is midway.
func (s *Store) orphanChunks(metas []Meta) ([][]byte, error) {
	byKey := make(map[digest.Digest]Meta, len(metas))
	for _, m := range metas {
		byKey[m.Key] = m
	}
	var (
		prefixes [][]byte
		last     digest.Digest
		haveLast bool
	)
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(chunkPrefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			raw := it.Item().KeyCopy(nil)
			k, i, ok := parseChunkKey(raw)
			switch m, owned := byKey[k]; {
			case !ok:
				prefixes = append(prefixes, raw) // not a key this package writes
			case !owned:
				if !haveLast || k != last { // one prefix covers all of k's chunks
					prefixes = append(prefixes, chunksOf(k))
				}
			case i >= m.Chunks:
				prefixes = append(prefixes, raw)
			}
			last, haveLast = k, ok
		}
		return nil
	})
	return prefixes, err
}

// reclaim runs Badger's value-log GC until it finds no file worth rewriting,
// returning how many files it rewrote and deleted.
func (s *Store) reclaim() (files int, err error) {
	for {
		err := s.db.RunValueLogGC(discardRatio)
		switch {
		case err == nil:
			files++
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			return files, nil
		default:
			return files, fmt.Errorf("value-log gc: %w", err)
		}
	}
}

// Verify re-hashes every entry, deletes those that fail (returned as bad) and
// drops orphan chunks and value files, then reclaims space as GC does.
//
// Damaged Meta records are dropped too, returned in bad as a Meta holding
// only the Key.
func (s *Store) Verify() (bad []Meta, err error) {
	defer s.recoverPanic(&err)
	if err := s.readOnly("verify"); err != nil {
		return nil, err
	}
	if err := ensureSpace(s.dir, spaceHeadroom); err != nil {
		return nil, err
	}
	metas, damagedMetas, err := s.list()
	if err != nil {
		return nil, fmt.Errorf("cache: verify: %w", err)
	}
	for _, k := range damagedMetas {
		m := Meta{Key: k}
		dropped, err := s.dropCorrupt(m, errDamagedMeta.Error())
		if err != nil {
			return bad, fmt.Errorf("cache: verify: %w", err)
		}
		if dropped {
			bad = append(bad, m)
		}
	}
	for _, m := range metas {
		var reason string
		if m.Blob {
			reason = s.checkBlob(m)
		}
		err := s.db.View(func(txn *badger.Txn) error {
			if m.Blob {
				return nil
			}
			var err error
			h := digest.New()
			reason, err = scanChunks(txn, m, func(_ int, chunk []byte) { h.Write(chunk) })
			if reason == "" && err == nil {
				reason = checkSum(m, h.Digest())
			}
			return err
		})
		if err != nil {
			return bad, fmt.Errorf("cache: verify %s: %w", m.describe(), err)
		}
		if reason == "" {
			continue
		}
		dropped, err := s.dropCorrupt(m, reason)
		if err != nil {
			return bad, fmt.Errorf("cache: verify: %w", err)
		}
		if dropped {
			bad = append(bad, m)
		}
	}

	metas, orphans, err := s.dropOrphans()
	if err == nil {
		_, err = s.reclaim()
	}
	if err != nil {
		return bad, fmt.Errorf("cache: verify: %w", err)
	}
	s.log.Info("cache verify", "entries", len(metas)+len(bad), "corrupt", len(bad), "orphan_prefixes", len(orphans))
	return bad, nil
}

// dropOrphans drops the chunks no entry owns, under sweep.
func (s *Store) dropOrphans() (metas []Meta, orphans [][]byte, err error) {
	s.sweep.Lock()
	defer s.sweep.Unlock()
	if metas, err = s.List(); err != nil {
		return nil, nil, err
	}
	if orphans, err = s.orphanChunks(metas); err != nil {
		return nil, nil, err
	}
	if err := s.dropEntries(nil, orphans); err != nil {
		return nil, nil, err
	}
	_, err = s.dropOrphanBlobs(metas)
	return metas, orphans, err
}
