package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"lrmc/internal/shareddata"
	"lrmc/kernels/half"
)

// q8Block builds one Q8_0 block: an f16 scale, then 32 int8 quants.
func q8Block(scale uint16, q func(j int) int8) []byte {
	b := binary.LittleEndian.AppendUint16(nil, scale)
	for j := range 32 {
		b = append(b, byte(q(j)))
	}
	return b
}

func allTypesMetadata() []KV {
	return []KV{
		{"general.architecture", "llama"},
		{AlignmentKey, uint32(64)},
		{"u8", uint8(200)}, {"i8", int8(-100)}, {"u16", uint16(60000)}, {"i16", int16(-30000)},
		{"u32", uint32(4000000000)}, {"i32", int32(-2000000000)}, {"f32", float32(1.5)},
		{"bool", true}, {"str", "héllo ▁"}, {"u64", uint64(1) << 60}, {"i64", int64(-1) << 60}, {"f64", math.Pi},
		{"a.u8", []uint8{1, 2}}, {"a.i8", []int8{-1}}, {"a.u16", []uint16{7}}, {"a.i16", []int16{-7}},
		{"a.u32", []uint32{1, 2, 3}}, {"a.i32", []int32{-3, 4}}, {"a.f32", []float32{0.5, -0.25}},
		{"a.bool", []bool{true, false}}, {"a.str", []string{"", "x", "yz"}}, {"a.u64", []uint64{9}},
		{"a.i64", []int64{-9}}, {"a.f64", []float64{2.5}}, {"a.empty", []string{}},
		{"a.nested", []any{[]int32{1, 2}, []string{"a"}, []any{[]bool{true}}}},
	}
}

