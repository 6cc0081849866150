package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"lrmc/digest"
)

// Who uses the cache.
//
// Entries are keyed by content, so one entry may serve several runs and
// recipes, and an entry nothing needs any longer looks like any other. Two
// records say who wrote and who needs what, without touching node keys:
//
//   - an entry's Meta names the recipe and runs whose apply wrote it
//     (Origin, set by the apply before it runs; sealed with the Meta, so it
//     is written atomically with the entry);
//   - an Apply record per recipe (a/<recipe path>) lists the entries each
//     run of that recipe's latest apply needs, replaced whole by the next
//     apply of the recipe (one transaction), so a run removed from a
//     recipe stops holding its entries.
//
// An entry no Apply record lists is reclaimable: gc drops such entries
// first, and `lrmc cache du` counts them. Apply records of recipe files
// that no longer exist are stale: they protect nothing, and gc drops them.

// Apply is the record of a recipe's latest apply.
type Apply struct {
	Recipe string `json:"recipe"` // absolute path of the recipe file
	// Time is when an apply of the recipe first needed these entries.
	Time time.Time `json:"time"`
	// Keys maps every entry the apply needs to the runs that need it
	// (sorted).
	Keys map[digest.Digest][]string `json:"keys"`
	// Stale is set when read back if the recipe file no longer exists.
	Stale bool `json:"-"`
}

// RunRef names runs of a recipe.
type RunRef struct {
	Recipe string   `json:"recipe"`
	Runs   []string `json:"runs"`
}

// origin is what Put records as an entry's writer.
type origin struct {
	recipe string
	runs   map[digest.Digest][]string
}

// SetOrigin makes later Puts record recipe, and the runs runs maps each key
// to, as the writer of the entries they create. Apply calls it with the
// same keys it records with RecordApply.
func (s *Store) SetOrigin(recipe string, runs map[digest.Digest][]string) {
	s.origin.Store(&origin{recipe: recipe, runs: runs})
}

// writer returns the Meta fields naming key's writer.
func (s *Store) writer(key digest.Digest) (recipe string, runs []string) {
	o := s.origin.Load()
	if o == nil {
		return "", nil
	}
	return o.recipe, o.runs[key]
}

func applyKey(recipe string) []byte { return append([]byte(applyPrefix), recipe...) }

// RecordApply replaces a's recipe's Apply record in one transaction. A
// record that already lists the same keys and runs is kept as it is (with
// its time): a warm apply then writes nothing to the database, which
// spares the memtable flush that any write costs at Close.
func (s *Store) RecordApply(a Apply) (err error) {
	defer s.recoverPanic(&err)
	if s.view != "" {
		return s.readOnly("record apply")
	}
	if a.Recipe == "" {
		return errors.New("cache: record apply: no recipe")
	}
	a.Time = a.Time.UTC()
	j, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("cache: record apply of %s: %w", a.Recipe, err)
	}
	b := seal(j)
	s.sweep.RLock()
	defer s.sweep.RUnlock()
	if old, ok := s.readApply(a.Recipe); ok && sameKeys(old.Keys, a.Keys) {
		return nil
	}
	if err := s.readOnly("record apply"); err != nil {
		return err // NoWrite: only the same record is no write
	}
	if err := s.checkSpace(int64(len(b))); err != nil {
		return err
	}
	err = s.db.Update(func(txn *badger.Txn) error { return txn.Set(applyKey(a.Recipe), b) })
	if err != nil {
		return s.writeError(fmt.Errorf("cache: record apply of %s: %w", a.Recipe, err), int64(len(b)))
	}
	return nil
}

// readApply returns recipe's sound Apply record, if there is one.
func (s *Store) readApply(recipe string) (a Apply, ok bool) {
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(applyKey(recipe))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			body, sound := unseal(v)
			if !sound {
				return errDamagedMeta
			}
			return json.Unmarshal(body, &a)
		})
	})
	return a, err == nil && a.Recipe == recipe
}

func sameKeys(a, b map[digest.Digest][]string) bool {
	return maps.EqualFunc(a, b, func(x, y []string) bool { return slices.Equal(x, y) })
}

// Applies returns every recipe's Apply record, sorted by recipe, marking
// those whose recipe file is gone as Stale. Damaged records are skipped
// with a warning (they protect nothing; gc drops them).
func (s *Store) Applies() (_ []Apply, err error) {
	defer s.recoverPanic(&err)
	applies, _, err := s.applies()
	return applies, err
}

// applies also returns the keys of damaged records.
func (s *Store) applies() (applies []Apply, damaged [][]byte, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: []byte(applyPrefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			var a Apply
			err := item.Value(func(v []byte) error {
				body, ok := unseal(v)
				if !ok {
					return errDamagedMeta
				}
				return json.Unmarshal(body, &a)
			})
			if err != nil || string(item.Key()) != string(applyKey(a.Recipe)) {
				s.log.Warn("ignoring damaged apply record", "key", string(item.Key()), "error", err)
				damaged = append(damaged, item.KeyCopy(nil))
				continue
			}
			applies = append(applies, a)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("cache: read apply records: %w", err)
	}
	for i := range applies {
		if _, err := os.Stat(applies[i].Recipe); errors.Is(err, fs.ErrNotExist) {
			applies[i].Stale = true
		}
	}
	slices.SortFunc(applies, func(a, b Apply) int { return strings.Compare(a.Recipe, b.Recipe) })
	return applies, damaged, nil
}

