package cache

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Badger writes its value log, write-ahead log and tables through memory
// maps of files it has sized with ftruncate, i.e. sparse files: when the
// file system cannot supply a page that a write touches, the process gets
// SIGBUS instead of ENOSPC. The store therefore checks free space before it
// writes and refuses a write that could reach the end of the disk.
const (
	// spaceHeadroom is what a Put needs beyond its value's bytes: a
	// memtable flush it may trigger writes an L0 table of up to
	// memTableSize (values under valueThreshold live in the LSM tree), and the
	// write-ahead log, the discard-stats file and a compaction's new tables
	// touch a few MiB more.
	spaceHeadroom = memTableSize + 4<<20
	// openHeadroom is what Open needs: Badger writes headers into a new
	// write-ahead log and value-log file, the discard-stats file, the
	// MANIFEST and the format record, and flushes every write-ahead log it
	// replays into a table of up to memTableSize; Close flushes the
	// memtable too. The same as a Put's headroom, so that a store Open
	// accepts can always be closed.
	openHeadroom = spaceHeadroom
)

// ErrNoSpace matches (errors.Is) a write refused or failed for want of disk
// space. The store stays usable: what was stored before is intact.
var ErrNoSpace = errors.New("no space left")

// NoSpaceError reports a write that the disk holding the cache cannot take.
type NoSpaceError struct {
	Dir        string
	Need, Free uint64 // bytes; zero when the write failed with ENOSPC unchecked
	Hint       string // the way out; "" for the usual one
}

func (e *NoSpaceError) Error() string {
	hint := e.Hint
	if hint == "" {
		hint = "free space or run lrmc cache gc"
	}
	if e.Need == 0 {
		return fmt.Sprintf("cache %s: no space left; %s", e.Dir, hint)
	}
	return fmt.Sprintf("cache %s: no space left (need ≈%s, %s free); %s", e.Dir, mib(e.Need), mib(e.Free), hint)
}

// Is makes errors.Is(err, ErrNoSpace) true.
func (e *NoSpaceError) Is(target error) bool { return target == ErrNoSpace }

func mib(n uint64) string { return fmt.Sprintf("%d MiB", (n+1<<20-1)>>20) }

// freeSpace returns the bytes available to an unprivileged writer on the
// file system holding dir; a variable so tests can fake a full disk.
var freeSpace = func(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// ensureSpace returns a *NoSpaceError when dir's file system has less than
// need bytes free. A failing statfs is not a verdict: the write proceeds.
func ensureSpace(dir string, need uint64) error {
	free, err := freeSpace(dir)
	if err != nil || free >= need {
		return nil
	}
	return &NoSpaceError{Dir: dir, Need: need, Free: free}
}

// checkSpace is ensureSpace for a Put of size bytes.
func (s *Store) checkSpace(size int64) error {
	return ensureSpace(s.dir, uint64(size)+spaceHeadroom)
}

// isNoSpace reports ENOSPC, which Badger sometimes wraps without %w.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || (err != nil && strings.Contains(err.Error(), syscall.ENOSPC.Error()))
}

// writeError turns a write that failed for want of space into a
// *NoSpaceError for size bytes; other errors pass through.
func (s *Store) writeError(err error, size int64) error {
	if !isNoSpace(err) {
		return err
	}
	ne := &NoSpaceError{Dir: s.dir, Need: uint64(size) + spaceHeadroom}
	ne.Free, _ = freeSpace(s.dir)
	return ne
}
