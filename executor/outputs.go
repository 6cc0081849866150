package executor

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"lrmc/internal/atomicfile"
	"lrmc/internal/fsync"
	"lrmc/planner"
)

// Outputs are written so that a failed or killed apply never leaves a run
// directory holding a mix of old and new files:
//
//  1. CleanOutputs removes what an earlier, killed apply left behind: its
//     temporary files, staging directories and set-aside directories (one
//     whose run directory is missing is put back: the kill fell between the
//     two renames of a swap).
//  2. Every run directory is written whole into a staging directory beside
//     it (".RUN.staging-PID"), and every top-level file (results.json) into
//     a temporary file. Nothing visible changes yet, so a failure here, for
//     any run, leaves the previous complete set as it was.
//  3. Each staged run directory is swapped in, with renameat2's
//     RENAME_EXCHANGE where the filesystem has it (one atomic step), else
//     with two renames (the old directory aside to ".RUN.old-PID", the
//     staged one in); then the top-level files are renamed into place.
//
// A run directory that is a symbolic link is refused, never written
// through: it would put lrmc's outputs, and its removals, in another tree.

// WriteOutputs writes every output of g under g.OutDir: a node's encoded
// result, a copy of a source file, or data the planner composed. It returns
// the paths written.
func (e *Executor) WriteOutputs(g *planner.Graph, r *Result) ([]string, error) {
	units, err := groupOutputs(g.Outputs)
	if err != nil {
		return nil, err
	}
	if len(units) == 0 {
		return nil, nil
	}
	out := g.OutDir
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("output directory %s: %w", out, err)
	}
	if err := CleanOutputs(g); err != nil {
		return nil, err
	}
	// Refuse before writing anything, so a refusal changes nothing.
	for _, u := range units {
		if u.dir {
			if err := u.checkRunDir(filepath.Join(out, u.name)); err != nil {
				return nil, err
			}
		}
	}

	var written []writtenOutput
	defer func() {
		// Whatever is still staged was not swapped in: drop it.
		for _, u := range units {
			if u.staged != "" {
				os.RemoveAll(u.staged)
			}
		}
	}()
	for _, u := range units {
		if u.current(out, r) {
			// Already on disk byte for byte (uptodate.go): not rewritten.
			for _, o := range u.outputs {
				written = append(written, writtenOutput{o, outputSize(filepath.Join(out, o.Path))})
			}
			continue
		}
		w, err := u.stage(out, r)
		written = append(written, w...)
		if err != nil {
			return nil, err
		}
	}
	// Run directories first, results.json last: a reader that sees the new
	// results.json finds the runs it describes.
	// Each commit syncs the output directory after its rename.
	for _, dirs := range []bool{true, false} {
		for _, u := range units {
			if u.dir == dirs && u.staged != "" {
				if err := u.commit(out); err != nil {
					return nil, err
				}
			}
		}
	}

	paths := make([]string, 0, len(written))
	for _, w := range written {
		dst := filepath.Join(out, w.o.Path)
		// Literal outputs have no node; "write" names what happened.
		ev := Event{Event: EventOutput, Op: "write", Label: w.o.Path, Path: dst, Bytes: w.size}
		if w.o.Node != nil {
			ev.Node, ev.Op, ev.Label = w.o.Node.Key.String(), w.o.Node.Op, w.o.Node.Label
		}
		// A file in a run's directory belongs to that run, even when its
		// node is shared (a tokenizer copied into every run).
		if name, _, nested := strings.Cut(filepath.ToSlash(filepath.Clean(w.o.Path)), "/"); nested || w.o.Dir {
			ev.Runs = []string{name}
		} else if w.o.Node != nil {
			ev.Runs = w.o.Node.Runs
		}
		e.emit(ev)
		paths = append(paths, dst)
	}
	return paths, nil
}

// unit is what is replaced as a whole: a run's directory, or one file at
// the top of the output directory.
type unit struct {
	name    string // its name under the output directory
	dir     bool
	whole   bool // one bundle is the whole directory
	outputs []planner.Output
	staged  string              // the staging directory or temporary file, once written
	pending *atomicfile.Pending // a file unit's staged file
}

type writtenOutput struct {
	o    planner.Output
	size int64
}

// groupOutputs sorts outputs into units by the first element of their
// path, keeping the planner's order.
func groupOutputs(outputs []planner.Output) ([]*unit, error) {
	var units []*unit
	byName := map[string]*unit{}
	for _, o := range outputs {
		if !filepath.IsLocal(o.Path) {
			return nil, fmt.Errorf("output %q: not a path inside the output directory", o.Path)
		}
		name, rest, nested := strings.Cut(filepath.ToSlash(filepath.Clean(o.Path)), "/")
		if strings.HasPrefix(name, ".") {
			// Dot names are lrmc's staging and temporary files.
			return nil, fmt.Errorf("output %q: a name starting with a dot is reserved", o.Path)
		}
		dir := nested || o.Dir
		u, ok := byName[name]
		switch {
		case !ok:
			u = &unit{name: name, dir: dir, whole: rest == ""}
			byName[name] = u
			units = append(units, u)
		case !u.dir || !dir || u.whole || rest == "":
			return nil, fmt.Errorf("output %q: %s is written twice", o.Path, name)
		}
		u.outputs = append(u.outputs, o)
	}
	return units, nil
}

