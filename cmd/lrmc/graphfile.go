package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"lrmc/executor"
	"lrmc/planner"
)

// graphJSON is s's planned graph as JSON (planner.EncodeGraph, format
// lrmc.graph/v1), with the sizes of the files its sources read.
func (s *session) graphJSON() ([]byte, error) {
	recipe, err := filepath.Abs(s.recipe.File)
	if err != nil {
		return nil, err
	}
	return planner.EncodeGraph(s.graph, recipe, fileSize)
}

// writeGraph writes s's graph to path ("-": stdout) all at once: a job
// that reads it while it is written sees the old file or the new one.
func (s *session) writeGraph(path string, stdout io.Writer) error {
	b, err := s.graphJSON()
	if err != nil {
		return fmt.Errorf("encoding the graph: %w", err)
	}
	if path == "-" {
		_, err := stdout.Write(b)
		return err
	}
	if err := executor.WriteFileAtomic(path, b); err != nil {
		return fmt.Errorf("writing the graph: %w", err)
	}
	return nil
}

// maxGraphBytes bounds a graph file read into memory: a plan of ten
// thousand nodes takes a few MB, so anything larger is not a graph.
const maxGraphBytes = 256 << 20

// readGraph reads and checks the graph file at path (planner.DecodeGraph:
// format, ops, op versions, every key recomputed from its node). Its
// files are checked later, before use (verifySources).
func readGraph(path string) (*planner.Graph, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > maxGraphBytes {
		return nil, fmt.Errorf("%s: a graph file is a regular file of at most %d bytes (lrmc plan --emit graph writes one); this is %s of %d bytes",
			path, maxGraphBytes, st.Mode().Type(), st.Size())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxGraphBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	g, _, err := planner.DecodeGraph(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return g, nil
}

// verifySources digests every file sub reads and fails, naming the file
// and both digests, when one no longer holds the bytes the graph was
// planned with: every key downstream was built on those bytes, so running
// on others would store wrong results under right-looking keys. The
// digests also arm s.env, which the executor asks again as each op reads
// its files.
func (s *session) verifySources(graphFile string, sub *planner.Graph) error {
	for _, n := range sub.Nodes {
		if !n.IsSource() {
			continue
		}
		var p planner.SourceParams
		if err := json.Unmarshal(n.Params, &p); err != nil {
			return fmt.Errorf("%s: node %s (%s): %w", graphFile, n.Key.Short(), n.Op, err)
		}
		d, err := s.env.FileDigest(n.Source)
		if err != nil {
			return fmt.Errorf("%s: file of node %s: %w", graphFile, n.Key.Short(), err)
		}
		if d.String() != p.Digest {
			return fmt.Errorf("%s: %s changed since the graph was planned: expected digest %s, found %s; nothing was run (plan the recipe again to use the new contents)",
				graphFile, n.Source, p.Digest, d)
		}
	}
	return nil
}
