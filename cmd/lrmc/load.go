package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"lrmc/cache"
	"lrmc/compiler"
	"lrmc/compiler/ir"
	"lrmc/digest"
	"lrmc/executor/ops"
	"lrmc/planner"
)

// session is a compiled, planned recipe with its cache open.
type session struct {
	store  *cache.Store
	recipe *ir.Recipe
	graph  *planner.Graph
	// env digested the sources; it checks them again as ops read them.
	env *ops.Env
	// needs holds the keys of the entries an apply needs (recordApply);
	// budget is LRMC_CACHE_MAX, when hasBudget.
	// remote is the shared cache attached to store (--remote-cache), or nil.
	remote    cache.Remote
	needs     map[digest.Digest]bool
	budget    int64
	hasBudget bool
}

// cacheOptions are the store options the flags name, and the directory.
func (g *globals) cacheOptions() (string, cache.Options) {
	dir := g.cacheDir
	if dir == "" {
		dir = cache.DefaultDir()
	}
	return dir, cache.Options{Logger: g.logger().Named("cache"), Wait: g.wait.on, WaitTimeout: g.wait.max}
}

// openCache opens the store named by the flags, for a command that writes.
func (g *globals) openCache() (*cache.Store, error) {
	dir, opts := g.cacheOptions()
	return g.withRemote(cache.Open(dir, opts))
}

// withRemote makes a store just opened read through and write back to the
// shared cache --remote-cache names, when it names one.
func (g *globals) withRemote(s *cache.Store, err error) (*cache.Store, error) {
	if err != nil || g.remote == "" {
		return s, err
	}
	r, err := cache.OpenRemote(g.remote)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("--remote-cache: %w", err)
	}
	s.SetRemote(r)
	g.attached = r
	return s, nil
}

// openCacheForReading opens the store for a command that only reads (plan,
// graph, cache ls and du): the store itself when it is free, so that file
// digests are memoized, else a read-only view, so that the command neither
// fails nor waits while an apply holds the cache (and the apply never waits
// for it), nor fails on a disk too full to open the store for writing.
func (g *globals) openCacheForReading() (*cache.Store, error) {
	dir, opts := g.cacheOptions()
	opts.Wait = false
	s, err := cache.Open(dir, opts)
	var locked *cache.LockedError
	switch {
	case errors.As(err, &locked):
		opts.Logger.Info("cache in use; reading a snapshot of it", "holder_pid", locked.Holder.PID, "holder_command", locked.Holder.Command)
	case errors.Is(err, cache.ErrNoSpace):
		// The view is copied to the temporary directory, so a full
		// cache disk can still be listed (to choose what gc keeps).
		opts.Logger.Info("cache disk is full; reading a snapshot of it", "error", err)
	default:
		return g.withRemote(s, err)
	}
	opts.ReadOnly = true
	return g.withRemote(cache.Open(dir, opts))
}

// load compiles and plans a recipe against the cache, for apply, and
// records in the cache what the apply needs (see recordApply).
//
// When the apply will find every result in the local cache, the cache is
// opened without writing (cache.Options.NoWrite; see warm): a rerun then
// neither creates nor syncs Badger's logs. Should the apply need to write
// after all (an entry found corrupt while reading it), apply opens the
// cache again for writing and runs again (session.reopenForWriting).
func (g *globals) load(path string) (*session, error) {
	// Compiling and planning allocate some 10 MiB of short-lived values
	// (CUE's above all) over a live heap of 2-3 MiB: at the default
	// GOGC that is three or four collections, ~7% of a fully cached
	// apply's CPU; a goal of 4× the live heap (at least 16 MiB) makes it
	// none. Only for these steps: the ops' memory is left to the default.
	if old := debug.SetGCPercent(loadGCPercent); old < 0 || old > loadGCPercent {
		debug.SetGCPercent(old) // GOGC=off, or higher already: keep it
	} else {
		defer debug.SetGCPercent(old)
	}
	budget, hasBudget, err := cacheBudget()
	if err != nil {
		return nil, err
	}
	r, err := compiler.Compile(path)
	if err != nil {
		return nil, err
	}
	// A budget may evict and a shared cache may copy entries in: both
	// write, so only a plain local apply tries the cache unwritten.
	if !hasBudget && g.remote == "" && os.Getenv("LRMC_NO_WARM") == "" {
		if s := g.warm(r); s != nil {
			return s, nil
		}
	}
	s, err := g.planWith(r, g.openCache)
	if err != nil {
		return nil, err
	}
	s.budget, s.hasBudget = budget, hasBudget
	if err := s.recordApply(); err != nil {
		s.store.Close()
		return nil, err
	}
	return s, nil
}

