package cache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"lrmc/digest"
)

// ChunkSize is the size of every stored piece of a value but the last. It is
// above the store's value threshold (valueThreshold), so chunks live in the value log,
// which reads and writes at disk speed; small LSM-resident pieces were
// several times slower (machine notes).
const ChunkSize = 4 << 20

// touchInterval is how stale LastUsed may get before a Get rewrites it: LRU
// order at minute resolution is plenty and saves a write per read.
const touchInterval = time.Minute

// ErrNotFound matches (errors.Is) lookups of keys with no entry.
var ErrNotFound = errors.New("not found")

// ErrCorrupt matches (errors.Is) a Get that found the stored value damaged.
// The entry has been deleted by then; the caller recomputes it.
var ErrCorrupt = errors.New("corrupt")

// Meta describes an entry. It is stored apart from the value, so Stat and
// List never touch value bytes.
type Meta struct {
	Key    digest.Digest // the node key
	Op     string        // the op that produced the value
	Name   string        // human label, e.g. "layer 3 activations"
	Size   int64         // value length in bytes
	Chunks int           // number of stored chunks: ceil(Size / ChunkSize), 0 for a file
	Sum    digest.Digest // BLAKE3 of the whole value
	// Blob says the value is a file beside the database (see blob.go)
	// rather than chunks in Badger.
	Blob bool `json:",omitempty"`

	Created  time.Time
	LastUsed time.Time

	// Recipe and Runs name the apply that wrote the entry (see
	// SetOrigin); empty for entries written otherwise (tests, tools, lrmc
	// before it recorded them).
	Recipe string   `json:",omitempty"`
	Runs   []string `json:",omitempty"`
}

func (m Meta) describe() string {
	return fmt.Sprintf("entry %s (op %q, %q)", m.Key.Short(), m.Op, m.Name)
}

// CorruptError reports a damaged entry; it matches ErrCorrupt.
type CorruptError struct {
	Meta   Meta
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("cache: %s is corrupt: %s; entry deleted", e.Meta.describe(), e.Reason)
}

func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

func numChunks(size int64) int {
	return int((size + ChunkSize - 1) / ChunkSize)
}

func notFound(key digest.Digest) error {
	return fmt.Errorf("cache: entry %s: %w", key.Short(), ErrNotFound)
}

// Put stores value under key, replacing a different value stored there.
// Putting the value already stored only refreshes LastUsed. value must not
// change during the call.
func (s *Store) Put(key digest.Digest, op, name string, value []byte) (err error) {
	recipe, runs := s.writer(key)
	if err := s.put(key, op, name, value, recipe, runs); err != nil {
		return err
	}
	// Write back: the new entry is also shared.
	return s.writeBack(Meta{Key: key, Op: op, Name: name, Recipe: recipe, Runs: runs}, value)
}

// put is Put recording recipe and runs as the writer of a new entry.
func (s *Store) put(key digest.Digest, op, name string, value []byte, recipe string, runs []string) (err error) {
	defer s.recoverPanic(&err)
	if err := s.readOnly("put"); err != nil {
		return err
	}
	mu := s.keyLock(key)
	mu.Lock()
	defer mu.Unlock()
	s.sweep.RLock()
	defer s.sweep.RUnlock()

	now := s.now().UTC()
	size := int64(len(value))
	if err := s.checkSpace(size); err != nil {
		return err
	}
	old, ok, err := s.statLocal(key)
	if err != nil {
		return err
	}
	var sum digest.Digest
	if ok && old.Size == size {
		if sum = digest.Of(value); sum == old.Sum {
			old.LastUsed = now
			if old.Recipe == "" {
				old.Recipe, old.Runs = recipe, runs
			}
			return s.writeMeta(old)
		}
	}
	if ok {
		// Remove the old entry first: a crash while the new chunks are
		// half written must not leave the old Meta describing them. Old
		// chunks past the new count become garbage for GC.
		if err := s.deleteLocked(key); err != nil {
			return err
		}
	}

	m := Meta{Key: key, Op: op, Name: name, Size: size, Chunks: numChunks(size), Created: now, LastUsed: now, Recipe: recipe, Runs: runs}
	if s.useBlob(size) {
		m.Chunks, m.Blob = 0, true
		if sum, err = s.writeBlob(m, value, sum); err != nil {
			return err
		}
		m.Sum = sum
		return s.writeMeta(m)
	}
	if sum.IsZero() {
		// Hash on another core while Badger writes: the two take similar
		// time, so overlapping them nearly halves a new entry's Put.
		sumc := make(chan digest.Digest, 1)
		go func() { sumc <- digest.Of(value) }()
		err = s.writeChunks(m, value)
		sum = <-sumc // wait even on error: value is the caller's again after Put
	} else {
		err = s.writeChunks(m, value)
	}
	if err != nil {
		return err
	}
	m.Sum = sum
	// The Meta goes last: until it is committed the entry does not exist.
	return s.writeMeta(m)
}

