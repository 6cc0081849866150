package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
)

// pythonI32 is what the reference Python library writes for
// save({"test": torch.zeros((2, 2), dtype=torch.int32)}) (its own test,
// bindings/python/tests/test_pt_comparison.py): a 60-byte header padded with
// four spaces to 64 ('@'), then sixteen zero bytes.
var pythonI32 = []byte("@\x00\x00\x00\x00\x00\x00\x00" +
	`{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}` + "    " +
	"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")

// pythonMixed follows the reference writer's rules by hand for
// save({"a": bf16[1] = 1.0, "b": f32[2] = {1, -2}}, metadata={"format": "pt"}):
// the Rust core orders tensors by dtype size, largest first, then by name,
// writes "__metadata__" first and pads the 140-byte header to 144 (0x90).
var pythonMixed = []byte("\x90\x00\x00\x00\x00\x00\x00\x00" +
	`{"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"BF16","shape":[1],"data_offsets":[8,10]}}` +
	"    " +
	"\x00\x00\x80\x3f" + "\x00\x00\x00\xc0" + // 1.0, -2.0 (float32 LE)
	"\x80\x3f") // 1.0 (bfloat16 LE)

func TestEncodeMatchesReferenceBytes(t *testing.T) {
	got, err := Encode([]Tensor{I32("test", []int{2, 2}, make([]int32, 4))}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pythonI32) {
		t.Errorf("Encode:\n got %q\nwant %q", got, pythonI32)
	}

	a, err := FromFloat32("a", DTypeBF16, []int{1}, []float32{1})
	if err != nil {
		t.Fatal(err)
	}
	got, err = Encode([]Tensor{F32("b", []int{2}, []float32{1, -2}), a}, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pythonMixed) {
		t.Errorf("Encode:\n got %q\nwant %q", got, pythonMixed)
	}
}

func TestDecodeReferenceBytes(t *testing.T) {
	f, err := Decode(pythonMixed)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"format": "pt"}, f.Metadata); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"b", "a"}, f.Names()); diff != "" {
		t.Errorf("names in data order (-want +got):\n%s", diff)
	}
	for name, want := range map[string][]float32{"a": {1}, "b": {1, -2}} {
		tn, ok := f.Tensor(name)
		if !ok {
			t.Fatalf("tensor %q missing", name)
		}
		got, err := tn.Float32()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("tensor %q (-want +got):\n%s", name, diff)
		}
	}
	if _, ok := f.Tensor("c"); ok {
		t.Error("Tensor(\"c\") found a tensor that does not exist")
	}

	f, err = Decode(pythonI32)
	if err != nil {
		t.Fatal(err)
	}
	tn, _ := f.Tensor("test")
	ids, err := tn.Int32()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int32{0, 0, 0, 0}, ids); diff != "" {
		t.Error(diff)
	}
	if f.Metadata != nil {
		t.Errorf("metadata = %v, want nil", f.Metadata)
	}
}

