package gguf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"lrmc/internal/atomicfile"
)

// Encode serializes metadata and tensors as a GGUF v3 file, in the order
// given. The data alignment is the metadata's general.alignment (a uint32
// power of two) or DefaultAlignment. Each tensor's data starts aligned and is
// followed by zero padding to the alignment, as llama.cpp and gguf-py write
// it; Tensor.Offset is ignored and recomputed. Any tensor type whose size is
// known may be written (quantized data is copied as is).
func Encode(metadata []KV, tensors []Tensor) ([]byte, error) {
	var b bytes.Buffer
	if err := Write(&b, metadata, tensors); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// WriteFile writes the file atomically (internal/atomicfile): readers, and
// a crash, see the old file or the complete new one.
func WriteFile(path string, metadata []KV, tensors []Tensor) error {
	err := atomicfile.Write(path, 0o644, func(w io.Writer) error { return Write(w, metadata, tensors) })
	if err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	return nil
}

// Write streams the encoding to w; tensor data is written straight from the
// tensors, never gathered into one buffer.
func Write(w io.Writer, metadata []KV, tensors []Tensor) error {
	align := uint64(DefaultAlignment)
	keys := make(map[string]bool, len(metadata))
	var hdr bytes.Buffer
	e := encoder{&hdr}
	hdr.WriteString(Magic)
	e.u32(Version)
	e.u64(uint64(len(tensors)))
	e.u64(uint64(len(metadata)))
	for _, kv := range metadata {
		if keys[kv.Key] {
			return fmt.Errorf("gguf: metadata key %q: duplicate key", kv.Key)
		}
		keys[kv.Key] = true
		if kv.Key == AlignmentKey {
			a, ok := kv.Value.(uint32)
			if !ok || a == 0 || a&(a-1) != 0 {
				return fmt.Errorf("gguf: metadata key %q: alignment must be a uint32 power of two, got %v (%T)", kv.Key, kv.Value, kv.Value)
			}
			align = uint64(a)
		}
		e.str(kv.Key)
		t, ok := TypeOf(kv.Value)
		if !ok {
			return fmt.Errorf("gguf: metadata key %q: Go type %T has no GGUF value type", kv.Key, kv.Value)
		}
		e.u32(uint32(t))
		if err := e.value(kv.Value, 0); err != nil {
			return fmt.Errorf("gguf: metadata key %q: %w", kv.Key, err)
		}
	}
	names := make(map[string]bool, len(tensors))
	var off uint64
	for _, t := range tensors {
		if names[t.Name] {
			return fmt.Errorf("gguf: tensor %q: duplicate tensor name", t.Name)
		}
		names[t.Name] = true
		if len(t.Name) >= maxNameLen {
			return fmt.Errorf("gguf: tensor %q: name of %d bytes is too long for llama.cpp (at most %d)", t.Name, len(t.Name), maxNameLen-1)
		}
		size, err := dataSize(t.Type, t.Dims)
		if err != nil {
			return fmt.Errorf("gguf: tensor %q: %w", t.Name, err)
		}
		if size != uint64(len(t.Data)) {
			return fmt.Errorf("gguf: tensor %q: %s %v needs %d bytes, have %d", t.Name, t.Type, t.Dims, size, len(t.Data))
		}
		e.str(t.Name)
		e.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			e.u64(d)
		}
		e.u32(uint32(t.Type))
		e.u64(off)
		off += padding(size, align) + size
	}
	hdr.Write(make([]byte, padding(uint64(hdr.Len()), align)))
	if _, err := w.Write(hdr.Bytes()); err != nil {
		return err
	}
	zeros := make([]byte, align)
	for _, t := range tensors {
		if _, err := w.Write(t.Data); err != nil {
			return fmt.Errorf("gguf: writing tensor %q: %w", t.Name, err)
		}
		if _, err := w.Write(zeros[:padding(uint64(len(t.Data)), align)]); err != nil {
			return fmt.Errorf("gguf: writing tensor %q: %w", t.Name, err)
		}
	}
	return nil
}

// maxNameLen is llama.cpp's GGML_MAX_NAME: it refuses a file with a tensor
// name of this many bytes or more. The reader accepts such names (other
// tools may not care); the writer does not produce files llama.cpp rejects.
const maxNameLen = 64

// padding returns the bytes needed to bring n to a multiple of align.
func padding(n, align uint64) uint64 { return (align - n%align) % align }

type encoder struct{ b *bytes.Buffer }

func (e encoder) u8(v uint8)   { e.b.WriteByte(v) }
func (e encoder) u16(v uint16) { e.b.Write(binary.LittleEndian.AppendUint16(nil, v)) }
func (e encoder) u32(v uint32) { e.b.Write(binary.LittleEndian.AppendUint32(nil, v)) }
func (e encoder) u64(v uint64) { e.b.Write(binary.LittleEndian.AppendUint64(nil, v)) }
func (e encoder) str(s string) { e.u64(uint64(len(s))); e.b.WriteString(s) }

func (e encoder) bool(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

func each[T any](e encoder, et ValueType, vs []T, put func(T)) {
	e.u32(uint32(et))
	e.u64(uint64(len(vs)))
	for _, v := range vs {
		put(v)
	}
}

func (e encoder) value(v any, depth int) error {
	switch x := v.(type) {
	case uint8:
		e.u8(x)
	case int8:
		e.u8(uint8(x))
	case uint16:
		e.u16(x)
	case int16:
		e.u16(uint16(x))
	case uint32:
		e.u32(x)
	case int32:
		e.u32(uint32(x))
	case float32:
		e.u32(math.Float32bits(x))
	case bool:
		e.bool(x)
	case string:
		e.str(x)
	case uint64:
		e.u64(x)
	case int64:
		e.u64(uint64(x))
	case float64:
		e.u64(math.Float64bits(x))
	case []uint8:
		each(e, TypeUint8, x, e.u8)
	case []int8:
		each(e, TypeInt8, x, func(v int8) { e.u8(uint8(v)) })
	case []uint16:
		each(e, TypeUint16, x, e.u16)
	case []int16:
		each(e, TypeInt16, x, func(v int16) { e.u16(uint16(v)) })
	case []uint32:
		each(e, TypeUint32, x, e.u32)
	case []int32:
		each(e, TypeInt32, x, func(v int32) { e.u32(uint32(v)) })
	case []float32:
		each(e, TypeFloat32, x, func(v float32) { e.u32(math.Float32bits(v)) })
	case []bool:
		each(e, TypeBool, x, e.bool)
	case []string:
		each(e, TypeString, x, e.str)
	case []uint64:
		each(e, TypeUint64, x, e.u64)
	case []int64:
		each(e, TypeInt64, x, func(v int64) { e.u64(uint64(v)) })
	case []float64:
		each(e, TypeFloat64, x, func(v float64) { e.u64(math.Float64bits(v)) })
	case []any:
		if depth+1 >= maxNesting {
			return fmt.Errorf("arrays nested deeper than %d", maxNesting)
		}
		e.u32(uint32(TypeArray))
		e.u64(uint64(len(x)))
		for i, inner := range x {
			if t, _ := TypeOf(inner); t != TypeArray {
				return fmt.Errorf("element %d of an array of arrays is a %T, not an array", i, inner)
			}
			if err := e.value(inner, depth+1); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("Go type %T has no GGUF value type", v)
	}
	return nil
}
