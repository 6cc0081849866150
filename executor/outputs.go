package executor

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"lrmc/planner"
)

// WriteOutputs writes every output of g under g.OutDir: a node's encoded
// result, or a copy of a source file. Each file is written to a temporary
// name and renamed, so a reader never sees a half-written artifact.
func (e *Executor) WriteOutputs(g *planner.Graph, r *Result) ([]string, error) {
	var written []string
	for _, o := range g.Outputs {
		dst := filepath.Join(g.OutDir, o.Path)
		var err error
		switch {
		case o.Node == nil:
			err = WriteFileAtomic(dst, o.Data)
		case o.Node.IsSource():
			err = copySourceAtomic(o.Node, dst)
		default:
			b, ok := r.Bytes(o.Node)
			if !ok || b == nil {
				return written, fmt.Errorf("output %s: node %s (%s) has no result", dst, o.Node.Label, o.Node.Key.Short())
			}
			if o.Dir {
				err = unpackDir(b, dst)
			} else {
				err = WriteFileAtomic(dst, b)
			}
		}
		if err != nil {
			return written, err
		}
		st, _ := os.Stat(dst)
		var size int64
		if st != nil {
			size = st.Size()
		}
		// Literal outputs have no node; "write" names what happened.
		ev := Event{Event: EventOutput, Op: "write", Label: o.Path, Path: dst, Bytes: size}
		if o.Node != nil {
			ev.Node, ev.Op, ev.Label = o.Node.Key.String(), o.Node.Op, o.Node.Label
		}
		e.emit(ev)
		written = append(written, dst)
	}
	return written, nil
}

// WriteFileAtomic writes b to path through a temporary file in the same
// directory, synced and renamed into place.
func WriteFileAtomic(path string, b []byte) error {
	return writeAtomic(path, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

func copySourceAtomic(n *planner.Node, dst string) error {
	return writeAtomic(dst, func(w io.Writer) error {
		_, err := copySource(w, n)
		return err
	})
}

func writeAtomic(path string, fill func(io.Writer) error) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("output %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("output %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := fill(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("output %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("output %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("output %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("output %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("output %s: %w", path, err)
	}
	return nil
}
