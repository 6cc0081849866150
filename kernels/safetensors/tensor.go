// Package safetensors reads and writes the safetensors container format used
// by Hugging Face checkpoints: an 8-byte little-endian header length, a JSON
// header that maps tensor names to dtype, shape and byte range, and one flat
// byte buffer holding every tensor back to back.
//
// The package works at two levels. Encode and Decode turn tensors into bytes
// and back in memory (the pipeline cache stores tensors this way); Open maps a
// file read-only so that a model's weights live in the page cache only once,
// and OpenIndex presents a sharded checkpoint (model.safetensors.index.json)
// as one set of tensors. Decoded tensors alias the buffer or mapping they come
// from: they are views, not copies.
package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"strings"
	"unsafe"

	"lrmc/kernels/half"
)

// FormatError reports malformed input: a corrupt or hostile header, or a
// tensor whose bytes do not match its shape. It names the file (empty for
// in-memory buffers) and the tensor (empty when the fault is not one
// tensor's), so a message points at what to fix.
type FormatError struct {
	File   string
	Tensor string
	Msg    string
	Err    error // underlying cause, such as a JSON syntax error; may be nil
}

func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString("safetensors: ")
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Tensor != "" {
		fmt.Fprintf(&b, "tensor %q: ", e.Tensor)
	}
	b.WriteString(e.Msg)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *FormatError) Unwrap() error { return e.Err }

// DType is a tensor element type, spelled as in the safetensors header.
type DType string

// The element types this package accepts. Sub-byte types (F4, F6_*) are left
// out on purpose: their sizes are not whole bytes per element, and nothing in
// lrmc produces or consumes them.
const (
	DTypeBool   DType = "BOOL"
	DTypeU8     DType = "U8"
	DTypeI8     DType = "I8"
	DTypeF8E5M2 DType = "F8_E5M2"
	DTypeF8E4M3 DType = "F8_E4M3"
	DTypeI16    DType = "I16"
	DTypeU16    DType = "U16"
	DTypeF16    DType = "F16"
	DTypeBF16   DType = "BF16"
	DTypeI32    DType = "I32"
	DTypeU32    DType = "U32"
	DTypeF32    DType = "F32"
	DTypeF64    DType = "F64"
	DTypeI64    DType = "I64"
	DTypeU64    DType = "U64"
)

var dtypeSizes = map[DType]int{
	DTypeBool: 1, DTypeU8: 1, DTypeI8: 1, DTypeF8E5M2: 1, DTypeF8E4M3: 1,
	DTypeI16: 2, DTypeU16: 2, DTypeF16: 2, DTypeBF16: 2,
	DTypeI32: 4, DTypeU32: 4, DTypeF32: 4,
	DTypeF64: 8, DTypeI64: 8, DTypeU64: 8,
}

// Size returns the number of bytes of one element, or 0 for an unknown type.
func (d DType) Size() int { return dtypeSizes[d] }

// Valid reports whether d is a type this package can read and write.
func (d DType) Valid() bool { return d.Size() > 0 }

// Tensor is one named tensor: its element type, its shape (outermost
// dimension first, row-major) and its raw little-endian bytes.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// F32 builds a float32 tensor, copying v into little-endian bytes.
func F32(name string, shape []int, v []float32) Tensor {
	data := make([]byte, 4*len(v))
	if nativeLittleEndian {
		copy(data, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v)))
	} else {
		for i, x := range v {
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(x))
		}
	}
	return Tensor{Name: name, DType: DTypeF32, Shape: cloneShape(shape), Data: data}
}

// I32 builds an int32 tensor (token ids, for example) from v.
func I32(name string, shape []int, v []int32) Tensor {
	data := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(data[4*i:], uint32(x))
	}
	return Tensor{Name: name, DType: DTypeI32, Shape: cloneShape(shape), Data: data}
}

// FromFloat32 builds a tensor of type F32, F16 or BF16 from v, rounding to
// nearest-even when narrowing (the rounding PyTorch and numpy use).
func FromFloat32(name string, dtype DType, shape []int, v []float32) (Tensor, error) {
	switch dtype {
	case DTypeF32:
		return F32(name, shape, v), nil
	case DTypeF16, DTypeBF16:
		data := make([]byte, 2*len(v))
		if dtype == DTypeBF16 {
			half.EncodeBF16(data, v)
		} else {
			half.EncodeF16(data, v)
		}
		return Tensor{Name: name, DType: dtype, Shape: cloneShape(shape), Data: data}, nil
	default:
		return Tensor{}, fmt.Errorf("safetensors: tensor %q: cannot convert float32 to %s", name, dtype)
	}
}

// NumElements returns the product of the shape (1 for a scalar).
func (t Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Float32 returns the tensor's values as a new float32 slice. F32 is copied
// exactly; F16 and BF16 are widened, which is exact too.
func (t Tensor) Float32() ([]float32, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	n := t.NumElements()
	out := make([]float32, n)
	switch t.DType {
	case DTypeF32:
		if nativeLittleEndian {
			// A byte copy is a memmove; the per-element loop below is
			// several times slower on multi-gigabyte checkpoints.
			copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(out))), 4*n), t.Data)
		} else {
			for i := range out {
				out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
			}
		}
	case DTypeF16:
		half.DecodeF16(out, t.Data)
	case DTypeBF16:
		half.DecodeBF16(out, t.Data)
	default:
		return nil, fmt.Errorf("safetensors: tensor %q: dtype %s is not a float type convertible to float32", t.Name, t.DType)
	}
	return out, nil
}

// Int32 returns the values of an I32 tensor as a new slice.
func (t Tensor) Int32() ([]int32, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	if t.DType != DTypeI32 {
		return nil, fmt.Errorf("safetensors: tensor %q: dtype %s, want I32", t.Name, t.DType)
	}
	out := make([]int32, t.NumElements())
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return out, nil
}

// check verifies that the dtype is known and that the byte length matches
// shape × element size, the invariant both Encode and Decode rely on.
func (t Tensor) check() error {
	if !t.DType.Valid() {
		return &FormatError{Tensor: t.Name, Msg: fmt.Sprintf("unknown dtype %q", string(t.DType))}
	}
	n, ok := byteSize(t.Shape, t.DType)
	if !ok {
		return &FormatError{Tensor: t.Name, Msg: fmt.Sprintf("shape %v has a negative dimension or overflows", t.Shape)}
	}
	if n != uint64(len(t.Data)) {
		return &FormatError{Tensor: t.Name, Msg: fmt.Sprintf("shape %v of %s needs %d bytes, have %d", t.Shape, t.DType, n, len(t.Data))}
	}
	return nil
}

// byteSize is shape × element size, with overflow and sign checks: a hostile
// header must not be able to wrap the product into a small number.
func byteSize(shape []int, dt DType) (uint64, bool) {
	n := uint64(dt.Size())
	for _, d := range shape {
		if d < 0 {
			return 0, false
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return 0, false
		}
		n = lo
	}
	return n, true
}

func cloneShape(s []int) []int {
	// Never nil: a scalar's shape is an empty list, and it should compare
	// equal to the one Decode returns.
	out := make([]int, len(s))
	copy(out, s)
	return out
}

var nativeLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()