// loadGCPercent is the GOGC of load (see there).
const loadGCPercent = 400

// warm opens the cache without writing and plans r against it, and returns
// that session when the apply should have nothing to write: every node's
// entry is in the local cache, every source's digest is memoized, and the
// cache already records this apply with the same keys. Otherwise, or when the
// cache cannot be opened so (held by another process, left unclosed by a
// crash), it returns nil and load opens the cache for writing.
func (g *globals) warm(r *ir.Recipe) *session {
	dir, opts := g.cacheOptions()
	opts.NoWrite, opts.Wait = true, false
	store, err := cache.Open(dir, opts)
	if err != nil {
		return nil
	}
	s, err := g.planWith(r, func() (*cache.Store, error) { return store, nil })
	if err != nil {
		return nil // planWith closed the store; the writable path reports the error
	}
	if !s.allCached() || s.recordApply() != nil || store.Refused() > 0 {
		store.Close()
		return nil
	}
	return s
}

// allCached says whether every node the cache keeps has its entry in the
// local cache (a node a warm apply does not read included: a conservative
// test, cheaper than predicting which entries the executor will read).
func (s *session) allCached() bool {
	for _, n := range s.graph.Nodes {
		if n.IsSource() || planner.IsEphemeral(n.Op) {
			continue
		}
		if _, ok, err := s.store.Stat(n.Key); err != nil || !ok {
			return false
		}
	}
	return true
}

// reopenForWriting replaces a store opened without writing by the cache
// opened for writing, for an apply that found it had to write (the
// writes the first store refused were not made; the caller does the work
// again).
func (s *session) reopenForWriting(g *globals) error {
	if err := s.store.Close(); err != nil {
		return err
	}
	store, err := g.openCache()
	if err != nil {
		return err
	}
	s.store = store
	s.env.Files = store
	if err := s.recordApply(); err != nil {
		store.Close()
		return err
	}
	return nil
}

// loadWith is load with the cache opened by open.
func (g *globals) loadWith(path string, open func() (*cache.Store, error)) (*session, error) {
	r, err := compiler.Compile(path)
	if err != nil {
		return nil, err
	}
	return g.planWith(r, open)
}

// planWith plans r against the cache opened by open; on failure the
// store is closed.
func (g *globals) planWith(r *ir.Recipe, open func() (*cache.Store, error)) (*session, error) {
	store, err := open()
	if err != nil {
		return nil, err
	}
	env := &ops.Env{Files: store}
	graph, err := planner.Plan(r, env)
	if err != nil {
		store.Close()
		return nil, err
	}
	return &session{store: store, recipe: r, graph: graph, env: env, remote: g.attached}, nil
}

// planned compiles and plans a recipe and asks the cache what is in it,
// for the commands that show a plan; the caller closes the store. Compile
// and plan errors are printed to stderr (they name file:line:col) and
// turn into exit status 1.
func (g *globals) planned(stderr io.Writer, path string) (*session, map[*planner.Node]planner.Status, error) {
	s, err := g.loadWith(path, g.openCacheForReading)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, nil, exitError{code: 1}
	}
	st, err := s.statuses()
	if err != nil {
		s.store.Close()
		return nil, nil, err
	}
	return s, st, nil
}

// statuses asks the cache which nodes hold results.
func (s *session) statuses() (map[*planner.Node]planner.Status, error) {
	var firstErr error
	st := s.graph.Statuses(func(n *planner.Node) bool {
		ok, err := s.inCache(n)
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("cache: %w", err)
		}
		return ok
	})
	return st, firstErr
}
