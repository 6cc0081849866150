// Package gguf reads and writes GGUF (version 3, and the layout-identical
// version 2), the container llama.cpp uses for models: a header, typed
// metadata key/value pairs, tensor descriptions, then aligned tensor data.
//
// It is a container package only: it knows value types and tensor encodings,
// not model architectures. Two conventions a model loader must respect:
//
//   - Tensor.Dims is GGUF's ne order: Dims[0] is the innermost (contiguous)
//     dimension. A PyTorch weight of shape [out, in] is stored with
//     Dims = [in, out]; Tensor.Shape returns the row-major [out, in].
//   - Tensor data is memory-mapped by Open and aliases the mapping: copy
//     what must outlive File.Close.
package gguf

import (
	"fmt"
	"math"
	"strings"
)

// Magic is the first four bytes of every GGUF file.
const Magic = "GGUF"

// Version is the format version this package writes.
const Version = 3

// DefaultAlignment is the data alignment when general.alignment is absent.
const DefaultAlignment = 32

// AlignmentKey is the metadata key that overrides DefaultAlignment.
const AlignmentKey = "general.alignment"

// ValueType is the type tag of a metadata value.
type ValueType uint32

// Metadata value types, numbered as in the GGUF specification.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var valueTypeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array", "uint64", "int64", "float64"}

func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("ValueType(%d)", uint32(t))
}

// KV is one metadata entry. Value holds the Go type that corresponds one to
// one to the GGUF type, so a file re-written from its KVs keeps every type:
//
//	uint8 int8 uint16 int16 uint32 int32 float32 bool string uint64 int64 float64
//
// and, for arrays, a slice of one of those ([]string, []float32, ...), or
// []any whose elements are themselves arrays (an array of arrays).
type KV struct {
	Key   string
	Value any
}

// TypeOf returns the GGUF type of a metadata value, and false for a Go value
// that has no GGUF type.
func TypeOf(v any) (ValueType, bool) {
	switch v.(type) {
	case uint8:
		return TypeUint8, true
	case int8:
		return TypeInt8, true
	case uint16:
		return TypeUint16, true
	case int16:
		return TypeInt16, true
	case uint32:
		return TypeUint32, true
	case int32:
		return TypeInt32, true
	case float32:
		return TypeFloat32, true
	case bool:
		return TypeBool, true
	case string:
		return TypeString, true
	case uint64:
		return TypeUint64, true
	case int64:
		return TypeInt64, true
	case float64:
		return TypeFloat64, true
	case []uint8, []int8, []uint16, []int16, []uint32, []int32, []float32, []bool, []string, []uint64, []int64, []float64, []any:
		return TypeArray, true
	}
	return 0, false
}

// File is a parsed GGUF file.
type File struct {
	Version   uint32
	Alignment uint64
	// Metadata in file order; look values up with Value or the typed getters.
	Metadata []KV
	// Tensors in file order.
	Tensors []Tensor

	path    string
	kvs     map[string]int
	tensors map[string]int
	mapping []byte // released by Close; nil for Decode
}

// Path returns the file name given to Open, or "" for Decode.
func (f *File) Path() string { return f.path }

// Tensor returns the named tensor.
func (f *File) Tensor(name string) (Tensor, bool) {
	i, ok := f.tensors[name]
	if !ok {
		return Tensor{}, false
	}
	return f.Tensors[i], true
}

// Value returns the metadata value stored under key.
func (f *File) Value(key string) (any, bool) {
	i, ok := f.kvs[key]
	if !ok {
		return nil, false
	}
	return f.Metadata[i].Value, true
}

// keyError reports a missing or mistyped key, naming the file.
func (f *File) keyError(key, format string, args ...any) error {
	return &FormatError{File: f.path, Where: fmt.Sprintf("metadata key %q", key), Offset: -1, Msg: fmt.Sprintf(format, args...)}
}

func (f *File) lookup(key string) (any, error) {
	v, ok := f.Value(key)
	if !ok {
		return nil, f.keyError(key, "missing")
	}
	return v, nil
}

// Int64 returns an integer metadata value of any width as int64 (token
// ids and counts are written as uint32 by some converters, int32 or uint64
// by others); false for a value that is not an integer or exceeds int64.
func Int64(v any) (int64, bool) {
	i, u, signed, ok := integer(v)
	switch {
	case !ok:
		return 0, false
	case signed:
		return i, true
	case u > math.MaxInt64:
		return 0, false
	}
	return int64(u), true
}

