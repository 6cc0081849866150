package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"os"
	"sort"

	"golang.org/x/sys/unix"

	"lrmc/kernels/internal/stored"
)

// maxNesting bounds arrays of arrays. The format allows them; no converter
// writes more than one level, and the limit keeps a hostile file from
// recursing without end.
const maxNesting = 8

// Open maps the file at path read-only and parses it. Tensor data aliases
// the mapping (read lazily from the page cache, never copied to the heap)
// and is valid until Close.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	defer fh.Close() // the mapping outlives the descriptor
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	size := st.Size()
	if size == 0 || size != int64(int(size)) {
		return decode(nil, path) // reports the file as truncated
	}
	// Tensor data is checked against the file's size; a sparse file passes
	// that while holding nothing, and converting it would allocate its size.
	if err := stored.Check(path, st); err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	m, err := unix.Mmap(int(fh.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("gguf: %s: mmap: %w", path, err)
	}
	f, err := decode(m, path)
	if err != nil {
		_ = unix.Munmap(m)
		return nil, err
	}
	f.mapping = m
	return f, nil
}

// Close releases the memory map of a file from Open; tensor data must not be
// touched afterwards. It is a no-op for a File from Decode.
func (f *File) Close() error {
	if f.mapping == nil {
		return nil
	}
	m := f.mapping
	f.mapping, f.Tensors, f.tensors = nil, nil, nil
	if err := unix.Munmap(m); err != nil {
		return fmt.Errorf("gguf: %s: munmap: %w", f.path, err)
	}
	return nil
}

// Decode parses a GGUF file held in memory. Tensor data aliases b.
func Decode(b []byte) (*File, error) { return decode(b, "") }

// decoder reads little-endian fields with a sticky error: after the first
// failure every read returns zero, and the error keeps the part of the file
// (where) and the byte offset at which it happened.
type decoder struct {
	b     []byte
	off   uint64
	path  string
	where string
	err   error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = &FormatError{File: d.path, Where: d.where, Offset: int64(d.off), Msg: fmt.Sprintf(format, args...)}
	}
}

func (d *decoder) left() uint64 { return uint64(len(d.b)) - d.off }

func (d *decoder) take(n uint64, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n > d.left() {
		d.fail("truncated: %s needs %d bytes, %d left", what, n, d.left())
		return nil
	}
	s := d.b[d.off : d.off+n]
	d.off += n
	return s
}

func (d *decoder) u8(what string) uint8 {
	if s := d.take(1, what); s != nil {
		return s[0]
	}
	return 0
}

func (d *decoder) u16(what string) uint16 {
	if s := d.take(2, what); s != nil {
		return binary.LittleEndian.Uint16(s)
	}
	return 0
}

func (d *decoder) u32(what string) uint32 {
	if s := d.take(4, what); s != nil {
		return binary.LittleEndian.Uint32(s)
	}
	return 0
}

func (d *decoder) u64(what string) uint64 {
	if s := d.take(8, what); s != nil {
		return binary.LittleEndian.Uint64(s)
	}
	return 0
}

func (d *decoder) str(what string) string {
	n := d.u64(what + " length")
	return string(d.take(n, what))
}

func (d *decoder) bool(what string) bool {
	v := d.u8(what)
	if v > 1 {
		d.off--
		d.fail("bool byte %d is neither 0 nor 1", v)
	}
	return v == 1
}

// minSize is the fewest bytes one value of type t occupies; it lets array
// lengths be checked against the bytes left before anything is allocated.
func minSize(t ValueType) uint64 {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64, TypeString:
		return 8
	case TypeArray:
		return 12
	}
	return 0
}