func TestRoundTrip(t *testing.T) {
	vals := []float32{0, -0, 1, -1.5, 3.1415927, 1e-40 /* subnormal */, float32(math.Inf(-1)), math.MaxFloat32, math.Float32frombits(0x7fc00001)}
	bf, _ := FromFloat32("h.bf16", DTypeBF16, []int{3, 3}, vals)
	hf, _ := FromFloat32("h.f16", DTypeF16, []int{9}, vals)
	in := []Tensor{
		F32("w", []int{3, 3}, vals),
		I32("ids", []int{2, 3}, []int32{1, -2, 3, math.MaxInt32, math.MinInt32, 0}),
		F32("scalar", []int{}, []float32{42}),
		F32("empty", []int{0, 7}, nil),
		bf, hf,
		{Name: "bytes<&>\"\n", DType: DTypeU8, Shape: []int{3}, Data: []byte{1, 2, 3}},
		{Name: "f64", DType: DTypeF64, Shape: []int{1}, Data: binary.LittleEndian.AppendUint64(nil, math.Float64bits(math.Pi))},
	}
	meta := map[string]string{"z": "last", "a": "first", "unicode": "héllo ▁"}
	enc, err := Encode(in, meta)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, in, meta); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), enc) {
		t.Error("Write and Encode produce different bytes")
	}
	if hl := binary.LittleEndian.Uint64(enc); hl%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", hl)
	}
	f, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, f.Tensors()); diff != "" {
		t.Errorf("tensors (-in +decoded):\n%s", diff)
	}
	if diff := cmp.Diff(meta, f.Metadata); diff != "" {
		t.Errorf("metadata (-in +decoded):\n%s", diff)
	}
	w, _ := f.Tensor("w")
	got, err := w.Float32()
	if err != nil {
		t.Fatal(err)
	}
	for i := range vals {
		if math.Float32bits(got[i]) != math.Float32bits(vals[i]) {
			t.Errorf("w[%d] = %#x, want %#x (F32 must round-trip bit for bit)", i, math.Float32bits(got[i]), math.Float32bits(vals[i]))
		}
	}
	// Encoding is deterministic: metadata keys are sorted.
	again, _ := Encode(f.Tensors(), f.Metadata)
	if !bytes.Equal(again, enc) {
		t.Error("re-encoding the decoded file changed its bytes")
	}
}

func TestDecodeAliasesInput(t *testing.T) {
	enc, _ := Encode([]Tensor{F32("a", []int{2}, []float32{1, 2}), F32("b", []int{1}, []float32{3})}, nil)
	f, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := f.Tensor("a")
	if unsafe.SliceData(a.Data) != &enc[len(enc)-12] {
		t.Error("tensor data was copied; it should alias the input buffer")
	}
	if cap(a.Data) != len(a.Data) {
		t.Errorf("cap(a.Data) = %d: appending would overwrite tensor b", cap(a.Data))
	}
}

// TestHalfTensors checks that F16 and BF16 tensors round to nearest even
// when built and widen exactly when read, in little-endian bytes; the
// conversions themselves are tested exhaustively in kernels/half.
func TestHalfTensors(t *testing.T) {
	cases := []struct {
		f         float32
		f16, bf16 uint16
	}{
		{1, 0x3c00, 0x3f80},
		{-2.5, 0xc100, 0xc020},
		{65504, 0x7bff, 0x4780},
		{65520, 0x7c00, 0x4780}, // halfway above f16 max rounds (to even) to infinity
		{0.1, 0x2e66, 0x3dcd},
		{1.0 / (1 << 24), 0x0001, 0x3380}, // smallest f16 subnormal
		{1.0 / (1 << 25), 0x0000, 0x3300}, // exactly half of it: ties to even, zero
		{3.0 / (1 << 26), 0x0001, 0x3340}, // above half: rounds up
		{float32(math.Inf(1)), 0x7c00, 0x7f80},
		{float32(math.Copysign(0, -1)), 0x8000, 0x8000},
		{math.Float32frombits(0x3f808000), 0x3c04, 0x3f80}, // bf16 tie, even stays
		{math.Float32frombits(0x3f818000), 0x3c0c, 0x3f82}, // bf16 tie, odd rounds up
	}
	v := make([]float32, len(cases))
	for i, c := range cases {
		v[i] = c.f
	}
	for _, dt := range []DType{DTypeF16, DTypeBF16} {
		tn, err := FromFloat32("w", dt, []int{len(v)}, v)
		if err != nil {
			t.Fatal(err)
		}
		back, err := tn.Float32()
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range cases {
			want := c.f16
			wide := float64(back[i])
			if dt == DTypeBF16 {
				want = c.bf16
			}
			if got := binary.LittleEndian.Uint16(tn.Data[2*i:]); got != want {
				t.Errorf("%s: %g encodes as %#04x, want %#04x", dt, c.f, got, want)
			}
			// The stored pattern widens exactly: re-derive its value from the fields.
			sign, exp, mant := 1.0, int(want>>10&0x1f), float64(want&0x3ff)
			if want&0x8000 != 0 {
				sign = -1
			}
			wantWide := sign * math.Ldexp(1+mant/1024, exp-15)
			switch {
			case dt == DTypeBF16:
				wantWide = float64(math.Float32frombits(uint32(want) << 16))
			case exp == 0x1f:
				wantWide = math.Inf(int(sign))
			case exp == 0:
				wantWide = sign * math.Ldexp(mant, -24)
			}
			if wide != wantWide || math.Signbit(wide) != math.Signbit(wantWide) {
				t.Errorf("%s: %#04x reads as %g, want %g", dt, want, wide, wantWide)
			}
		}
	}
	nan, _ := FromFloat32("nan", DTypeBF16, []int{1}, []float32{math.Float32frombits(0x7f800001)})
	if h := binary.LittleEndian.Uint16(nan.Data); h&0x7f80 != 0x7f80 || h&0x7f == 0 {
		t.Errorf("BF16 of a signalling NaN with a low payload = %#04x, not a NaN", h)
	}
}

