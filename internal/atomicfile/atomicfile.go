// Package atomicfile replaces a file in one step: the new content is
// written to a temporary file in the destination's directory (so on the
// same filesystem), synced, given its mode and renamed over the
// destination, and the directory is synced so that the rename survives a
// crash. A reader, and a crash at any point, sees either the old file or
// the complete new one; a failure or a panic while writing removes the
// temporary file and leaves the destination as it was. ReplaceDir does the
// same for a directory tree built beside its destination.
package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"

	"lrmc/internal/fsync"
)

// bufferSize is the write buffer: large enough that streaming encoders
// (many small header writes, then tensor data) make few system calls.
const bufferSize = 1 << 20

// Option changes where or how the temporary file is made.
type Option func(*config)

type config struct {
	pattern string // os.CreateTemp's pattern; "" for DefaultPattern's
	dir     string // where the temporary file goes; "" for the destination's directory
	noSync  bool
}

// Pattern names the temporary file with os.CreateTemp's pattern (the last
// "*" becomes a random number), for a directory whose sweeper recognises
// its own names. The default is DefaultPattern's.
func Pattern(pattern string) Option { return func(c *config) { c.pattern = pattern } }

// TempDir makes the temporary file in dir instead of the destination's
// directory; dir must be on the destination's filesystem.
func TempDir(dir string) Option { return func(c *config) { c.dir = dir } }

// NoSync skips both fsyncs (the file's and the directory's), for a caller
// that makes many files durable together later: the rename is still
// atomic for readers, but a power loss may leave a short file.
func NoSync() Option { return func(c *config) { c.noSync = true } }

// DefaultPattern is the temporary file's pattern for destination path:
// ".NAME.tmp*", which os.CreateTemp makes ".NAME.tmp<digits>" (the
// executor's CleanOutputs removes what a killed process left by this name).
func DefaultPattern(path string) string { return "." + filepath.Base(path) + ".tmp*" }

// Write replaces path with what write writes, through a buffer, and gives
// it mode perm. The directory of path must exist. Every error names path.
func Write(path string, perm fs.FileMode, write func(w io.Writer) error, opts ...Option) error {
	p, err := Stage(path, perm, write, opts...)
	if err != nil {
		return err
	}
	return p.Commit()
}

// WriteBytes replaces path with b (written unbuffered: it is one write).
func WriteBytes(path string, perm fs.FileMode, b []byte, opts ...Option) error {
	p, err := stage(path, perm, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	}, false, opts)
	if err != nil {
		return err
	}
	return p.Commit()
}

// Pending is a complete, synced temporary file not yet renamed into
// place: Stage's result, for a caller that commits several files in an
// order of its own. Exactly one of Commit and Discard must follow.
type Pending struct {
	tmp, path string
	noSync    bool
}

// Stage writes the temporary file as Write does, without the rename.
func Stage(path string, perm fs.FileMode, write func(w io.Writer) error, opts ...Option) (*Pending, error) {
	return stage(path, perm, write, true, opts)
}

func stage(path string, perm fs.FileMode, write func(w io.Writer) error, buffered bool, opts []Option) (p *Pending, err error) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	if c.pattern == "" {
		c.pattern = DefaultPattern(path)
	}
	if c.dir == "" {
		c.dir = filepath.Dir(path)
	}
	f, err := os.CreateTemp(c.dir, c.pattern)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	// On any failure, panics included, nothing but the destination's old
	// content may remain.
	defer func() {
		if r := recover(); r != nil {
			buf := make([]byte, 4096)
			buf = buf[:runtime.Stack(buf, false)]
			err = fmt.Errorf("write %s: panic: %v\n%s", path, r, buf)
		}
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			p = nil
		}
	}()
	if buffered {
		bw := bufio.NewWriterSize(f, bufferSize)
		err = write(bw)
		if err == nil {
			err = bw.Flush()
		}
	} else {
		err = write(f)
	}
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	// CreateTemp makes the file 0600 (less the umask); the destination
	// gets the mode asked for, whatever the umask.
	if perm != 0o600 {
		if err = f.Chmod(perm); err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
	}
	if !c.noSync {
		if err = f.Sync(); err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err = f.Close(); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return &Pending{tmp: f.Name(), path: path, noSync: c.noSync}, nil
}

// Name is the temporary file's path.
func (p *Pending) Name() string { return p.tmp }

// Commit renames the temporary file over the destination and syncs the
// destination's directory. On a failed rename the temporary file is
// removed.
func (p *Pending) Commit() error {
	if err := os.Rename(p.tmp, p.path); err != nil {
		os.Remove(p.tmp)
		return fmt.Errorf("write %s: %w", p.path, err)
	}
	if p.noSync {
		return nil
	}
	if err := syncDir(filepath.Dir(p.path)); err != nil {
		return fmt.Errorf("write %s: the file is in place, but syncing its directory failed: %w", p.path, err)
	}
	return nil
}

// Discard removes the temporary file; the destination is untouched.
func (p *Pending) Discard() error {
	if err := os.Remove(p.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write %s: remove the temporary file: %w", p.path, err)
	}
	return nil
}

// syncDir makes a rename in dir durable. Some filesystems cannot sync a
// directory (they answer EINVAL or ENOTSUP); the file's data is already
// synced there, so that is no failure.
func syncDir(dir string) error {
	err := fsync.Path(dir)
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		return nil
	}
	return err
}