// Entry is an entry with who needs it.
type Entry struct {
	Meta
	// UsedBy lists the recipes whose latest apply needs the entry, and
	// which of their runs; empty for a reclaimable entry.
	UsedBy []RunRef
}

// Reclaimable reports whether no recipe's latest apply needs the entry.
func (e Entry) Reclaimable() bool { return len(e.UsedBy) == 0 }

// Entries returns every entry, most recently used first, with the
// recipes and runs whose latest apply needs it (stale records left out).
func (s *Store) Entries() (_ []Entry, err error) {
	defer s.recoverPanic(&err)
	metas, err := s.List()
	if err != nil {
		return nil, err
	}
	applies, err := s.Applies()
	if err != nil {
		return nil, err
	}
	return usage(metas, applies), nil
}

// usage joins entries with the live Apply records (sorted by recipe).
func usage(metas []Meta, applies []Apply) []Entry {
	out := make([]Entry, len(metas))
	for i, m := range metas {
		out[i].Meta = m
		for _, a := range applies {
			if runs, ok := a.Keys[m.Key]; ok && !a.Stale {
				out[i].UsedBy = append(out[i].UsedBy, RunRef{Recipe: a.Recipe, Runs: runs})
			}
		}
	}
	return out
}

// Policy says what Prune evicts.
//
// Without a size target (MaxBytes < 0) it evicts the reclaimable entries.
// With one, it evicts least recently used entries until the entries left
// total at most MaxBytes: the reclaimable ones first, then, if that is not
// enough, the ones other applies need (a cache is a cache: a size the user
// set wins over reuse). Either way it never evicts an entry used within
// KeepDuration, nor one in Protect (what the current apply needs).
type Policy struct {
	MaxBytes     int64
	KeepDuration time.Duration
	Protect      map[digest.Digest]bool
	// DryRun selects without evicting anything.
	DryRun bool
}

// NoSizeTarget is Policy.MaxBytes for a prune without a size target.
const NoSizeTarget = -1

// selectEvictions returns the entries p evicts, in eviction order.
func selectEvictions(entries []Entry, p Policy, now time.Time) []Entry {
	var total int64
	var free, used []Entry
	for _, e := range entries {
		total += e.Size
		if p.Protect[e.Key] || (p.KeepDuration > 0 && now.Sub(e.LastUsed) < p.KeepDuration) {
			continue
		}
		if e.Reclaimable() {
			free = append(free, e)
		} else {
			used = append(used, e)
		}
	}
	lru := func(a, b Entry) int {
		if c := a.LastUsed.Compare(b.LastUsed); c != 0 {
			return c
		}
		return strings.Compare(string(a.Key[:]), string(b.Key[:]))
	}
	slices.SortFunc(free, lru)
	slices.SortFunc(used, lru)
	if p.MaxBytes < 0 {
		return free
	}
	var out []Entry
	for _, e := range append(free, used...) {
		if total <= p.MaxBytes {
			break
		}
		out = append(out, e)
		total -= e.Size
	}
	return out
}

// Prune evicts what p selects, drops orphan chunks and stale or damaged
// Apply records, and returns the space to the file system as GC does. With
// p.DryRun it only returns what it would evict (and works on a read-only
// view).
func (s *Store) Prune(p Policy) (removed []Entry, err error) {
	defer s.recoverPanic(&err)
	if p.DryRun {
		entries, err := s.Entries()
		if err != nil {
			return nil, err
		}
		return selectEvictions(entries, p, s.now().UTC()), nil
	}
	if err := s.readOnly("gc"); err != nil {
		return nil, err
	}
	return s.gc(p)
}

// EnforceBudget prunes to maxBytes, never evicting protect, when the
// entries total more than maxBytes; under budget it only lists the
// entries (a warm apply pays no more). It returns the evicted entries and
// the bytes left.
func (s *Store) EnforceBudget(maxBytes int64, protect map[digest.Digest]bool) (removed []Entry, left int64, err error) {
	_, total, err := s.Usage()
	if err != nil || total <= maxBytes {
		return nil, total, err
	}
	removed, err = s.Prune(Policy{MaxBytes: maxBytes, Protect: protect})
	if err != nil {
		return removed, total, err
	}
	for _, e := range removed {
		total -= e.Size
	}
	return removed, total, nil
}

// staleApplies returns the keys of Apply records that protect nothing:
// damaged ones and those of recipe files that are gone.
func (s *Store) staleApplies() ([]Apply, [][]byte, error) {
	applies, drop, err := s.applies()
	if err != nil {
		return nil, nil, err
	}
	live := applies[:0]
	for _, a := range applies {
		if a.Stale {
			drop = append(drop, applyKey(a.Recipe))
			continue
		}
		live = append(live, a)
	}
	return live, drop, nil
}