// st builds a file from a literal header and a data buffer, without padding,
// the way a hostile writer would.
func st(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

func TestDecodeRejectsHostileHeaders(t *testing.T) {
	d16 := make([]byte, 16)
	huge := binary.LittleEndian.AppendUint64(nil, 200<<20)
	for _, c := range []struct {
		name   string
		in     []byte
		tensor string // the tensor the FormatError must name, "" for none
		want   string // the full message
	}{
		{"short", []byte{1, 2, 3}, "",
			"safetensors: 3 bytes is too short for the 8-byte header length"},
		{"length past end", append(binary.LittleEndian.AppendUint64(nil, 1000), "{}"...), "",
			"safetensors: header length 1000 exceeds the 2 bytes after the length prefix"},
		{"length over limit", append(huge, "{}"...), "",
			"safetensors: header length 209715200 exceeds the 104857600-byte limit"},
		{"invalid JSON", st(`{"a":{"dtype":"F32",`, nil), "a",
			`safetensors: tensor "a": header entry is not a JSON object: unexpected EOF`},
		{"invalid JSON key", st(`{1:2}`, nil), "",
			`safetensors: header is not valid JSON: invalid character '1'`},
		{"not an object", st(`["a"]`, nil), "",
			"safetensors: header does not start with '{'"},
		{"invalid UTF-8", st("{\"\xff\":1}", nil), "",
			"safetensors: header is not valid UTF-8"},
		{"trailing junk", st(`{} x`, nil), "",
			"safetensors: header has data after the JSON object"},
		{"unknown dtype", st(`{"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}`, d16), "w",
			`safetensors: tensor "w": unknown dtype "F128"`},
		{"duplicate", st(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, d16), "w",
			`safetensors: tensor "w": duplicate entry in header`},
		{"overlap", st(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, d16), "b",
			`safetensors: tensor "b": data_offsets [8,16] overlap tensor "a", which ends at 12`},
		{"gap", st(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, d16), "b",
			`safetensors: tensor "b": data_offsets [8,16] leave a gap after tensor "a", which ends at 4`},
		{"late start", st(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, d16), "a",
			`safetensors: tensor "a": data_offsets [8,16] leave bytes [0,8) unused: the first tensor must start at 0`},
		{"out of range", st(`{"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}}`, d16), "a",
			`safetensors: tensor "a": data_offsets [0,32] run past the 16-byte data buffer`},
		{"reversed", st(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[16,0]}}`, d16), "a",
			`safetensors: tensor "a": data_offsets [16,0] end before they begin`},
		{"size mismatch", st(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}`, d16), "a",
			`safetensors: tensor "a": shape [3] of F32 is 12 bytes but data_offsets [0,16] hold 16`},
		{"shape overflow", st(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}}`, d16), "a",
			`safetensors: tensor "a": shape [4294967296 4294967296] of F32 is 0 bytes but data_offsets [0,16] hold 16`},
		{"negative dim", st(`{"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}}`, d16), "a",
			`safetensors: tensor "a": shape is not a list of non-negative integers: json: cannot unmarshal number -4 into Go value of type uint64`},
		{"missing field", st(`{"a":{"dtype":"F32","data_offsets":[0,16]}}`, d16), "a",
			`safetensors: tensor "a": missing field "shape"`},
		{"three offsets", st(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16,32]}}`, d16), "a",
			`safetensors: tensor "a": data_offsets is not a pair of non-negative integers`},
		{"trailing data bytes", st(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, d16), "",
			"safetensors: tensors cover 8 bytes of the 16-byte data buffer; trailing bytes are not allowed"},
		{"metadata not strings", st(`{"__metadata__":{"n":1}}`, nil), "",
			"safetensors: __metadata__ is not a map of strings to strings: json: cannot unmarshal number into Go value of type string"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.in)
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("Decode error = %v, want a *FormatError", err)
			}
			if fe.Tensor != c.tensor {
				t.Errorf("error names tensor %q, want %q", fe.Tensor, c.tensor)
			}
			if err.Error() != c.want {
				t.Errorf("error:\n got %s\nwant %s", err, c.want)
			}
		})
	}
}

func TestEncodeRejectsBadTensors(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []Tensor
		want string
	}{
		{"size", []Tensor{{Name: "w", DType: DTypeF32, Shape: []int{3}, Data: make([]byte, 8)}},
			`safetensors: tensor "w": shape [3] of F32 needs 12 bytes, have 8`},
		{"dtype", []Tensor{{Name: "w", DType: "F4", Shape: []int{1}, Data: make([]byte, 1)}},
			`safetensors: tensor "w": unknown dtype "F4"`},
		{"negative", []Tensor{{Name: "w", DType: DTypeU8, Shape: []int{-1}}},
			`safetensors: tensor "w": shape [-1] has a negative dimension or overflows`},
		{"duplicate", []Tensor{F32("w", []int{1}, []float32{1}), F32("w", []int{1}, []float32{2})},
			`safetensors: tensor "w": duplicate tensor name`},
		{"reserved", []Tensor{F32("__metadata__", []int{1}, []float32{1})},
			`safetensors: tensor "__metadata__": reserved or empty tensor name`},
	} {
		if _, err := Encode(c.in, nil); err == nil || err.Error() != c.want {
			t.Errorf("%s: Encode error = %v, want %s", c.name, err, c.want)
		}
	}
}

func TestFloat32RejectsNonFloat(t *testing.T) {
	_, err := I32("ids", []int{1}, []int32{7}).Float32()
	if want := `safetensors: tensor "ids": dtype I32 is not a float type convertible to float32`; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
	_, err = F32("x", []int{1}, []float32{7}).Int32()
	if want := `safetensors: tensor "x": dtype F32, want I32`; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(pythonI32)
	f.Add(pythonMixed)
	f.Add(st(`{"a":{"dtype":"F16","shape":[2,1],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[0],"data_offsets":[4,4]}}`, make([]byte, 4)))
	f.Add(st(`{"__metadata__":{"k":"v"}}`, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		dec, err := Decode(b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "safetensors: ") {
				t.Fatalf("error without package prefix: %v", err)
			}
			return
		}
		// Whatever decodes must re-encode to a canonical form that decodes to
		// the same tensors and re-encodes to the very same bytes.
		enc, err := Encode(dec.Tensors(), dec.Metadata)
		if err != nil {
			t.Fatalf("re-encoding a decoded file: %v", err)
		}
		dec2, err := Decode(enc)
		if err != nil {
			t.Fatalf("decoding a re-encoded file: %v", err)
		}
		if diff := cmp.Diff(dec.Tensors(), dec2.Tensors()); diff != "" {
			t.Fatalf("tensors changed (-first +second):\n%s", diff)
		}
		enc2, _ := Encode(dec2.Tensors(), dec2.Metadata)
		if !bytes.Equal(enc, enc2) {
			t.Fatal("encoding is not canonical")
		}
	})
}
