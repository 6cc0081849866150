package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Leftover is something a writer of a remote store left behind when it died
// mid-write: never an entry, only its unfinished material.
type Leftover struct {
	URL      string    // where it is: file:///DIR/ab/.tmp-123 or s3://BUCKET/PREFIX/KEY (upload ID)
	What     string    // "temporary file" or "incomplete multipart upload"
	Size     int64     // bytes it holds, when known (-1 when not)
	Modified time.Time // when it was last written (started, for an upload)
}

// RemoteSweeper is a Remote that can remove its crashed writers' leftovers.
//
// A writer that is killed between creating its temporary file (or starting
// its multipart upload) and renaming it into place (completing it) leaves
// bytes no reader ever sees: harmless, but they accumulate forever. Only
// leftovers older than a cut-off are removed, so that writers still at work
// (a large value can take minutes to upload) keep theirs.
type RemoteSweeper interface {
	Remote
	// Sweep removes the leftovers last written before cutoff, or with
	// dryRun only lists them, and returns them.
	Sweep(cutoff time.Time, dryRun bool) ([]Leftover, error)
}

// remoteTempPrefix starts the name of every temporary file a FileRemote
// writer creates beside its entry (see writeFileAtomic).
const remoteTempPrefix = ".tmp-"

// Sweep implements RemoteSweeper: it removes DIR/ab/.tmp-* files last
// modified before cutoff. Entries are never touched, whatever their age.
func (r *FileRemote) Sweep(cutoff time.Time, dryRun bool) ([]Leftover, error) {
	shards, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, fmt.Errorf("cache: remote file://%s: sweep: %w", r.dir, err)
	}
	var out []Leftover
	var errs []error
	for _, sh := range shards {
		if !sh.IsDir() || len(sh.Name()) != 2 {
			continue // not a shard directory of this store
		}
		dir := filepath.Join(r.dir, sh.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range files {
			if !strings.HasPrefix(f.Name(), remoteTempPrefix) || !f.Type().IsRegular() {
				continue
			}
			fi, err := f.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // its writer finished (renamed it) or gave up meanwhile
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !fi.ModTime().Before(cutoff) {
				continue
			}
			p := filepath.Join(dir, f.Name())
			if !dryRun {
				if err := os.Remove(p); err != nil {
					if !errors.Is(err, fs.ErrNotExist) {
						errs = append(errs, err)
					}
					continue
				}
			}
			out = append(out, Leftover{URL: "file://" + p, What: "temporary file", Size: fi.Size(), Modified: fi.ModTime()})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return out, fmt.Errorf("cache: remote file://%s: sweep: %w", r.dir, err)
	}
	return out, nil
}