func allTypesTensors(t *testing.T) []Tensor {
	t.Helper()
	f32, err := FromFloat32("f32", TypeF32, []int{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	if err != nil {
		t.Fatal(err)
	}
	f16, err := FromFloat32("f16", TypeF16, []int{3}, []float32{0.1, -2.5, 65504})
	if err != nil {
		t.Fatal(err)
	}
	bf16, err := FromFloat32("bf16", TypeBF16, []int{2}, []float32{3.1415927, -1})
	if err != nil {
		t.Fatal(err)
	}
	q8 := append(q8Block(0x3800, func(j int) int8 { return int8(j*8 - 128) }), // d = 0.5
		q8Block(0x1400, func(j int) int8 { return int8(127 - j) })...) // d = 2⁻¹⁰
	return []Tensor{f32, f16, bf16, {Name: "q8", Type: TypeQ8_0, Dims: []uint64{64}, Data: q8}}
}

func TestRoundTripAllTypes(t *testing.T) {
	meta, tensors := allTypesMetadata(), allTypesTensors(t)
	path := filepath.Join(t.TempDir(), "all.gguf")
	if err := WriteFile(path, meta, tensors); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Alignment != 64 {
		t.Errorf("alignment %d, want 64", f.Alignment)
	}
	if diff := cmp.Diff(meta, f.Metadata); diff != "" {
		t.Errorf("metadata (-written +read):\n%s", diff)
	}
	for i, want := range tensors {
		got := f.Tensors[i]
		if got.Name != want.Name || got.Type != want.Type || !cmp.Equal(got.Dims, want.Dims) || !bytes.Equal(got.Data, want.Data) {
			t.Errorf("tensor %d: got %s %s %v, want %s %s %v", i, got.Name, got.Type, got.Dims, want.Name, want.Type, want.Dims)
		}
		if got.Offset%64 != 0 {
			t.Errorf("tensor %q at offset %d, not 64-aligned", got.Name, got.Offset)
		}
	}
	again, err := Encode(f.Metadata, f.Tensors)
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(path)
	if !bytes.Equal(again, orig) {
		t.Error("re-encoding the file read back changed its bytes")
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("%d directory entries, want 1 (temporary file left?)", len(entries))
	}
}

func TestFloat32Decoding(t *testing.T) {
	tensors := allTypesTensors(t)
	want := map[string][]float32{
		"f32":  {1, 2, 3, 4, 5, 6},
		"f16":  {0.0999755859375, -2.5, 65504}, // 0.1 rounds to f16 0x2e66
		"bf16": {3.140625, -1},                 // π rounds to bf16 0x4049
	}
	q := make([]float32, 64)
	for j := range 32 {
		q[j] = float32(0.5 * float64(j*8-128))             // d·q is exact in float32
		q[32+j] = float32(math.Ldexp(float64(127-j), -10)) // d = 2⁻¹⁰
	}
	want["q8"] = q
	for _, tn := range tensors {
		got, err := tn.Float32()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want[tn.Name], got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tn.Name, diff)
		}
	}
	_, err := Tensor{Name: "q4", Type: TypeQ4_0, Dims: []uint64{32}, Data: make([]byte, 18)}.Float32()
	if want := `gguf: tensor "q4": converting Q4_0 to float32 is not supported`; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
	_, err = Tensor{Name: "short", Type: TypeF32, Dims: []uint64{4}, Data: make([]byte, 12)}.Float32()
	if want := `gguf: tensor "short": 12 bytes, want 16 for F32 [4]`; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

// Version 2 has the same layout as 3 (v3 only added big-endian files, which
// declare themselves by a byte-swapped version).
func TestReadsVersion2(t *testing.T) {
	b, err := Encode([]KV{{"k", "v"}}, allTypesTensors(t)[:1])
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(b[4:], 2)
	f, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := f.String("k"); f.Version != 2 || err != nil || v != "v" || len(f.Tensors) != 1 {
		t.Errorf("version %d, k = %q (%v), %d tensors", f.Version, v, err, len(f.Tensors))
	}
}

func TestQuantizeQ8_0(t *testing.T) {
	x := make([]float32, 64)
	for j := range 32 {
		x[j] = float32(j - 16)
		x[32+j] = float32(math.Sin(float64(j))) * 1e-3
	}
	tn, err := FromFloat32("q", TypeQ8_0, []int{2, 32}, x)
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(tn.Dims, []uint64{32, 2}) || len(tn.Data) != 68 {
		t.Fatalf("dims %v, %d bytes; want [32 2], 68", tn.Dims, len(tn.Data))
	}
	// Block 0 worked out by hand in float32: d = 16/127 = 0.12598425 (f16
	// 0x3008), 1/d = 7.9375, q = roundf(x·7.9375); -8·7.9375 = -63.5 → -64.
	wantQ := []int8{-127, -119, -111, -103, -95, -87, -79, -71, -64, -56, -48, -40, -32, -24, -16, -8,
		0, 8, 16, 24, 32, 40, 48, 56, 64, 71, 79, 87, 95, 103, 111, 119}
	if d := binary.LittleEndian.Uint16(tn.Data); d != 0x3008 {
		t.Errorf("block 0 scale %#04x, want 0x3008", d)
	}
	for j, q := range wantQ {
		if int8(tn.Data[2+j]) != q {
			t.Errorf("block 0 q[%d] = %d, want %d", j, int8(tn.Data[2+j]), q)
		}
	}
	// Dequantized, every value is within half a step of the original, plus
	// up to 127 times the f16 rounding of the scale (block 1's scale, about
	// 7.9e-6, is an f16 subnormal, where that rounding is coarse).
	got, err := tn.Float32()
	if err != nil {
		t.Fatal(err)
	}
	for b := range 2 {
		var amax float64
		for _, v := range x[32*b : 32*b+32] {
			amax = math.Max(amax, math.Abs(float64(v)))
		}
		d := amax / 127
		d16 := float64(half.ToFloat32F16(binary.LittleEndian.Uint16(tn.Data[34*b:])))
		for j := range 32 {
			i := 32*b + j
			if e := math.Abs(float64(got[i]) - float64(x[i])); e > d/2*(1+1e-6)+127*math.Abs(d16-d) {
				t.Errorf("q[%d]: %g dequantizes to %g, error %g with step %g", i, x[i], got[i], e, d)
			}
		}
	}
	zero, _ := FromFloat32("z", TypeQ8_0, []int{32}, make([]float32, 32))
	if !bytes.Equal(zero.Data, make([]byte, 34)) {
		t.Errorf("all-zero block encodes as %x", zero.Data)
	}
	_, err = FromFloat32("odd", TypeQ8_0, []int{16}, make([]float32, 16))
	if want := `gguf: tensor "odd": Q8_0 needs an innermost dimension that is a multiple of 32, shape is [16]`; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

func TestGetters(t *testing.T) {
	b, err := Encode(allTypesMetadata(), nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := f.Uint32("u8"); err != nil || v != 200 {
		t.Errorf("Uint32(u8) = %d, %v: integer getters widen", v, err)
	}
	if v, err := f.Uint64("u64"); err != nil || v != 1<<60 {
		t.Errorf("Uint64(u64) = %d, %v", v, err)
	}
	if v, err := f.Int64("i16"); err != nil || v != -30000 {
		t.Errorf("Int64(i16) = %d, %v", v, err)
	}
	if v, err := f.Float32("f64"); err != nil || v != float32(math.Pi) {
		t.Errorf("Float32(f64) = %g, %v", v, err)
	}
	for _, c := range []struct {
		err  error
		want string
	}{
		{func() error { _, err := f.Uint32("absent"); return err }(), `gguf: metadata key "absent": missing`},
		{func() error { _, err := f.Uint32("u64"); return err }(), `gguf: metadata key "u64": value 1152921504606846976 does not fit in uint32`},
		{func() error { _, err := f.Uint32("i8"); return err }(), `gguf: metadata key "i8": value -100 is negative`},
		{func() error { _, err := f.Uint32("str"); return err }(), `gguf: metadata key "str": has type string, want an integer`},
		{func() error { _, err := f.Strings("a.i32"); return err }(), `gguf: metadata key "a.i32": has type array []int32, want array of string`},
		{func() error { _, err := f.Bool("f32"); return err }(), `gguf: metadata key "f32": has type float32, want bool`},
	} {
		if c.err == nil || c.err.Error() != c.want {
			t.Errorf("error = %v\nwant %s", c.err, c.want)
		}
	}
}

// header starts a hand-built file: magic, version, counts.
func header(version uint32, tensors, kvs uint64) *bytes.Buffer {
	var b bytes.Buffer
	e := encoder{&b}
	b.WriteString(Magic)
	e.u32(version)
	e.u64(tensors)
	e.u64(kvs)
	return &b
}

// tensorInfo appends one tensor description.
func tensorInfo(b *bytes.Buffer, name string, typ GGMLType, off uint64, dims ...uint64) {
	e := encoder{b}
	e.str(name)
	e.u32(uint32(len(dims)))
	for _, d := range dims {
		e.u64(d)
	}
	e.u32(uint32(typ))
	e.u64(off)
}

func withData(b *bytes.Buffer, n int) []byte {
	b.Write(make([]byte, padding(uint64(b.Len()), 32)+uint64(n)))
	return b.Bytes()
}

func TestRejectsCorruptFiles(t *testing.T) {
	kv := func(key string, t ValueType, raw ...byte) []byte {
		var b bytes.Buffer
		e := encoder{&b}
		e.str(key)
		e.u32(uint32(t))
		b.Write(raw)
		return b.Bytes()
	}
	file := func(version uint32, kvs [][]byte, infos func(*bytes.Buffer), ntensors uint64, data int) []byte {
		b := header(version, ntensors, uint64(len(kvs)))
		for _, k := range kvs {
			b.Write(k)
		}
		if infos != nil {
			infos(b)
		}
		return withData(b, data)
	}
	one := func(name string, typ GGMLType, off uint64, dims ...uint64) func(*bytes.Buffer) {
		return func(b *bytes.Buffer) { tensorInfo(b, name, typ, off, dims...) }
	}
	u32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	u64 := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
	for _, c := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "gguf: header: truncated: magic needs 4 bytes, 0 left (at byte 0)"},
		{"magic", []byte("GGML\x03\x00\x00\x00"), `gguf: header: magic "GGML" is not "GGUF" (at byte 0)`},
		{"version 1", file(1, nil, nil, 0, 0), "gguf: header: version 1 is not supported (only 2 and 3) (at byte 4)"},
		{"big-endian", file(3<<24, nil, nil, 0, 0), "gguf: header: big-endian GGUF (version 3) is not supported (at byte 4)"},
		{"tensor count", append(header(3, 1<<40, 0).Bytes(), make([]byte, 64)...), "gguf: header: tensor count 1099511627776 cannot fit in the 64 bytes left (at byte 24)"},
		{"metadata count", append(header(3, 0, 1<<62).Bytes(), make([]byte, 64)...), "gguf: header: metadata count 4611686018427387904 cannot fit in the 64 bytes left (at byte 24)"},
		{"key length", file(3, [][]byte{append(u64(1<<50), "k"...)}, nil, 0, 0), "gguf: metadata entry 0: truncated: key needs 1125899906842624 bytes, 32 left (at byte 32)"},
		{"value type", file(3, [][]byte{kv("k", 13, 0, 0, 0, 0)}, nil, 0, 0), `gguf: metadata key "k": unknown value type 13 (at byte 33)`},
		{"bool", file(3, [][]byte{kv("k", TypeBool, 2)}, nil, 0, 0), `gguf: metadata key "k": bool byte 2 is neither 0 nor 1 (at byte 37)`},
		{"array length", file(3, [][]byte{kv("k", TypeArray, append(u32(uint32(TypeUint32)), u64(1<<40)...)...)}, nil, 0, 0),
			`gguf: metadata key "k": truncated: array of 1099511627776 uint32 needs at least 4 bytes per element, 15 bytes left (at byte 49)`},
		{"array type", file(3, [][]byte{kv("k", TypeArray, append(u32(99), u64(1)...)...)}, nil, 0, 0),
			`gguf: metadata key "k": array of unknown value type 99 (at byte 37)`},
		{"duplicate key", file(3, [][]byte{kv("k", TypeUint8, 1), kv("k", TypeUint8, 2)}, nil, 0, 0),
			`gguf: metadata key "k": duplicate key (at byte 47)`},
		{"alignment type", file(3, [][]byte{kv(AlignmentKey, TypeUint64, u64(32)...)}, nil, 0, 0),
			`gguf: metadata key "general.alignment": has type uint64, want uint32 (at byte 61)`},
		{"alignment value", file(3, [][]byte{kv(AlignmentKey, TypeUint32, u32(48)...)}, nil, 0, 0),
			`gguf: metadata key "general.alignment": alignment 48 is not a power of two (at byte 57)`},
		{"dims", file(3, nil, one("w", TypeF32, 0, 1, 1, 1, 1, 1), 1, 64), `gguf: tensor "w": 5 dimensions, at most 4 allowed (at byte 33)`},
		{"dims huge", file(3, nil, func(b *bytes.Buffer) { encoder{b}.str("w"); encoder{b}.u32(math.MaxUint32) }, 1, 0),
			`gguf: tensor "w": 4294967295 dimensions, at most 4 allowed (at byte 33)`},
		{"ggml type", file(3, nil, one("w", 31, 0, 4), 1, 64), `gguf: tensor "w": unsupported ggml type 31 (at byte 57)`},
		{"block size", file(3, nil, one("w", TypeQ8_0, 0, 16), 1, 64), `gguf: tensor "w": innermost dimension 16 is not a multiple of the Q8_0 block size 32 (at byte 57)`},
		{"overflow", file(3, nil, one("w", TypeF32, 0, 1<<32, 1<<32), 1, 64), `gguf: tensor "w": dimensions [4294967296 4294967296] overflow (at byte 65)`},
		{"misaligned", file(3, nil, one("w", TypeF32, 4, 4), 1, 64), `gguf: tensor "w": data offset 4 is not a multiple of the alignment 32 (at byte 57)`},
		{"duplicate tensor", file(3, nil, func(b *bytes.Buffer) { tensorInfo(b, "w", TypeF32, 0, 4); tensorInfo(b, "w", TypeF32, 32, 4) }, 2, 64),
			`gguf: tensor "w": duplicate tensor name (at byte 66)`},
		{"overlap", file(3, nil, func(b *bytes.Buffer) { tensorInfo(b, "a", TypeF32, 0, 16); tensorInfo(b, "b", TypeF32, 32, 4) }, 2, 64),
			`gguf: tensor "b": data [32,48) overlaps tensor "a", which ends at 64`},
		{"data past end", file(3, nil, one("w", TypeF32, 0, 20), 1, 64), `gguf: tensor "w": truncated: data [0,80) runs past the 64-byte data section starting at byte 64`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.in)
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error = %v, want a *FormatError", err)
			}
			if err.Error() != c.want {
				t.Errorf("error:\n got %s\nwant %s", err, c.want)
			}
		})
	}
}