func (d *decoder) value(t ValueType, depth int) any {
	switch t {
	case TypeUint8:
		return d.u8("uint8 value")
	case TypeInt8:
		return int8(d.u8("int8 value"))
	case TypeUint16:
		return d.u16("uint16 value")
	case TypeInt16:
		return int16(d.u16("int16 value"))
	case TypeUint32:
		return d.u32("uint32 value")
	case TypeInt32:
		return int32(d.u32("int32 value"))
	case TypeFloat32:
		return math.Float32frombits(d.u32("float32 value"))
	case TypeBool:
		return d.bool("bool value")
	case TypeString:
		return d.str("string value")
	case TypeUint64:
		return d.u64("uint64 value")
	case TypeInt64:
		return int64(d.u64("int64 value"))
	case TypeFloat64:
		return math.Float64frombits(d.u64("float64 value"))
	case TypeArray:
		start := d.off
		et := ValueType(d.u32("array element type"))
		n := d.u64("array length")
		if d.err != nil {
			return nil
		}
		if minSize(et) == 0 {
			d.off = start
			d.fail("array of unknown value type %d", uint32(et))
			return nil
		}
		if et == TypeArray && depth+1 >= maxNesting {
			d.fail("arrays nested deeper than %d", maxNesting)
			return nil
		}
		if n > d.left()/minSize(et) {
			d.fail("truncated: array of %d %s needs at least %d bytes per element, %d bytes left", n, et, minSize(et), d.left())
			return nil
		}
		return d.array(et, int(n), depth)
	}
	d.fail("unknown value type %d", uint32(t))
	return nil
}

// fill reads n elements. It grows the slice as elements arrive rather than
// trusting n up front: a forged count passes the bytes-left bound when the
// bytes after it are tensor data, and must fail at the first bad element,
// not after reserving gigabytes.
func fill[T any](d *decoder, n int, read func() T) []T {
	out := make([]T, 0, min(n, 1<<16))
	for range n {
		v := read()
		if d.err != nil {
			return nil
		}
		out = append(out, v)
	}
	return out
}

func (d *decoder) array(et ValueType, n, depth int) any {
	switch et {
	case TypeUint8:
		return fill(d, n, func() uint8 { return d.u8("array element") })
	case TypeInt8:
		return fill(d, n, func() int8 { return int8(d.u8("array element")) })
	case TypeUint16:
		return fill(d, n, func() uint16 { return d.u16("array element") })
	case TypeInt16:
		return fill(d, n, func() int16 { return int16(d.u16("array element")) })
	case TypeUint32:
		return fill(d, n, func() uint32 { return d.u32("array element") })
	case TypeInt32:
		return fill(d, n, func() int32 { return int32(d.u32("array element")) })
	case TypeFloat32:
		return fill(d, n, func() float32 { return math.Float32frombits(d.u32("array element")) })
	case TypeBool:
		return fill(d, n, func() bool { return d.bool("array element") })
	case TypeString:
		return fill(d, n, func() string { return d.str("array element") })
	case TypeUint64:
		return fill(d, n, func() uint64 { return d.u64("array element") })
	case TypeInt64:
		return fill(d, n, func() int64 { return int64(d.u64("array element")) })
	case TypeFloat64:
		return fill(d, n, func() float64 { return math.Float64frombits(d.u64("array element")) })
	default: // TypeArray; unknown types were rejected by the caller
		return fill(d, n, func() any {
			return d.value(TypeArray, depth+1)
		})
	}
}

