package ops

import (
	"bytes"
	"math"
	"testing"
	"unsafe"

	"lrmc/kernels/safetensors"
)

// TestHiddenCodecBytesAndAliasing checks that the hidden-state codec writes
// exactly safetensors.Encode's bytes (entries written before it still
// decode, and the same state always gives the same bytes), that decoding
// gives the same bits back, special values included, reading the floats in
// place when the bytes are aligned and copying them when not, and that a
// bfloat16 file is still widened.
func TestHiddenCodecBytesAndAliasing(t *testing.T) {
	data := []float32{1.5, float32(math.Copysign(0, -1)), float32(math.Inf(-1)), math.Float32frombits(0x7fc00123), 3e-39, -7}
	h := Hidden{Data: data, Rows: 3, Dim: 2}
	var c hiddenCodec
	got, err := c.Encode(h)
	if err != nil {
		t.Fatal(err)
	}
	want, err := safetensors.Encode([]safetensors.Tensor{safetensors.F32("hidden", []int{3, 2}, data)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding differs from safetensors.Encode:\n%q\n%q", got, want)
	}
	check := func(name string, b []byte, alias bool) {
		t.Helper()
		v, err := c.Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		d := v.(Hidden)
		if d.Rows != 3 || d.Dim != 2 || len(d.Data) != 6 {
			t.Fatalf("%s: decoded %d×%d with %d values", name, d.Rows, d.Dim, len(d.Data))
		}
		for i := range data {
			if math.Float32bits(d.Data[i]) != math.Float32bits(data[i]) {
				t.Errorf("%s: value %d is %08x, want %08x", name, i, math.Float32bits(d.Data[i]), math.Float32bits(data[i]))
			}
		}
		p := uintptr(unsafe.Pointer(&d.Data[0]))
		inside := p >= uintptr(unsafe.Pointer(&b[0])) && p < uintptr(unsafe.Pointer(&b[0]))+uintptr(len(b))
		if inside != alias {
			t.Errorf("%s: floats inside the encoded bytes: %v, want %v", name, inside, alias)
		}
	}
	check("aligned", got, littleEndian && uintptr(unsafe.Pointer(&got[len(got)-24]))%4 == 0)
	// The same bytes one byte further: the floats are misaligned and copied.
	shifted := make([]byte, len(got)+1)
	copy(shifted[1:], got)
	check("misaligned", shifted[1:], false)

	bf, err := safetensors.FromFloat32("hidden", safetensors.DTypeBF16, []int{1, 2}, []float32{1.5, -2})
	if err != nil {
		t.Fatal(err)
	}
	b, err := safetensors.Encode([]safetensors.Tensor{bf}, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Decode(b)
	if err != nil || v.(Hidden).Data[0] != 1.5 || v.(Hidden).Data[1] != -2 {
		t.Errorf("bfloat16 hidden state: %v, %v", v, err)
	}
	if _, err := c.Encode(Hidden{Data: data, Rows: 2, Dim: 2}); err == nil || err.Error() != "hidden state of 6 values is not 2×2" {
		t.Errorf("wrong shape: %v", err)
	}
}

// BenchmarkHiddenCodec encodes and decodes one Qwen3-0.6B capture block's
// hidden state at 64×512 tokens (128 MiB), against the two-copy encoding
// (safetensors.F32 then Encode) and the copying decode it replaced:
//
//	go test -run NONE -bench HiddenCodec -count 5 ./executor/ops
func BenchmarkHiddenCodec(b *testing.B) {
	h := Hidden{Data: make([]float32, 64*512*1024), Rows: 64 * 512, Dim: 1024}
	for i := range h.Data {
		h.Data[i] = float32(i)
	}
	var c hiddenCodec
	enc, _ := c.Encode(h)
	b.Run("encode/two-copies", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			safetensors.Encode([]safetensors.Tensor{safetensors.F32("hidden", []int{h.Rows, h.Dim}, h.Data)}, nil)
		}
	})
	b.Run("encode", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			c.Encode(h)
		}
	})
	b.Run("decode/copy", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			f, _ := safetensors.Decode(enc)
			t, _ := f.Tensor("hidden")
			t.Float32()
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(enc)))
		for b.Loop() {
			c.Decode(enc)
		}
	})
}
