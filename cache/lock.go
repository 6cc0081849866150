package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// lockName is the process lock inside the cache directory. Badger keeps its
// own LOCK file in its subdirectory; ours is taken first and carries the
// holder's identity so that a refused user learns who to wait for.
const lockName = "lrmc.lock"

// ErrLocked matches (errors.Is) the error Open returns when another process,
// or another Store in this process, holds the cache.
var ErrLocked = errors.New("cache is in use")

// Holder identifies the process holding a cache.
type Holder struct {
	PID     int       `json:"pid"`
	Command string    `json:"command"`
	Since   time.Time `json:"since"`
}

// LockedError reports a cache held by someone else.
type LockedError struct {
	Dir    string
	Holder Holder        // zero when the lock file could not be read
	Waited time.Duration // how long Open waited before giving up; 0 without Options.Wait
}

func (e *LockedError) holder() string {
	if e.Holder.PID == 0 {
		return "another process"
	}
	return fmt.Sprintf("pid %d (%s) since %s", e.Holder.PID, e.Holder.Command, e.Holder.Since.UTC().Format(time.RFC3339))
}

func (e *LockedError) Error() string {
	who := e.holder()
	if e.Waited > 0 {
		return fmt.Sprintf("cache %s is still in use by %s after waiting %s", e.Dir, who, e.Waited)
	}
	return fmt.Sprintf("cache %s is in use by %s; pass --wait to wait for it", e.Dir, who)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// processLock is an exclusive flock(2) on dir/lrmc.lock. flock locks belong to
// the open file description, so a second Open in the same process conflicts
// just like another process does, and the kernel drops the lock when the
// holder dies: there is no stale lock to clean up.
type processLock struct {
	f *os.File
}

// waitPoll bounds how often a waiting Open retries the lock.
const waitPoll = 250 * time.Millisecond

func acquireLock(dir string, opts Options, log hclog.Logger) (*processLock, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cache: open lock file: %w", err)
	}
	start := time.Now()
	logged := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if err == unix.EINTR {
			continue
		}
		if err != unix.EWOULDBLOCK {
			f.Close()
			return nil, fmt.Errorf("cache: lock %s: %w", path, err)
		}
		locked := &LockedError{Dir: dir, Holder: readHolder(path)}
		if !opts.Wait {
			f.Close()
			return nil, locked
		}
		waited := time.Since(start)
		if opts.WaitTimeout > 0 && waited >= opts.WaitTimeout {
			f.Close()
			locked.Waited = waited.Round(time.Millisecond)
			return nil, locked
		}
		if !logged {
			// Warn: the default level, so a user who passed --wait sees
			// what the command is waiting for.
			bound := "as long as it takes"
			if opts.WaitTimeout > 0 {
				bound = "up to " + opts.WaitTimeout.String()
			}
			log.Warn(fmt.Sprintf("waiting (%s) for the cache %s, held by %s", bound, dir, locked.holder()))
			logged = true
		}
		sleep := waitPoll
		if opts.WaitTimeout > 0 {
			sleep = min(sleep, opts.WaitTimeout-waited)
		}
		time.Sleep(sleep)
	}

	h := Holder{PID: os.Getpid(), Command: strings.Join(os.Args, " "), Since: time.Now().UTC().Truncate(time.Second)}
	b, _ := json.Marshal(h) // cannot fail: plain fields
	if err := writeHolder(f, append(b, '\n')); err != nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
		if isNoSpace(err) {
			free, _ := freeSpace(dir)
			return nil, &NoSpaceError{Dir: dir, Need: openHeadroom, Free: free}
		}
		return nil, fmt.Errorf("cache: record lock holder in %s: %w", path, err)
	}
	return &processLock{f: f}, nil
}

func writeHolder(f *os.File, b []byte) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt(b, 0)
	return err
}

// readHolder reads the holder record; a zero Holder means it was unreadable,
// e.g. read in the instant between the holder's flock and its write.
func readHolder(path string) Holder {
	var h Holder
	b, err := os.ReadFile(path)
	if err != nil {
		return Holder{}
	}
	if json.Unmarshal(b, &h) != nil {
		return Holder{}
	}
	return h
}

// release clears the holder record while still holding the lock, so a reader
// never sees a stale holder, then unlocks.
func (l *processLock) release() error {
	if l == nil { // a Store that Repair opens under its own lock
		return nil
	}
	err := l.f.Truncate(0)
	if e := unix.Flock(int(l.f.Fd()), unix.LOCK_UN); err == nil {
		err = e
	}
	if e := l.f.Close(); err == nil {
		err = e
	}
	if err != nil {
		return fmt.Errorf("cache: release lock: %w", err)
	}
	return nil
}
