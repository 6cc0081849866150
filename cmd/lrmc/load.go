package main

import (
	"errors"
	"fmt"
	"io"

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
func (g *globals) load(path string) (*session, error) {
	budget, hasBudget, err := cacheBudget()
	if err != nil {
		return nil, err
	}
	s, err := g.loadWith(path, g.openCache)
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

// loadWith is load with the cache opened by open.
func (g *globals) loadWith(path string, open func() (*cache.Store, error)) (*session, error) {
	r, err := compiler.Compile(path)
	if err != nil {
		return nil, err
	}
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
