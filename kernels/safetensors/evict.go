package safetensors

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Evict tells the kernel that the mapped pages under b are not needed soon:
// they leave the process's resident set (the page cache keeps them, so the
// next touch reads them back without going to disk if memory allows). It
// is a hint for reading a model block by block: the data under b is
// unchanged and stays readable. Only whole pages inside b are dropped, and
// only when b lies inside this file's mapping; it reports whether it did,
// and never touches memory it does not own (advising away a heap page would
// zero it).
func (f *File) Evict(b []byte) bool {
	if f.mapping == nil || len(b) == 0 {
		return false
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(f.mapping)))
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	hi := lo + uintptr(len(b))
	if lo < base || hi > base+uintptr(len(f.mapping)) {
		return false
	}
	// The mapping starts on a page boundary; round b inward so that pages
	// shared with a neighbouring tensor stay resident.
	page := uintptr(os.Getpagesize())
	start := (lo - base + page - 1) &^ (page - 1)
	end := (hi - base) &^ (page - 1)
	if end <= start {
		return true
	}
	// MADV_DONTNEED on a read-only shared file mapping only unmaps the pages
	// (they are re-read on the next access); it cannot lose data.
	_ = unix.Madvise(f.mapping[start:end], unix.MADV_DONTNEED)
	return true
}

// Evict is File.Evict on whichever shard maps b.
func (ix *Index) Evict(b []byte) bool {
	for _, f := range ix.shards {
		if f.Evict(b) {
			return true
		}
	}
	return false
}
