package main

import (
	"fmt"
	"io"

	"lrmc/cache"
	"lrmc/compiler"
	"lrmc/executor/ops"
	"lrmc/planner"
)

// session is a compiled, planned recipe with its cache open.
type session struct {
	store *cache.Store
	graph *planner.Graph
	// env digested the sources; it checks them again as ops read them.
	env *ops.Env
}

// openCache opens the store named by the flags.
func (g *globals) openCache() (*cache.Store, error) {
	dir := g.cacheDir
	if dir == "" {
		dir = cache.DefaultDir()
	}
	return cache.Open(dir, cache.Options{Logger: g.logger().Named("cache"), Wait: g.wait})
}

// load compiles and plans a recipe against the cache.
func (g *globals) load(path string) (*session, error) {
	r, err := compiler.Compile(path)
	if err != nil {
		return nil, err
	}
	store, err := g.openCache()
	if err != nil {
		return nil, err
	}
	env := &ops.Env{Files: store}
	graph, err := planner.Plan(r, env)
	if err != nil {
		store.Close()
		return nil, err
	}
	return &session{store: store, graph: graph, env: env}, nil
}

// planned compiles and plans a recipe and asks the cache what is in it,
// for the commands that show a plan; the caller closes the store. Compile
// and plan errors are printed to stderr (they name file:line:col) and
// turn into exit status 1.
func (g *globals) planned(stderr io.Writer, path string) (*session, map[*planner.Node]planner.Status, error) {
	s, err := g.load(path)
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
		_, ok, err := s.store.Stat(n.Key)
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("cache: %w", err)
		}
		return ok
	})
	return st, firstErr
}
