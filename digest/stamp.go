package digest

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Stamp identifies one version of a file without reading it: a digest
// taken while a file had a stamp still names the file's bytes as long as
// the stamp is the same. Size, mtime and inode are what users change
// (rewriting, copying over, replacing by rename); ctime also moves on
// writes that restore the mtime and on a rename, and cannot be set back,
// and the device tells apart equal inode numbers on different file systems.
type Stamp struct {
	Size    int64  `json:"size"`
	MtimeNs int64  `json:"mtime_ns"`
	CtimeNs int64  `json:"ctime_ns"`
	Inode   uint64 `json:"inode"`
	Dev     uint64 `json:"dev"`
}

func stampOf(st *unix.Stat_t) Stamp {
	return Stamp{
		Size:    st.Size,
		MtimeNs: st.Mtim.Nano(),
		CtimeNs: st.Ctim.Nano(),
		Inode:   st.Ino,
		Dev:     uint64(st.Dev),
	}
}

// Change says how t differs from s, the stamp it was expected to equal
// ("" when they are equal), in words for an error message.
func (s Stamp) Change(t Stamp) string {
	switch {
	case s == t:
		return ""
	case s.Inode != t.Inode || s.Dev != t.Dev:
		return "it was replaced by another file"
	case s.Size != t.Size:
		return fmt.Sprintf("its size changed from %d to %d bytes", s.Size, t.Size)
	default:
		return "it was modified"
	}
}

// NotRegularError is returned (wrapped) for a path that names something
// other than a regular file where a file's bytes are to be read: reading a
// named pipe or a device would block or never end.
type NotRegularError struct {
	Path string
	Mode fs.FileMode
}

func (e *NotRegularError) Error() string {
	return fmt.Sprintf("%s is not a regular file (%s)", e.Path, Kind(e.Mode))
}

// Kind names the type of file mode m describes, for messages: "a named
// pipe", "a directory", ….
func Kind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "an irregular file"
}

// CheckRegular returns a *NotRegularError unless m is a regular file's mode.
func CheckRegular(path string, m fs.FileMode) error {
	if m.IsRegular() {
		return nil
	}
	return &NotRegularError{Path: path, Mode: m}
}

// StatFile returns the stamp of the regular file at path, following
// symbolic links.
func StatFile(path string) (Stamp, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return Stamp{}, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	return checkStat(path, &st)
}

// OpenFile opens the regular file at path for reading, following symbolic
// links, and returns its stamp. It never blocks: a named pipe is opened
// without waiting for a writer and then refused, like a device or a
// directory.
func OpenFile(path string) (*os.File, Stamp, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, Stamp{}, err
	}
	s, err := FileStamp(f)
	if err != nil {
		f.Close()
		return nil, Stamp{}, err
	}
	return f, s, nil
}

// FileStamp returns the stamp of the open regular file f.
func FileStamp(f *os.File) (Stamp, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return Stamp{}, &fs.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	return checkStat(f.Name(), &st)
}

func checkStat(path string, st *unix.Stat_t) (Stamp, error) {
	if err := CheckRegular(path, fileMode(uint32(st.Mode))); err != nil {
		return Stamp{}, err
	}
	return stampOf(st), nil
}

// fileMode is the type bits of a stat mode as an fs.FileMode.
func fileMode(m uint32) fs.FileMode {
	switch m & unix.S_IFMT {
	case unix.S_IFREG:
		return 0
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	case unix.S_IFLNK:
		return fs.ModeSymlink
	}
	return fs.ModeIrregular
}