// checkRunDir accepts a missing run directory, or a real one that is
// empty or holds an output of this unit. The last condition keeps the
// whole-directory swap from deleting a directory lrmc did not write (a
// run named like an existing folder of an absolute output.dir).
func (u *unit) checkRunDir(path string) error {
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("output %s: %w", path, err)
	case st.Mode()&fs.ModeSymlink != 0:
		target, _ := os.Readlink(path)
		return fmt.Errorf("output %s: is a symbolic link (to %s); lrmc replaces a run's directory whole and does not write through links: remove the link, or make output.dir the directory it points into", path, target)
	case !st.IsDir():
		return fmt.Errorf("output %s: exists and is not a directory; move it away so the run's outputs can be written", path)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return fmt.Errorf("output %s: %w", path, err)
	}
	if len(entries) == 0 {
		return nil
	}
	for _, o := range u.outputs {
		_, rest, _ := strings.Cut(filepath.ToSlash(filepath.Clean(o.Path)), "/")
		first, _, _ := strings.Cut(rest, "/")
		for _, e := range entries {
			if e.Name() == first {
				return nil
			}
		}
	}
	return fmt.Errorf("output %s: exists and holds none of the run's outputs; lrmc replaces a run's directory whole, so it does not take over one it did not write: move it away or choose another output.dir", path)
}

// stage writes the unit where no reader looks yet.
func (u *unit) stage(out string, r *Result) ([]writtenOutput, error) {
	if !u.dir {
		o := u.outputs[0]
		var n int64
		p, err := atomicfile.Stage(filepath.Join(out, o.Path), 0o644, func(w io.Writer) (err error) {
			n, err = fillOutput(w, o, r)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("output: %w", err)
		}
		u.pending, u.staged = p, p.Name()
		return []writtenOutput{{o, n}}, nil
	}

	staging := filepath.Join(out, stagingName(u.name, os.Getpid()))
	// A directory of this name is this process's own, from an earlier
	// write that failed; start afresh.
	if err := os.RemoveAll(staging); err != nil {
		return nil, fmt.Errorf("output %s: %w", staging, err)
	}
	if err := os.Mkdir(staging, 0o755); err != nil {
		return nil, fmt.Errorf("output %s: %w", staging, err)
	}
	u.staged = staging
	var written []writtenOutput
	for _, o := range u.outputs {
		dst := filepath.Join(out, o.Path)
		_, rest, _ := strings.Cut(filepath.ToSlash(filepath.Clean(o.Path)), "/")
		path := filepath.Join(staging, filepath.FromSlash(rest))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return written, fmt.Errorf("output %s: %w", dst, err)
		}
		var n int64
		var err error
		if sum, ok := r.onDisk[o.Node]; ok && o.Node != nil {
			n, err = linkCurrent(dst, path, o.Dir, sum) // left unread: uptodate.go
		} else if o.Dir {
			var b []byte
			if b, err = nodeBytes(o, r); err == nil {
				n, err = extractBundle(b, path)
			}
		} else {
			n, err = writeOutputFile(path, o, r)
		}
		if err != nil {
			return written, fmt.Errorf("output %s: %w", dst, err)
		}
		written = append(written, writtenOutput{o, n})
	}
	// The files are synced; their directory entries must be too before the
	// swap makes them the run's outputs.
	err := filepath.WalkDir(staging, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return fsync.Path(path)
	})
	if err != nil {
		return written, fmt.Errorf("output %s: %w", filepath.Join(out, u.name), err)
	}
	return written, nil
}

// commit moves the staged unit into place.
func (u *unit) commit(out string) error {
	dst := filepath.Join(out, u.name)
	if !u.dir {
		if err := u.pending.Commit(); err != nil {
			return fmt.Errorf("output: %w", err)
		}
		u.staged = ""
		return nil
	}
	if err := swapDir(u.staged, dst, filepath.Join(out, oldName(u.name, os.Getpid()))); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	u.staged = ""
	return nil
}

// swapDir puts the directory staging at dst, which may exist (a real
// directory: checkRunDir said so), and removes the previous one. old is
// where the previous one waits if the swap takes two renames. A variable
// so that tests can take that fallback.
var swapDir = atomicfile.ReplaceDir

