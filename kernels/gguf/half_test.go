package gguf

import (
	"encoding/binary"
	"math"
	"testing"
)

// half.go duplicates the safetensors package's conversions, which are tested
// there against midpoints; here every pattern must survive a round trip and
// the bulk decoders must match the scalar ones.
func TestHalfRoundTrip(t *testing.T) {
	all := make([]byte, 2<<16)
	for h := range 1 << 16 {
		binary.LittleEndian.PutUint16(all[2*h:], uint16(h))
	}
	f16s, bf16s := make([]float32, 1<<16), make([]float32, 1<<16)
	decodeF16(f16s, all)
	decodeBF16(bf16s, all)
	for h := range 1 << 16 {
		if math.Float32bits(f16s[h]) != math.Float32bits(f16ToFloat32(uint16(h))) || math.Float32bits(bf16s[h]) != uint32(h)<<16 {
			t.Fatalf("bulk decoding of %#04x differs from the scalar conversion", h)
		}
		if !math.IsNaN(float64(f16s[h])) && float32ToF16(f16s[h]) != uint16(h) {
			t.Fatalf("f16 %#04x → %g → %#04x", h, f16s[h], float32ToF16(f16s[h]))
		}
		if !math.IsNaN(float64(bf16s[h])) && float32ToBF16(bf16s[h]) != uint16(h) {
			t.Fatalf("bf16 %#04x → %g → %#04x", h, bf16s[h], float32ToBF16(bf16s[h]))
		}
	}
	for _, c := range []struct {
		f         float32
		f16, bf16 uint16
	}{
		{0.1, 0x2e66, 0x3dcd},
		{65520, 0x7c00, 0x4780},
		{1.0 / (1 << 25), 0x0000, 0x3300},
		{math.Float32frombits(0x3f818000), 0x3c0c, 0x3f82},
	} {
		if got := float32ToF16(c.f); got != c.f16 {
			t.Errorf("float32ToF16(%g) = %#04x, want %#04x", c.f, got, c.f16)
		}
		if got := float32ToBF16(c.f); got != c.bf16 {
			t.Errorf("float32ToBF16(%g) = %#04x, want %#04x", c.f, got, c.bf16)
		}
	}
}
