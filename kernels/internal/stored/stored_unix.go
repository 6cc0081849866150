//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package stored

import (
	"os"
	"syscall"
)

// storedBytes is the space the file occupies on disk: st_blocks counts
// 512-byte units on every system built here.
func storedBytes(fi os.FileInfo) (int64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int64(st.Blocks) * 512, true
}