func (s *Store) writeChunks(m Meta, value []byte) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for i := range m.Chunks {
		lo := int64(i) * ChunkSize
		hi := min(lo+ChunkSize, m.Size)
		if err := wb.Set(chunkKey(m.Key, i), value[lo:hi]); err != nil {
			return fmt.Errorf("cache: put %s: chunk %d: %w", m.describe(), i, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return s.writeError(fmt.Errorf("cache: put %s: write chunks: %w", m.describe(), err), m.Size)
	}
	return nil
}

func (s *Store) writeMeta(m Meta) error {
	b, err := encodeMeta(m)
	if err != nil {
		return fmt.Errorf("cache: encode metadata of %s: %w", m.describe(), err)
	}
	err = s.db.Update(func(txn *badger.Txn) error { return txn.Set(metaKey(m.Key), b) })
	if err != nil {
		return s.writeError(fmt.Errorf("cache: write metadata of %s: %w", m.describe(), err), int64(len(b)))
	}
	return nil
}

// errDamagedMeta matches (errors.Is) a Meta record that fails its own hash
// or does not decode: the entry is treated as corrupt, never trusted.
var errDamagedMeta = errors.New("metadata record is damaged")

// encodeMeta seals m's JSON behind its BLAKE3 (format lrmc-cache/2): the
// record decides which chunks make a value and which sum they must have, so
// a damaged record must read as damaged, not as a different entry.
func encodeMeta(m Meta) ([]byte, error) {
	j, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return seal(j), nil
}

// seal prefixes b with its BLAKE3.
func seal(b []byte) []byte {
	sum := digest.Of(b)
	return append(sum[:], b...)
}

// unseal returns the payload of a sealed record, or false if it is damaged.
func unseal(v []byte) ([]byte, bool) {
	if len(v) < digest.Size {
		return nil, false
	}
	body := v[digest.Size:]
	return body, digest.Of(body) == digest.Digest(v[:digest.Size])
}

// decodeMeta decodes the sealed Meta record v stored under key's meta key,
// checking that it describes key.
func decodeMeta(key digest.Digest, v []byte) (Meta, error) {
	body, ok := unseal(v)
	if !ok {
		return Meta{}, fmt.Errorf("cache: entry %s: %w (hash mismatch)", key.Short(), errDamagedMeta)
	}
	var m Meta
	if err := json.Unmarshal(body, &m); err != nil {
		return Meta{}, fmt.Errorf("cache: entry %s: %w: %v", key.Short(), errDamagedMeta, err)
	}
	if m.Key != key {
		return Meta{}, fmt.Errorf("cache: entry %s: %w: it describes %s", key.Short(), errDamagedMeta, m.Key.Short())
	}
	return m, nil
}

// readMeta returns the Meta of key in txn, or an ErrNotFound error, or an
// errDamagedMeta error.
func readMeta(txn *badger.Txn, key digest.Digest) (Meta, error) {
	item, err := txn.Get(metaKey(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Meta{}, notFound(key)
	}
	if err != nil {
		return Meta{}, fmt.Errorf("cache: entry %s: read metadata: %w", key.Short(), err)
	}
	var m Meta
	err = item.Value(func(v []byte) error {
		var err error
		m, err = decodeMeta(key, v)
		return err
	})
	return m, err
}

// statLocal is Stat in the local store only.
// A damaged Meta reads as no entry (the value is recomputed, and the Put
// that stores it replaces the record; Get and Verify delete it).
func (s *Store) statLocal(key digest.Digest) (m Meta, ok bool, err error) {
	defer s.recoverPanic(&err)
	err = s.db.View(func(txn *badger.Txn) error {
		m, err = readMeta(txn, key)
		return err
	})
	if errors.Is(err, errDamagedMeta) {
		s.log.Warn("ignoring damaged cache metadata", "key", key.String(), "error", err)
		return Meta{}, false, nil
	}
	if errors.Is(err, ErrNotFound) {
		return Meta{}, false, nil
	}
	return m, err == nil, err
}

// Get returns the value stored under key after checking it against its
// BLAKE3 sum. A missing key yields an ErrNotFound error; a damaged value
// (a chunk missing, unreadable, of the wrong length, or a sum mismatch) is
// deleted and yields a *CorruptError, which matches ErrCorrupt.
func (s *Store) Get(key digest.Digest) ([]byte, Meta, error) {
	v, m, err := s.getLocal(key)
	if r := s.remote.Load(); r != nil && errors.Is(err, ErrNotFound) {
		return s.readThrough(*r, key)
	}
	return v, m, err
}

func (s *Store) getLocal(key digest.Digest) (_ []byte, _ Meta, err error) {
	defer s.recoverPanic(&err)
	if s.view != "" {
		// A view maps no value logs (see view.go).
		return nil, Meta{}, fmt.Errorf("cache %s: get: %w", s.dir, ErrReadOnly)
	}
	// A second round covers an entry that was replaced or collected while
	// it was being read, which looks like damage but is not.
	for range 2 {
		var (
			m      Meta
			value  []byte
			reason string
		)
		err := s.db.View(func(txn *badger.Txn) error {
			var err error
			if m, err = readMeta(txn, key); err != nil || m.Blob {
				return err
			}
			value, reason, err = readValue(txn, m)
			return err
		})
		if errors.Is(err, errDamagedMeta) {
			// No Meta to trust: drop the record as a corrupt entry.
			m, reason = Meta{Key: key}, err.Error()
			err = nil
		}
		if err != nil {
			return nil, Meta{}, err
		}
		if m.Blob {
			// Read outside the transaction: the file is not Badger's.
			value, reason = s.readBlob(m)
		}
		if reason == "" {
			s.touch(m)
			return value, m, nil
		}
		dropped, err := s.dropCorrupt(m, reason)
		if err != nil {
			return nil, Meta{}, err
		}
		if dropped {
			return nil, Meta{}, &CorruptError{Meta: m, Reason: reason}
		}
	}
	return nil, Meta{}, fmt.Errorf("cache: entry %s keeps changing while being read", key.Short())
}

// readValue assembles m's value and checks it, returning a non-empty reason
// if it is damaged. A goroutine hashes each chunk's copy while the next one
// is copied, so a Get costs about the larger of copying and hashing rather
// than their sum.
func readValue(txn *badger.Txn, m Meta) (value []byte, reason string, err error) {
	ends := make(chan int64, m.Chunks) // end offsets of the copied chunks, in order
	endsOpen := true
	defer func() { // a panic in Badger must not strand the hashing goroutine
		if endsOpen {
			close(ends)
		}
	}()
	sumc := make(chan digest.Digest, 1)
	reason, err = scanChunks(txn, m, func(i int, chunk []byte) {
		if value == nil {
			// Allocated only now that scanChunks has checked that Size
			// agrees with Chunks and with this chunk.
			value = make([]byte, m.Size)
			go hashRegions(value, ends, sumc)
		}
		off := int64(i) * ChunkSize
		copy(value[off:], chunk)
		ends <- off + int64(len(chunk))
	})
	close(ends)
	endsOpen = false
	sum := digest.Of(nil)
	if value != nil {
		sum = <-sumc
	} else {
		value = []byte{}
	}
	if reason == "" && err == nil {
		reason = checkSum(m, sum)
	}
	if reason != "" || err != nil {
		return nil, reason, err
	}
	return value, "", nil
}

// hashRegions hashes value up to each offset received from ends, then sends
// the digest.
func hashRegions(value []byte, ends <-chan int64, sumc chan<- digest.Digest) {
	h := digest.New()
	var start int64
	for end := range ends {
		h.Write(value[start:end])
		start = end
	}
	sumc <- h.Digest()
}

// checkSum returns the reason for a content hash that differs from m.Sum, or
// "" if it matches.
func checkSum(m Meta, got digest.Digest) string {
	if got == m.Sum {
		return ""
	}
	return fmt.Sprintf("content hash %s does not match the recorded %s", got.Short(), m.Sum.Short())
}

// scanChunks feeds m's chunks in order to fn, checking that they exist and
// have the lengths m implies; fn must not keep the chunk (it is Badger's
// memory-mapped value log). It returns a non-empty reason if the stored
// chunks are damaged, and an error only for failures that say nothing about
// the data (a closed database). Checking the content hash is the caller's.
func scanChunks(txn *badger.Txn, m Meta, fn func(i int, chunk []byte)) (reason string, err error) {
	if m.Size < 0 || m.Chunks != numChunks(m.Size) {
		return fmt.Sprintf("metadata says %d bytes in %d chunks", m.Size, m.Chunks), nil
	}
	for i := range m.Chunks {
		want := min(ChunkSize, m.Size-int64(i)*ChunkSize)
		item, err := txn.Get(chunkKey(m.Key, i))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Sprintf("chunk %d of %d is missing", i, m.Chunks), nil
		}
		if err != nil {
			return readFailure(i, m.Chunks, err)
		}
		// (item.ValueSize is only an estimate for value-log values.)
		err = item.Value(func(v []byte) error {
			if int64(len(v)) != want {
				reason = fmt.Sprintf("chunk %d of %d has %d bytes, want %d", i, m.Chunks, len(v), want)
				return nil
			}
			fn(i, v)
			return nil
		})
		if err != nil {
			return readFailure(i, m.Chunks, err)
		}
		if reason != "" {
			return reason, nil
		}
	}
	return "", nil
}

// readFailure classifies a Badger read error: a closed database is the
// caller's problem, anything else means the stored bytes cannot be had,
// e.g. a value pointer into a value-log file that a crash truncated.
func readFailure(i, n int, err error) (string, error) {
	if errors.Is(err, badger.ErrDBClosed) {
		return "", fmt.Errorf("cache: %w", err)
	}
	return fmt.Sprintf("chunk %d of %d is unreadable: %v", i, n, err), nil
}

// dropCorrupt deletes the entry m found damaged, unless it has been replaced
// or deleted since it was read; dropped says whether it was deleted.
func (s *Store) dropCorrupt(m Meta, reason string) (dropped bool, err error) {
	if err := s.readOnly("drop corrupt entry " + m.Key.Short()); err != nil {
		return false, err
	}
	mu := s.keyLock(m.Key)
	mu.Lock()
	defer mu.Unlock()
	s.sweep.RLock()
	defer s.sweep.RUnlock()
	if m.Sum.IsZero() && m.Created.IsZero() {
		// m stands for a damaged Meta record: drop it if it is still there
		// and still damaged.
		var damaged bool
		err := s.db.View(func(txn *badger.Txn) error {
			_, err := readMeta(txn, m.Key)
			damaged = errors.Is(err, errDamagedMeta)
			return nil
		})
		if err != nil || !damaged {
			return false, err
		}
	} else {
		cur, ok, err := s.statLocal(m.Key)
		if err != nil || !ok || cur.Sum != m.Sum || !cur.Created.Equal(m.Created) {
			return false, err
		}
	}
	s.log.Warn("dropping corrupt cache entry", "key", m.Key.String(), "op", m.Op, "name", m.Name, "reason", reason)
	if err := s.deleteLocked(m.Key); err != nil {
		return false, err
	}
	return true, nil
}

// touch refreshes m's LastUsed if it is older than touchInterval. It is best
// effort: a failure costs only LRU precision, so Get does not report it, and
// it is skipped rather than waiting while GC sweeps.
func (s *Store) touch(m Meta) {
	now := s.now().UTC()
	if now.Sub(m.LastUsed) < touchInterval {
		return
	}
	if s.noWrite {
		s.postpone(func(w *Store) { w.touch(m) })
		return
	}
	if s.view != "" || !s.sweep.TryRLock() {
		return
	}
	defer s.sweep.RUnlock()
	err := s.db.Update(func(txn *badger.Txn) error {
		cur, err := readMeta(txn, m.Key)
		if err != nil || cur.Sum != m.Sum || !cur.Created.Equal(m.Created) {
			return err // gone or replaced since the read: nothing to refresh
		}
		cur.LastUsed = now
		b, err := encodeMeta(cur)
		if err != nil {
			return err
		}
		return txn.Set(metaKey(m.Key), b)
	})
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, badger.ErrConflict) {
		s.log.Warn("could not refresh cache entry's last use", "key", m.Key.String(), "error", err)
	}
}

