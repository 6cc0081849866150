package ops

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"lrmc/kernels/safetensors"
)

// Hidden states are the largest values the cache holds (a calibration
// capture writes one per block, Samples·SeqLen·Dim floats: 128 MiB for 64
// windows of 512 tokens at dim 1024), so their codec copies them once each
// way: the encoding appends the floats' bytes straight into the file (no
// intermediate byte tensor), and the decoding reads the floats where they
// lie in the bytes the cache handed over, which nobody else holds. The
// bytes are exactly safetensors.Encode's.

// littleEndian says whether float32 values are laid out in memory as
// safetensors stores them.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// floatBytes views v's memory as bytes (little-endian hosts only).
func floatBytes(v []float32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v))
}

// encodeHidden is the safetensors file holding h as one F32 tensor
// "hidden" [Rows, Dim].
func encodeHidden(h Hidden) ([]byte, error) {
	if h.Rows < 0 || h.Dim < 0 || len(h.Data) != h.Rows*h.Dim {
		return nil, fmt.Errorf("hidden state of %d values is not %d×%d", len(h.Data), h.Rows, h.Dim)
	}
	t := safetensors.Tensor{Name: "hidden", DType: safetensors.DTypeF32, Shape: []int{h.Rows, h.Dim}}
	if littleEndian {
		t.Data = floatBytes(h.Data) // Encode copies it into the file
	} else {
		t = safetensors.F32(t.Name, t.Shape, h.Data)
	}
	return safetensors.Encode([]safetensors.Tensor{t}, nil)
}

// decodeHidden reads encodeHidden's file. The floats alias b when it is
// laid out for it (little-endian host, 4-byte aligned data): b must not be
// changed afterwards, which holds for the bytes a cache read returns.
func decodeHidden(b []byte) (Hidden, error) {
	f, err := safetensors.Decode(b)
	if err != nil {
		return Hidden{}, err
	}
	t, ok := f.Tensor("hidden")
	if !ok || len(t.Shape) != 2 {
		return Hidden{}, fmt.Errorf("no 2-d tensor \"hidden\"")
	}
	if t.DType != safetensors.DTypeF32 || !littleEndian || len(t.Data) == 0 || uintptr(unsafe.Pointer(unsafe.SliceData(t.Data)))%4 != 0 {
		d, err := t.Float32()
		if err != nil {
			return Hidden{}, err
		}
		return Hidden{Data: d, Rows: t.Shape[0], Dim: t.Shape[1]}, nil
	}
	d := unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(t.Data))), len(t.Data)/4)
	return Hidden{Data: d, Rows: t.Shape[0], Dim: t.Shape[1]}, nil
}