func decode(b []byte, path string) (*File, error) {
	d := &decoder{b: b, path: path, where: "header"}
	magic := d.take(4, "magic")
	if d.err == nil && string(magic) != Magic {
		d.off = 0
		d.fail("magic %q is not %q", magic, Magic)
	}
	f := &File{Version: d.u32("version"), Alignment: DefaultAlignment, path: path}
	if d.err == nil && f.Version != 2 && f.Version != 3 {
		d.off -= 4
		if v := bits.ReverseBytes32(f.Version); v == 2 || v == 3 {
			d.fail("big-endian GGUF (version %d) is not supported", v)
		} else {
			d.fail("version %d is not supported (only 2 and 3)", f.Version)
		}
	}
	nt := d.u64("tensor count")
	nkv := d.u64("metadata count")
	// Bound the counts by the bytes left, so that neither loop below can be
	// driven into a huge allocation by a forged count.
	if d.err == nil && nkv > d.left()/13 {
		d.fail("metadata count %d cannot fit in the %d bytes left", nkv, d.left())
	}
	if d.err == nil && nt > d.left()/24 {
		d.fail("tensor count %d cannot fit in the %d bytes left", nt, d.left())
	}
	if d.err != nil {
		return nil, d.err
	}

	// Reserve room for at most a modest count: a forged count in a
	// multi-gigabyte file would pass the bound above, and append grows
	// the slices only as entries are actually read.
	f.Metadata = make([]KV, 0, min(nkv, 1024))
	f.kvs = make(map[string]int, min(nkv, 1024))
	for i := range nkv {
		d.where = fmt.Sprintf("metadata entry %d", i)
		key := d.str("key")
		if d.err != nil {
			return nil, d.err
		}
		d.where = fmt.Sprintf("metadata key %q", key)
		if _, dup := f.kvs[key]; dup {
			d.fail("duplicate key")
		}
		typ := ValueType(d.u32("value type"))
		if d.err == nil && minSize(typ) == 0 {
			d.off -= 4
			d.fail("unknown value type %d", uint32(typ))
		}
		v := d.value(typ, 0)
		if d.err != nil {
			return nil, d.err
		}
		f.kvs[key] = len(f.Metadata)
		f.Metadata = append(f.Metadata, KV{Key: key, Value: v})
	}
	if v, ok := f.Value(AlignmentKey); ok {
		d.where = fmt.Sprintf("metadata key %q", AlignmentKey)
		a, isU32 := v.(uint32)
		switch {
		case !isU32:
			d.fail("has type %s, want uint32", typeName(v))
		case a == 0 || a&(a-1) != 0:
			d.fail("alignment %d is not a power of two", a)
		}
		f.Alignment = uint64(a)
	}
	if d.err != nil {
		return nil, d.err
	}

	f.Tensors = make([]Tensor, 0, min(nt, 1024))
	f.tensors = make(map[string]int, min(nt, 1024))
	for i := range nt {
		d.where = fmt.Sprintf("tensor %d", i)
		name := d.str("name")
		if d.err != nil {
			return nil, d.err
		}
		d.where = fmt.Sprintf("tensor %q", name)
		if _, dup := f.tensors[name]; dup {
			d.fail("duplicate tensor name")
		}
		nd := d.u32("dimension count")
		if d.err == nil && nd > MaxDims {
			d.off -= 4
			d.fail("%d dimensions, at most %d allowed", nd, MaxDims)
		}
		if d.err != nil {
			return nil, d.err // before looping nd times
		}
		t := Tensor{Name: name, Dims: make([]uint64, 0, nd)}
		for range nd {
			t.Dims = append(t.Dims, d.u64("dimension"))
		}
		t.Type = GGMLType(d.u32("type"))
		t.Offset = d.u64("offset")
		if d.err != nil {
			return nil, d.err
		}
		if _, err := dataSize(t.Type, t.Dims); err != nil {
			d.fail("%v", err)
		}
		if t.Offset%f.Alignment != 0 {
			d.fail("data offset %d is not a multiple of the alignment %d", t.Offset, f.Alignment)
		}
		if d.err != nil {
			return nil, d.err
		}
		f.tensors[name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
	}

	// The data section starts at the next multiple of the alignment.
	start := d.off + (f.Alignment-d.off%f.Alignment)%f.Alignment
	var data []byte
	if start <= uint64(len(b)) {
		data = b[start:]
	}
	if err := attachData(f, data, int64(start)); err != nil {
		return nil, err
	}
	return f, nil
}

// attachData points every tensor at its bytes in the data section, checking
// that each lies inside it and that no two overlap.
func attachData(f *File, data []byte, start int64) error {
	fail := func(t Tensor, format string, args ...any) error {
		return &FormatError{File: f.path, Where: fmt.Sprintf("tensor %q", t.Name), Offset: -1, Msg: fmt.Sprintf(format, args...)}
	}
	order := make([]int, len(f.Tensors))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return f.Tensors[order[a]].Offset < f.Tensors[order[b]].Offset })
	var prevEnd uint64
	prev := ""
	for _, i := range order {
		t := &f.Tensors[i]
		size, _ := dataSize(t.Type, t.Dims) // checked while parsing
		if t.Offset > uint64(len(data)) || size > uint64(len(data))-t.Offset {
			return fail(*t, "truncated: data [%d,%d) runs past the %d-byte data section starting at byte %d",
				t.Offset, t.Offset+size, len(data), start)
		}
		if t.Offset < prevEnd {
			return fail(*t, "data [%d,%d) overlaps tensor %q, which ends at %d", t.Offset, t.Offset+size, prev, prevEnd)
		}
		t.Data = data[t.Offset : t.Offset+size : t.Offset+size]
		if size > 0 {
			prevEnd, prev = t.Offset+size, t.Name
		}
	}
	return nil
}