// Delete removes key's entry, or returns an ErrNotFound error if there is
// none. The entry ends at once, and a value file goes with it; chunks in
// Badger stay on disk as garbage until the next GC or Verify drops them and
// returns their space.
func (s *Store) Delete(key digest.Digest) (err error) {
	defer s.recoverPanic(&err)
	if err := s.readOnly("delete"); err != nil {
		return err
	}
	mu := s.keyLock(key)
	mu.Lock()
	defer mu.Unlock()
	s.sweep.RLock()
	defer s.sweep.RUnlock()
	_, ok, err := s.statLocal(key)
	if err != nil {
		return err
	}
	if !ok {
		return notFound(key)
	}
	return s.deleteLocked(key)
}

// deleteLocked removes key's Meta, which ends the entry. Its chunks are left
// for GC: dropped there in one DropPrefix with the evicted entries' chunks,
// their value-log space becomes reclaimable at once, whereas deleting them
// key by key here would leave it unreclaimable until Badger's compactions
// happened to merge the deletions with the values. The caller holds key's
// lock and sweep for reading.
//
// A value file goes at once, after the Meta (a file is its own unit of
// space; removing it needs no compaction).
func (s *Store) deleteLocked(key digest.Digest) error {
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(metaKey(key)) }); err != nil {
		return fmt.Errorf("cache: delete entry %s: %w", key.Short(), err)
	}
	return s.removeBlob(key)
}