// Every truncation of a valid file that cuts into the header or a tensor's
// data is an error, never a panic; only the last tensor's trailing padding
// may go missing.
func TestEveryTruncationFails(t *testing.T) {
	b, err := Encode(allTypesMetadata(), allTypesTensors(t))
	if err != nil {
		t.Fatal(err)
	}
	f, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	last := f.Tensors[len(f.Tensors)-1]
	end := len(b) - int(padding(uint64(len(last.Data)), f.Alignment))
	for n := range len(b) {
		_, err := Decode(b[:n])
		switch {
		case n < end && err == nil:
			t.Fatalf("Decode accepted the first %d of %d bytes", n, len(b))
		case n < end && !strings.HasPrefix(err.Error(), "gguf: "):
			t.Fatalf("error without package prefix: %v", err)
		case n >= end && err != nil:
			t.Fatalf("Decode rejected a file missing only trailing padding: %v", err)
		}
	}
}

func TestOpenNamesFile(t *testing.T) {
	src := shareddata.Path(t, "models", "stories260K", "stories260K.gguf")
	orig, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, c := range []struct {
		size int
		want string
	}{
		{0, "header: truncated: magic needs 4 bytes, 0 left (at byte 0)"},
		{10000, `metadata key "tokenizer.ggml.token_type": truncated: array of 512 int32 needs at least 4 bytes per element, 790 bytes left (at byte 9210)`},
		{14000, "tensor 43: truncated: name length needs 8 bytes, 6 left (at byte 13994)"},
		{1185000, `tensor "output.weight": truncated: data [1040128,1171200) runs past the 1170696-byte data section starting at byte 14304`},
	} {
		path := filepath.Join(dir, "cut.gguf")
		if err := os.WriteFile(path, orig[:c.size], 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Open(path)
		if want := "gguf: " + path + ": " + c.want; err == nil || err.Error() != want {
			t.Errorf("cut at %d: error\n got %v\nwant %s", c.size, err, want)
		}
	}
	if _, err := Open(filepath.Join(dir, "absent.gguf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error = %v, want one wrapping os.ErrNotExist", err)
	}
}

func TestWriteRejects(t *testing.T) {
	good, _ := FromFloat32("w", TypeF32, []int{1}, []float32{1})
	for _, c := range []struct {
		name    string
		meta    []KV
		tensors []Tensor
		want    string
	}{
		{"value type", []KV{{"k", 3}}, nil, `gguf: metadata key "k": Go type int has no GGUF value type`},
		{"duplicate key", []KV{{"k", "a"}, {"k", "b"}}, nil, `gguf: metadata key "k": duplicate key`},
		{"alignment", []KV{{AlignmentKey, uint32(3)}}, nil, `gguf: metadata key "general.alignment": alignment must be a uint32 power of two, got 3 (uint32)`},
		{"nested", []KV{{"k", []any{"x"}}}, nil, `gguf: metadata key "k": element 0 of an array of arrays is a string, not an array`},
		{"size", nil, []Tensor{{Name: "w", Type: TypeF32, Dims: []uint64{2}, Data: make([]byte, 4)}}, `gguf: tensor "w": F32 [2] needs 8 bytes, have 4`},
		{"duplicate tensor", nil, []Tensor{good, good}, `gguf: tensor "w": duplicate tensor name`},
		{"long name", nil, []Tensor{{Name: strings.Repeat("n", 64), Type: TypeF32, Dims: []uint64{0}}},
			`gguf: tensor "` + strings.Repeat("n", 64) + `": name of 64 bytes is too long for llama.cpp (at most 63)`},
	} {
		if _, err := Encode(c.meta, c.tensors); err == nil || err.Error() != c.want {
			t.Errorf("%s: error = %v\nwant %s", c.name, err, c.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	b, err := Encode(allTypesMetadata(), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	tn, _ := FromFloat32("w", TypeF16, []int{2, 2}, []float32{1, 2, 3, 4})
	b, _ = Encode([]KV{{"general.architecture", "llama"}, {"a", []any{[]uint8{1}}}}, []Tensor{tn, {Name: "q", Type: TypeQ8_0, Dims: []uint64{32}, Data: q8Block(0x3c00, func(j int) int8 { return int8(j) })}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		dec, err := Decode(b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "gguf: ") {
				t.Fatalf("error without package prefix: %v", err)
			}
			return
		}
		for _, tn := range dec.Tensors {
			if tn.Type == TypeF32 || tn.Type == TypeF16 || tn.Type == TypeBF16 || tn.Type == TypeQ8_0 {
				if _, err := tn.Float32(); err != nil {
					t.Fatalf("a tensor that decoded does not convert: %v", err)
				}
			}
		}
		// Whatever decodes re-encodes to a canonical form that is stable.
		enc, err := Encode(dec.Metadata, dec.Tensors)
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		dec2, err := Decode(enc)
		if err != nil {
			t.Fatalf("decoding the re-encoded file: %v", err)
		}
		enc2, err := Encode(dec2.Metadata, dec2.Tensors)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not canonical (%v)", err)
		}
	})
}
