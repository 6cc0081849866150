package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"unsafe"

	"lrmc/kernels/half"
)

// GGMLType is a tensor encoding (ggml_type).
type GGMLType uint32

// The ggml types whose storage size this package knows. Tensors of these
// types can be read and written as bytes; F32, F16, BF16 and Q8_0 can also
// be converted to float32. The IQ* types are absent on purpose: their sizes
// are not needed by anything in lrmc and a wrong table entry would misparse.
const (
	TypeF32  GGMLType = 0
	TypeF16  GGMLType = 1
	TypeQ4_0 GGMLType = 2
	TypeQ4_1 GGMLType = 3
	TypeQ5_0 GGMLType = 6
	TypeQ5_1 GGMLType = 7
	TypeQ8_0 GGMLType = 8
	TypeQ8_1 GGMLType = 9
	TypeQ2_K GGMLType = 10
	TypeQ3_K GGMLType = 11
	TypeQ4_K GGMLType = 12
	TypeQ5_K GGMLType = 13
	TypeQ6_K GGMLType = 14
	TypeQ8_K GGMLType = 15
	TypeI8   GGMLType = 24
	TypeI16  GGMLType = 25
	TypeI32  GGMLType = 26
	TypeI64  GGMLType = 27
	TypeF64  GGMLType = 28
	TypeBF16 GGMLType = 30
)

type typeTraits struct {
	name      string
	blockSize uint64 // elements per block
	typeSize  uint64 // bytes per block
}

var traits = map[GGMLType]typeTraits{
	TypeF32:  {"F32", 1, 4},
	TypeF16:  {"F16", 1, 2},
	TypeQ4_0: {"Q4_0", 32, 18},
	TypeQ4_1: {"Q4_1", 32, 20},
	TypeQ5_0: {"Q5_0", 32, 22},
	TypeQ5_1: {"Q5_1", 32, 24},
	TypeQ8_0: {"Q8_0", 32, 34},
	TypeQ8_1: {"Q8_1", 32, 36},
	TypeQ2_K: {"Q2_K", 256, 84},
	TypeQ3_K: {"Q3_K", 256, 110},
	TypeQ4_K: {"Q4_K", 256, 144},
	TypeQ5_K: {"Q5_K", 256, 176},
	TypeQ6_K: {"Q6_K", 256, 210},
	TypeQ8_K: {"Q8_K", 256, 292},
	TypeI8:   {"I8", 1, 1},
	TypeI16:  {"I16", 1, 2},
	TypeI32:  {"I32", 1, 4},
	TypeI64:  {"I64", 1, 8},
	TypeF64:  {"F64", 1, 8},
	TypeBF16: {"BF16", 1, 2},
}

func (t GGMLType) String() string {
	if tr, ok := traits[t]; ok {
		return tr.name
	}
	return fmt.Sprintf("GGMLType(%d)", uint32(t))
}

// BlockSize returns the number of elements per storage block (1 for plain
// types, 32 or 256 for quantized ones), or 0 for an unknown type.
func (t GGMLType) BlockSize() uint64 { return traits[t].blockSize }

// MaxDims is GGML_MAX_DIMS: no tensor has more dimensions.
const MaxDims = 4

// Tensor is one tensor of a GGUF file.
type Tensor struct {
	Name string
	Type GGMLType
	// Dims is ne: Dims[0] is the innermost, contiguous dimension.
	Dims []uint64
	// Offset of the data from the start of the data section, as stored.
	Offset uint64
	// Data holds the encoded bytes; for an opened file it aliases the
	// read-only memory map.
	Data []byte
}

// Shape returns the dimensions outermost first (row-major order), the
// reverse of Dims: a [out, in] matrix has Dims [in, out].
func (t Tensor) Shape() []int {
	s := make([]int, len(t.Dims))
	for i, d := range t.Dims {
		s[len(s)-1-i] = int(d)
	}
	return s
}

// NumElements returns the product of the dimensions.
func (t Tensor) NumElements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// dataSize returns the byte size of a tensor of type typ and dims, checking
// that the type is known, that the innermost dimension is a whole number of
// blocks (ggml quantizes along rows) and that nothing overflows.
func dataSize(typ GGMLType, dims []uint64) (uint64, error) {
	tr, ok := traits[typ]
	if !ok {
		return 0, fmt.Errorf("unsupported ggml type %d", uint32(typ))
	}
	if len(dims) > MaxDims {
		return 0, fmt.Errorf("%d dimensions, at most %d allowed", len(dims), MaxDims)
	}
	n := uint64(1)
	for _, d := range dims {
		hi, lo := bits.Mul64(n, d)
		if hi != 0 || lo > math.MaxInt64 {
			return 0, fmt.Errorf("dimensions %v overflow", dims)
		}
		n = lo
	}
	if len(dims) > 0 && dims[0]%tr.blockSize != 0 {
		return 0, fmt.Errorf("innermost dimension %d is not a multiple of the %s block size %d", dims[0], tr.name, tr.blockSize)
	}
	hi, lo := bits.Mul64(n/tr.blockSize, tr.typeSize)
	if hi != 0 || lo > math.MaxInt64 {
		return 0, fmt.Errorf("dimensions %v overflow", dims)
	}
	return lo, nil
}