func nodeBytes(o planner.Output, r *Result) ([]byte, error) {
	if _, ok := r.onDisk[o.Node]; ok {
		// Left unread because the output held it, yet it no longer does.
		return nil, fmt.Errorf("node %s (%s): its output changed while apply ran; apply again to rewrite it", o.Node.Label, o.Node.Key.Short())
	}
	b, ok := r.Bytes(o.Node)
	if !ok || b == nil {
		return nil, fmt.Errorf("node %s (%s) has no result", o.Node.Label, o.Node.Key.Short())
	}
	return b, nil
}

// fillOutput writes a file output's bytes to w and returns their count.
func fillOutput(w io.Writer, o planner.Output, r *Result) (int64, error) {
	switch {
	case o.Node == nil:
		n, err := w.Write(o.Data)
		return int64(n), err
	case o.Node.IsSource():
		return copySource(w, o.Node)
	}
	b, err := nodeBytes(o, r)
	if err != nil {
		return 0, err
	}
	n, err := w.Write(b)
	return int64(n), err
}

// writeOutputFile writes a new file in a staging directory.
func writeOutputFile(path string, o planner.Output, r *Result) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	n, err := fillOutput(f, o, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// WriteFileAtomic writes b to path (mode 0644) with internal/atomicfile,
// creating path's directory if need be. A file that already holds exactly
// b is left as it is (see uptodate.go).
func WriteFileAtomic(path string, b []byte) error {
	if sameFile(path, func(w io.Writer) error { _, err := w.Write(b); return err }) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("output %s: %w", path, err)
	}
	if err := atomicfile.WriteBytes(path, 0o644, b); err != nil {
		return fmt.Errorf("output: %w", err)
	}
	return nil
}

// Names lrmc gives its own transient files in an output directory. Only
// these are ever removed by CleanOutputs.
var (
	// os.CreateTemp's "*" becomes a decimal number: ".results.json.tmp123".
	// The same pattern with ".old" is what lrmc before staging directories
	// set aside while replacing an hf/ directory.
	tempPattern    = regexp.MustCompile(`^\..+\.tmp[0-9]+(\.old)?$`)
	stagingPattern = regexp.MustCompile(`^\.(.+)\.staging-([0-9]+)$`)
	oldPattern     = regexp.MustCompile(`^\.(.+)\.old-([0-9]+)$`)
)

func stagingName(run string, pid int) string { return "." + run + ".staging-" + strconv.Itoa(pid) }
func oldName(run string, pid int) string     { return "." + run + ".old-" + strconv.Itoa(pid) }

// CleanOutputs removes what an apply that was killed while writing left in
// g's output directory: its temporary files (at the top and inside the
// run directories g writes), and its staging and set-aside directories,
// restoring a set-aside run directory whose replacement never arrived. It
// touches only names of lrmc's own patterns, and leaves those of a process
// that is still running. A missing output directory is not an error.
func CleanOutputs(g *planner.Graph) error {
	out := g.OutDir
	entries, err := os.ReadDir(out)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("output directory %s: %w", out, err)
	}
	var errs []error
	// Set-aside directories first: a staging directory is removed either
	// way, but an old one may have to become the run directory again.
	for _, pass := range []*regexp.Regexp{oldPattern, stagingPattern, tempPattern} {
		for _, e := range entries {
			m := pass.FindStringSubmatch(e.Name())
			if m == nil {
				continue
			}
			path := filepath.Join(out, e.Name())
			if pass == tempPattern {
				errs = append(errs, os.RemoveAll(path))
				continue
			}
			if pid, err := strconv.Atoi(m[2]); err == nil && pid != os.Getpid() && processAlive(pid) {
				continue // another apply is writing here now
			}
			if pass == oldPattern {
				run := filepath.Join(out, m[1])
				if _, err := os.Lstat(run); errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, os.Rename(path, run))
					continue
				}
			}
			errs = append(errs, os.RemoveAll(path))
		}
	}
	// Inside the run directories this graph writes (never through a
	// link: WalkDir does not follow them, not even at its root).
	seen := map[string]bool{}
	for _, o := range g.Outputs {
		name, _, nested := strings.Cut(filepath.ToSlash(filepath.Clean(o.Path)), "/")
		if (!nested && !o.Dir) || seen[name] || !filepath.IsLocal(name) {
			continue
		}
		seen[name] = true
		root := filepath.Join(out, name)
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if path != root && tempPattern.MatchString(d.Name()) {
				if err := os.RemoveAll(path); err != nil {
					return err
				}
				if d.IsDir() {
					return fs.SkipDir
				}
			}
			return nil
		})
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("output directory %s: cleaning up after an interrupted apply: %w", out, err)
	}
	return nil
}

// processAlive reports whether pid names a running process (one of another
// user counts: signalling it is refused, not impossible).
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}
