package safetensors

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"lrmc/internal/atomicfile"
	"lrmc/kernels/internal/stored"
)

// Open maps the file at path read-only and decodes its header. The tensors
// alias the mapping: they are paged in from the page cache on first touch and
// never copied onto the Go heap. They become invalid once Close is called.
//
// The length prefix is checked from an 8-byte read before the file is
// mapped, so a hostile length costs nothing; the header itself is parsed
// from the mapping, which pages in only the header's bytes.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer fh.Close() // the mapping outlives the descriptor
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	size := st.Size()
	var prefix [8]byte
	if _, err := io.ReadFull(fh, prefix[:]); err != nil {
		return nil, &FormatError{File: path, Msg: fmt.Sprintf("%d bytes is too short for the 8-byte header length", size)}
	}
	if n := binary.LittleEndian.Uint64(prefix[:]); n > MaxHeaderSize || n > uint64(size-8) {
		// Decode would say the same, but only after mapping the file.
		return decode(prefix[:], path)
	}
	if size != int64(int(size)) {
		return nil, fmt.Errorf("safetensors: %s: %d bytes do not fit in the address space", path, size)
	}
	// Tensor data is checked against the file's size; a sparse file passes
	// that while holding nothing, and widening it would allocate its size.
	if err := stored.Check(path, st); err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	m, err := unix.Mmap(int(fh.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: mmap: %w", path, err)
	}
	f, err := decode(m, path)
	if err != nil {
		_ = unix.Munmap(m)
		return nil, err
	}
	f.mapping = m
	return f, nil
}

// Close releases the memory map of a file from Open; after it, the tensors'
// Data must not be touched. It is a no-op for a File from Decode.
func (f *File) Close() error {
	if f.mapping == nil {
		return nil
	}
	m := f.mapping
	f.mapping, f.tensors, f.byName = nil, nil, nil
	if err := unix.Munmap(m); err != nil {
		return fmt.Errorf("safetensors: %s: munmap: %w", f.path, err)
	}
	return nil
}

// WriteFile writes tensors to path atomically (internal/atomicfile), so
// that readers (and a crash) see either the old file or the complete new
// one.
func WriteFile(path string, tensors []Tensor, metadata map[string]string) error {
	return writeAtomic(path, func(w io.Writer) error { return Write(w, tensors, metadata) })
}

// writeAtomic writes a file of this package: mode 0644, as a checkpoint is
// ordinary data.
func writeAtomic(path string, write func(io.Writer) error) error {
	if err := atomicfile.Write(path, 0o644, write); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}
