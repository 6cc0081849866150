// Package digest names content by its BLAKE3-256 hash.
//
// A Digest is the identity of bytes throughout lrmc: the planner keys nodes by
// digests of their definitions and inputs, and the cache stores results under
// those keys. BLAKE3 is used because it is the fastest cryptographic hash
// available here in pure Go (about 3.2 GB/s on one core), so hashing
// multi-gigabyte model files stays cheap next to loading them.
package digest

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/zeebo/blake3"
)

// Size is the length of a Digest in bytes.
const Size = 32

// Digest is a BLAKE3-256 hash. The zero value means "no digest".
type Digest [Size]byte

// Of returns the digest of b.
func Of(b []byte) Digest {
	return blake3.Sum256(b)
}

// String returns the digest as 64 lowercase hex characters.
func (d Digest) String() string {
	return hex.EncodeToString(d[:])
}

// Short returns the first 12 hex characters, enough to tell entries apart in
// logs and plans (48 bits) while staying readable.
func (d Digest) Short() string {
	return hex.EncodeToString(d[:6])
}

// IsZero reports whether d is the zero value.
func (d Digest) IsZero() bool {
	return d == Digest{}
}

// ErrSyntax is returned (wrapped) by Parse for text that is not a digest.
var ErrSyntax = errors.New("not a digest")

// Parse parses 64 hex characters (either case) into a Digest.
func Parse(s string) (Digest, error) {
	var d Digest
	if len(s) != 2*Size {
		return d, fmt.Errorf("parse digest %q: %w: want %d hex characters, got %d", s, ErrSyntax, 2*Size, len(s))
	}
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		return Digest{}, fmt.Errorf("parse digest %q: %w: %v", s, ErrSyntax, err)
	}
	return d, nil
}

// MarshalText encodes d as in String, so digests read naturally in JSON.
func (d Digest) MarshalText() ([]byte, error) {
	out := make([]byte, 2*Size)
	hex.Encode(out, d[:])
	return out, nil
}

// UnmarshalText decodes text produced by MarshalText.
func (d *Digest) UnmarshalText(text []byte) error {
	p, err := Parse(string(text))
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// Hasher computes a Digest over a stream of writes. It implements io.Writer;
// Write never fails.
type Hasher struct {
	h *blake3.Hasher
}

// New returns a Hasher with nothing written.
func New() *Hasher {
	return &Hasher{h: blake3.New()}
}

// Write adds p to the hashed stream.
func (h *Hasher) Write(p []byte) (int, error) {
	return h.h.Write(p)
}

// Digest returns the digest of everything written so far. It does not change
// the state, so writing may continue.
func (h *Hasher) Digest() Digest {
	var d Digest
	h.h.Sum(d[:0])
	return d
}

// Reset discards everything written.
func (h *Hasher) Reset() {
	h.h.Reset()
}

// bufSize is the read size for File and Reader. BLAKE3 hashes independent
// 1 KiB chunks in parallel SIMD lanes, so large reads keep all lanes busy;
// io.Copy's 32 KiB buffer would cost a syscall per 10 µs of hashing.
const bufSize = 1 << 20

// Reader hashes everything r yields and returns the digest and byte count.
func Reader(r io.Reader) (Digest, int64, error) {
	h := New()
	buf := make([]byte, bufSize)
	var n int64
	for {
		k, err := r.Read(buf)
		h.Write(buf[:k])
		n += int64(k)
		if err == io.EOF {
			return h.Digest(), n, nil
		}
		if err != nil {
			return Digest{}, n, err
		}
	}
}

// File streams the regular file at path through the hash. Anything else
// (a named pipe, a device, a directory) is refused with a
// *NotRegularError rather than read, which could block or never end.
func File(path string) (Digest, error) {
	d, _, err := FileStamped(path)
	return d, err
}

// FileStamped is File that also returns the stamp of the file it hashed, the
// same before and after reading it: a file written to while it is hashed is
// an error, since the bytes hashed may mix two versions.
func FileStamped(path string) (Digest, Stamp, error) {
	f, before, err := OpenFile(path)
	if err != nil {
		return Digest{}, Stamp{}, fmt.Errorf("digest: %w", err)
	}
	defer f.Close()
	d, _, err := Reader(f)
	if err != nil {
		return Digest{}, Stamp{}, fmt.Errorf("digest: read %s: %w", path, err)
	}
	after, err := FileStamp(f)
	if err != nil {
		return Digest{}, Stamp{}, fmt.Errorf("digest: %w", err)
	}
	if change := before.Change(after); change != "" {
		return Digest{}, Stamp{}, fmt.Errorf("digest: %s changed while it was being hashed: %s", path, change)
	}
	return d, before, nil
}