// keysWithPrefix lists the live keys under prefix without reading values.
func (s *Store) keysWithPrefix(prefix []byte) ([][]byte, error) {
	var keys [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	return keys, err
}

// List returns every entry's Meta, most recently used first. Damaged Meta
// records are left out (with a warning); Verify deletes them.
func (s *Store) List() (_ []Meta, err error) {
	defer s.recoverPanic(&err)
	metas, damaged, err := s.list()
	if err != nil {
		return nil, err
	}
	if len(damaged) > 0 {
		s.log.Warn("cache holds damaged metadata records; lrmc cache verify drops them", "count", len(damaged))
	}
	slices.SortFunc(metas, func(a, b Meta) int {
		if c := b.LastUsed.Compare(a.LastUsed); c != 0 {
			return c
		}
		return bytes.Compare(a.Key[:], b.Key[:])
	})
	return metas, nil
}

// list reads every Meta record: the sound ones, and the keys of the damaged
// ones.
func (s *Store) list() (metas []Meta, damaged []digest.Digest, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(metaPrefix)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			var k digest.Digest
			if len(item.Key()) != len(metaPrefix)+digest.Size {
				continue // not a key this package writes
			}
			copy(k[:], item.Key()[len(metaPrefix):])
			var m Meta
			err := item.Value(func(v []byte) error {
				var err error
				m, err = decodeMeta(k, v)
				return err
			})
			switch {
			case errors.Is(err, errDamagedMeta):
				damaged = append(damaged, k)
			case err != nil:
				return fmt.Errorf("cache: read metadata under key %x: %w", item.Key(), err)
			default:
				metas = append(metas, m)
			}
		}
		return nil
	})
	return metas, damaged, err
}

// Usage returns the number of entries and the sum of their value sizes.
// Disk use is slightly more, plus garbage that GC has not yet reclaimed.
func (s *Store) Usage() (entries int, bytes int64, err error) {
	metas, err := s.List()
	if err != nil {
		return 0, 0, err
	}
	for _, m := range metas {
		bytes += m.Size
	}
	return len(metas), bytes, nil
}
