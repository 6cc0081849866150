package cache

import (
	"encoding/binary"

	"lrmc/digest"
)

// Key layout of the Badger database:
//
//	m/<key>             JSON Meta; its presence is the entry's existence
//	c/<key><index BE32> one chunk of the value
//	f/<absolute path>   FileDigest memo (JSON fileMemo)
//	a/<recipe path>     sealed JSON Apply: what the recipe's latest apply needs
//	d/<kind>/<digest>   sealed derived memo (see Derived)
//	format              formatVersion
//
// Chunk keys sort by entry and then by index, so one prefix iteration (or
// one DropPrefix) covers all of an entry's chunks.
const (
	metaPrefix    = "m/"
	chunkPrefix   = "c/"
	filePrefix    = "f/"
	applyPrefix   = "a/"
	derivedPrefix = "d/"
)

func metaKey(k digest.Digest) []byte {
	return append([]byte(metaPrefix), k[:]...)
}

func chunksOf(k digest.Digest) []byte {
	return append([]byte(chunkPrefix), k[:]...)
}

func chunkKey(k digest.Digest, i int) []byte {
	return binary.BigEndian.AppendUint32(chunksOf(k), uint32(i))
}

// parseChunkKey splits a chunk key; ok is false for a malformed one.
func parseChunkKey(b []byte) (k digest.Digest, i int, ok bool) {
	if len(b) != len(chunkPrefix)+digest.Size+4 {
		return k, 0, false
	}
	copy(k[:], b[len(chunkPrefix):])
	return k, int(binary.BigEndian.Uint32(b[len(chunkPrefix)+digest.Size:])), true
}