// integer returns an integer value of any width as int64 or uint64, so the
// typed getters accept every integer type whose value fits: converters differ
// in the widths they write (context_length as uint32 or uint64).
func integer(v any) (i int64, u uint64, signed, ok bool) {
	switch x := v.(type) {
	case uint8:
		return 0, uint64(x), false, true
	case uint16:
		return 0, uint64(x), false, true
	case uint32:
		return 0, uint64(x), false, true
	case uint64:
		return 0, x, false, true
	case int8:
		return int64(x), 0, true, true
	case int16:
		return int64(x), 0, true, true
	case int32:
		return int64(x), 0, true, true
	case int64:
		return x, 0, true, true
	}
	return 0, 0, false, false
}

func typeName(v any) string {
	t, ok := TypeOf(v)
	if !ok {
		return fmt.Sprintf("%T", v)
	}
	if t == TypeArray {
		return fmt.Sprintf("array %T", v)
	}
	return t.String()
}

// Uint64 returns a non-negative integer value of any integer type.
func (f *File) Uint64(key string) (uint64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	i, u, signed, ok := integer(v)
	switch {
	case !ok:
		return 0, f.keyError(key, "has type %s, want an integer", typeName(v))
	case signed && i < 0:
		return 0, f.keyError(key, "value %d is negative", i)
	case signed:
		return uint64(i), nil
	}
	return u, nil
}

// Uint32 returns an integer value that fits in a uint32.
func (f *File) Uint32(key string) (uint32, error) {
	u, err := f.Uint64(key)
	if err != nil {
		return 0, err
	}
	if u > math.MaxUint32 {
		return 0, f.keyError(key, "value %d does not fit in uint32", u)
	}
	return uint32(u), nil
}

// Int64 returns an integer value of any integer type that fits in an int64.
func (f *File) Int64(key string) (int64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	i, u, signed, ok := integer(v)
	switch {
	case !ok:
		return 0, f.keyError(key, "has type %s, want an integer", typeName(v))
	case !signed && u > math.MaxInt64:
		return 0, f.keyError(key, "value %d does not fit in int64", u)
	case !signed:
		return int64(u), nil
	}
	return i, nil
}

// Float32 returns a float32 value, or a float64 one narrowed.
func (f *File) Float32(key string) (float32, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	switch x := v.(type) {
	case float32:
		return x, nil
	case float64:
		return float32(x), nil
	}
	return 0, f.keyError(key, "has type %s, want float32", typeName(v))
}

// Bool returns a bool value.
func (f *File) Bool(key string) (bool, error) {
	v, err := f.lookup(key)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, f.keyError(key, "has type %s, want bool", typeName(v))
	}
	return b, nil
}

// String returns a string value.
func (f *File) String(key string) (string, error) {
	v, err := f.lookup(key)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", f.keyError(key, "has type %s, want string", typeName(v))
	}
	return s, nil
}

// Strings returns an array of strings (tokenizer.ggml.tokens, for example).
// The slice is the file's own; do not modify it.
func (f *File) Strings(key string) ([]string, error) { return array[string](f, key, "string") }

// Float32s returns an array of float32 (tokenizer.ggml.scores, for example).
func (f *File) Float32s(key string) ([]float32, error) { return array[float32](f, key, "float32") }

// Int32s returns an array of int32 (tokenizer.ggml.token_type, for example).
func (f *File) Int32s(key string) ([]int32, error) { return array[int32](f, key, "int32") }

func array[T any](f *File, key, elem string) ([]T, error) {
	v, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	a, ok := v.([]T)
	if !ok {
		return nil, f.keyError(key, "has type %s, want array of %s", typeName(v), elem)
	}
	return a, nil
}

// FormatError reports a malformed or truncated file. Where names the part
// at fault (`header`, `metadata key "general.alignment"`, `tensor "output.weight"`)
// and Offset the byte at which reading stopped (-1 when not applicable).
type FormatError struct {
	File   string
	Where  string
	Offset int64
	Msg    string
}

func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString("gguf: ")
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Where != "" {
		b.WriteString(e.Where)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Offset >= 0 {
		fmt.Fprintf(&b, " (at byte %d)", e.Offset)
	}
	return b.String()
}