// Float32 decodes the tensor to float32 values in storage order (Dims[0]
// fastest). F32 is copied, F16 and BF16 widened exactly, Q8_0 dequantized as
// ggml does: each block of 32 is an f16 scale d and 32 int8 q, value d·q.
func (t Tensor) Float32() ([]float32, error) {
	want, err := dataSize(t.Type, t.Dims)
	if err != nil {
		return nil, fmt.Errorf("gguf: tensor %q: %w", t.Name, err)
	}
	if uint64(len(t.Data)) != want {
		return nil, fmt.Errorf("gguf: tensor %q: %d bytes, want %d for %s %v", t.Name, len(t.Data), want, t.Type, t.Dims)
	}
	n := t.NumElements()
	out := make([]float32, n)
	switch t.Type {
	case TypeF32:
		if nativeLittleEndian {
			copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(out))), 4*n), t.Data)
		} else {
			for i := range out {
				out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
			}
		}
	case TypeF16:
		half.DecodeF16(out, t.Data)
	case TypeBF16:
		half.DecodeBF16(out, t.Data)
	case TypeQ8_0:
		for b := range n / 32 {
			blk := t.Data[34*b : 34*b+34]
			d := half.ToFloat32F16(binary.LittleEndian.Uint16(blk))
			o := out[32*b : 32*b+32]
			for j, q := range blk[2:] {
				o[j] = d * float32(int8(q))
			}
		}
	default:
		return nil, fmt.Errorf("gguf: tensor %q: converting %s to float32 is not supported", t.Name, t.Type)
	}
	return out, nil
}

// FromFloat32 builds a tensor of type F32, F16 or BF16 (rounding to nearest
// even when narrowing), or Q8_0 (quantized as llama.cpp does), from values in row-major order for the given shape,
// outermost dimension first; Dims is set to the reverse, as GGUF stores it.
func FromFloat32(name string, typ GGMLType, shape []int, v []float32) (Tensor, error) {
	dims := make([]uint64, len(shape))
	n := 1
	for i, d := range shape {
		if d < 0 {
			return Tensor{}, fmt.Errorf("gguf: tensor %q: negative dimension in shape %v", name, shape)
		}
		dims[len(shape)-1-i] = uint64(d)
		n *= d
	}
	if n != len(v) {
		return Tensor{}, fmt.Errorf("gguf: tensor %q: shape %v holds %d values, got %d", name, shape, n, len(v))
	}
	var data []byte
	switch typ {
	case TypeF32:
		data = make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(x))
		}
	case TypeF16, TypeBF16:
		data = make([]byte, 2*len(v))
		if typ == TypeBF16 {
			half.EncodeBF16(data, v)
		} else {
			half.EncodeF16(data, v)
		}
	case TypeQ8_0:
		if len(dims) == 0 || dims[0]%32 != 0 {
			return Tensor{}, fmt.Errorf("gguf: tensor %q: Q8_0 needs an innermost dimension that is a multiple of 32, shape is %v", name, shape)
		}
		data = make([]byte, 0, len(v)/32*34)
		for b := 0; b < len(v); b += 32 {
			data = quantizeQ8_0(data, v[b:b+32])
		}
	default:
		return Tensor{}, fmt.Errorf("gguf: tensor %q: cannot encode float32 as %s", name, typ)
	}
	return Tensor{Name: name, Type: typ, Dims: dims, Data: data}, nil
}

// quantizeQ8_0 appends one Q8_0 block for 32 values, computed step for step
// as ggml's quantize_row_q8_0_ref does (float32 arithmetic, the scale's
// inverse taken before the scale is rounded to f16, quants rounded half away
// from zero), so the bytes match llama.cpp's.
func quantizeQ8_0(dst []byte, x []float32) []byte {
	var amax float32
	for _, v := range x {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	d := amax / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	dst = binary.LittleEndian.AppendUint16(dst, half.FromFloat32F16(d))
	for _, v := range x {
		dst = append(dst, byte(int8(math.Round(float64(v*id)))))
	}
	return dst
}

var nativeLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()
