// Package stored checks that a model file really holds the bytes its size
// claims. A sparse file (made with truncate or a seek past the end) has the
// size of a 7B checkpoint while storing almost nothing; its header and size
// agree, so the readers' size checks pass, and loading it would allocate
// tens of GB to hold zeros read from holes.
package stored

import (
	"fmt"
	"os"
)

// minCheckedSize is the smallest file checked: a small file may be stored
// inline in filesystem metadata (blocks reported 0), and a small one costs
// little to load anyway.
const minCheckedSize = 64 << 20

// minStoredFraction: a file must store at least 1/minStoredFraction of its
// size. Weights barely compress, so even on a compressing filesystem (ZFS,
// btrfs with compression), whose block counts are the compressed size, a
// real checkpoint stores well above a quarter of its size; a sparse fake
// stores a few KiB.
const minStoredFraction = 4

// Check returns an error when the file described by fi, at path, is sparse
// enough that its size cannot be real data. Where the platform reports no
// block count it says nothing.
func Check(path string, fi os.FileInfo) error {
	size := fi.Size()
	if size < minCheckedSize {
		return nil
	}
	n, ok := storedBytes(fi)
	// Some filesystems (FUSE and network ones) report no blocks at all; a
	// sparse file with a header written has at least one block, so 0 is
	// taken as "not counted" rather than as a fake.
	if !ok || n == 0 {
		return nil
	}
	if n*minStoredFraction < size {
		return fmt.Errorf("%s: sparse file: %d bytes long but only %d stored on disk; its header describes weights the file does not hold", path, size, n)
	}
	return nil
}
