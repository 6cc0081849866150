package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
)

// ErrDamaged matches (errors.Is) the errors of a store whose Badger files
// are damaged beyond what the per-entry hashes handle: Badger refused to
// open them, or panicked reading them.
var ErrDamaged = errors.New("cache is damaged")

// DamagedError reports damaged Badger files and the way out.
type DamagedError struct {
	Dir   string // the cache directory
	File  string // the damaged file when Badger named it, e.g. "000003.sst"
	Cause string // Badger's error or panic
}

func (e *DamagedError) Error() string {
	what := e.Cause
	if e.File != "" {
		what = e.File + ": " + e.Cause
	}
	return fmt.Sprintf("cache %s is damaged (%s); run lrmc cache verify --repair", e.Dir, what)
}

// Is makes errors.Is(err, ErrDamaged) true.
func (e *DamagedError) Is(target error) bool { return target == ErrDamaged }

// badgerFile finds the name of a Badger file in an error or panic text.
var badgerFile = regexp.MustCompile(`\b(\d{6}\.(?:sst|vlog|mem)|MANIFEST|KEYREGISTRY|DISCARD)\b`)

// fileHints name the file behind Badger errors that do not.
var fileHints = []struct {
	re   *regexp.Regexp
	file string
}{
	{regexp.MustCompile(`(?i)manifest`), "MANIFEST"},
	{regexp.MustCompile(`(?i)key registry|encryption key|sanity text`), "KEYREGISTRY"},
}

var memFid = regexp.MustCompile(`opening memtables err: while opening fid: (\d+)`)

func damaged(dir string, cause string) *DamagedError {
	file := badgerFile.FindString(cause)
	if m := memFid.FindStringSubmatch(cause); file == "" && m != nil {
		fid, _ := strconv.Atoi(m[1])
		file = fmt.Sprintf("%05d.mem", fid)
	}
	for _, h := range fileHints {
		if file == "" && h.re.MatchString(cause) {
			file = h.file
		}
	}
	return &DamagedError{Dir: dir, File: file, Cause: cause}
}

// recoverPanic turns a panic inside Badger (which asserts, rather than
// returns errors, on much of what a damaged file holds) into a DamagedError
// in *err. Every exported method that calls into Badger defers it, so a
// damaged cache is an error the command reports, never a crash. Panics on
// Badger's own goroutines (compactions) cannot be caught here; Open verifies
// every table's checksums so that those find sound tables.
func (s *Store) recoverPanic(err *error) {
	if r := recover(); r != nil {
		s.log.Debug("panic inside the cache", "panic", r, "stack", string(debug.Stack()))
		*err = damaged(s.dir, fmt.Sprint(r))
	}
}

// openFailure classifies an error of badger.Open: a missing permission is
// reported as it is, no space as ErrNoSpace, anything else as damage.
func openFailure(dir string, err error) error {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("cache: open %s: %w", dir, err)
	case isNoSpace(err):
		return &NoSpaceError{Dir: dir}
	}
	return damaged(dir, err.Error())
}

// checkTables opens every table file in the Badger directory path the way
// Badger will, on this goroutine: Badger opens tables on goroutines of its
// own, where an assert on a damaged table's index kills the process before
// Open can return. A table that fails here makes a *DamagedError naming it.
// (Block checksums are then verified by Badger itself: Options strict.)
func checkTables(dir, path string) error {
	names, err := filepath.Glob(filepath.Join(path, "*.sst"))
	if err != nil {
		return nil
	}
	topt := tableCheckOptions()
	for _, name := range names {
		if err := checkTable(name, topt); err != nil {
			return &DamagedError{Dir: dir, File: filepath.Base(name), Cause: err.Error()}
		}
	}
	return nil
}

// tableCheckOptions are the table options lrmc's tables were written with
// (Badger's defaults), without checksum verification.
func tableCheckOptions() table.Options {
	def := badger.DefaultOptions("")
	return table.Options{
		ReadOnly:           true,
		BlockSize:          def.BlockSize,
		BloomFalsePositive: def.BloomFalsePositive,
		Compression:        def.Compression,
		ChkMode:            options.NoVerification,
	}
}

func checkTable(name string, topt table.Options) (err error) {
	mf, err := z.OpenMmapFile(name, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			mf.Close(-1)
			err = fmt.Errorf("unreadable table: %v", firstLine(fmt.Sprint(r)))
		}
	}()
	t, err := table.OpenTable(mf, topt) // closes mf on error
	if err != nil {
		return err
	}
	return t.MmapFile.Close(-1) // not DecrRef, which deletes the file
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
