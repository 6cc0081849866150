package half

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

func isNaNF16(h uint16) bool  { return h&0x7c00 == 0x7c00 && h&0x3ff != 0 }
func isNaNBF16(h uint16) bool { return h&0x7f80 == 0x7f80 && h&0x7f != 0 }

// TestF16Exhaustive checks every binary16 pattern: it widens to the value
// its fields define (recomputed in float64), finite ones narrow back to
// themselves, and between two neighbours the float64 midpoint ties to the
// even one while the float32s on either side of it round to the nearer one.
func TestF16Exhaustive(t *testing.T) {
	for h := range 1 << 16 {
		f := ToFloat32F16(uint16(h))
		exp, mant := h>>10&0x1f, h&0x3ff
		var want float64
		switch exp {
		case 0x1f:
			want = math.Inf(1)
		case 0:
			want = math.Ldexp(float64(mant), -24)
		default:
			want = math.Ldexp(float64(0x400|mant), exp-25)
		}
		if h&0x8000 != 0 {
			want = -want
		}
		if isNaNF16(uint16(h)) {
			// The payload is kept bit for bit, signalling or quiet.
			if b := math.Float32bits(f); b != uint32(h&0x8000)<<16|0x7f800000|uint32(mant)<<13 {
				t.Fatalf("ToFloat32F16(%#04x) = %#08x, want the NaN with the same payload", h, b)
			}
			continue
		}
		if float64(f) != want || math.Signbit(float64(f)) != (h&0x8000 != 0) {
			t.Fatalf("ToFloat32F16(%#04x) = %g, want %g", h, f, want)
		}
		if back := FromFloat32F16(f); back != uint16(h) {
			t.Fatalf("f16 %#04x → %g → %#04x", h, f, back)
		}
		if h&0x7fff >= 0x7bff { // the largest finite value and infinity have no finite upper neighbour
			continue
		}
		next := ToFloat32F16(uint16(h + 1))
		mid := float32((float64(f) + float64(next)) / 2) // exact: one more bit than a half has
		even := uint16(h)
		if h&1 == 1 {
			even = uint16(h + 1)
		}
		if got := FromFloat32F16(mid); got != even {
			t.Fatalf("FromFloat32F16(midpoint %g of %#04x,%#04x) = %#04x, want %#04x", mid, h, h+1, got, even)
		}
		if got, towardH := FromFloat32F16(math.Nextafter32(mid, f)), math.Nextafter32(mid, f); got != uint16(h) {
			t.Fatalf("FromFloat32F16(%g) = %#04x, want %#04x", towardH, got, h)
		}
		if got, towardNext := FromFloat32F16(math.Nextafter32(mid, next)), math.Nextafter32(mid, next); got != uint16(h+1) {
			t.Fatalf("FromFloat32F16(%g) = %#04x, want %#04x", towardNext, got, h+1)
		}
	}
}

// TestBF16Exhaustive does the same for bfloat16, whose value is the top half
// of a float32, so its neighbours' midpoint is the pattern with 0x8000 below.
func TestBF16Exhaustive(t *testing.T) {
	for h := range 1 << 16 {
		f := ToFloat32BF16(uint16(h))
		if b := math.Float32bits(f); b != uint32(h)<<16 {
			t.Fatalf("ToFloat32BF16(%#04x) = %#08x", h, b)
		}
		if isNaNBF16(uint16(h)) {
			continue
		}
		if back := FromFloat32BF16(f); back != uint16(h) {
			t.Fatalf("bf16 %#04x → %g → %#04x", h, f, back)
		}
		if h&0x7fff >= 0x7f80 { // infinity: the midpoint above it would be a NaN
			continue
		}
		mid := uint32(h)<<16 | 0x8000
		even := uint16(h)
		if h&1 == 1 {
			even = uint16(h + 1) // the largest finite value's odd tie carries into infinity, as IEEE requires
		}
		for _, c := range []struct {
			bits uint32
			want uint16
		}{{mid, even}, {mid - 1, uint16(h)}, {mid + 1, uint16(h + 1)}} {
			if got := FromFloat32BF16(math.Float32frombits(c.bits)); got != c.want {
				t.Fatalf("FromFloat32BF16(%#08x) = %#04x, want %#04x", c.bits, got, c.want)
			}
		}
	}
}

// nearestCheck asserts that h is a correctly rounded 16-bit value of f (to
// nearest, ties to even), measuring distances in float64 against both
// neighbours of h.
func nearestCheck(t *testing.T, name string, f float32, h uint16, widen func(uint16) float32) {
	t.Helper()
	got := float64(widen(h))
	if math.IsInf(got, 0) {
		// Overflow: IEEE rounds to infinity from the largest finite value
		// plus half its ulp on (65520 for f16).
		if name == "f16" && math.Abs(float64(f)) < 65520 {
			t.Fatalf("%s(%g) = infinity, want finite", name, f)
		}
		return
	}
	e := math.Abs(got - float64(f))
	for _, n := range []uint16{h - 1, h + 1} {
		w := float64(widen(n))
		if n&0x7fff >= 0x7c00 && name == "f16" || math.IsNaN(w) || math.IsInf(w, 0) || math.Signbit(w) != math.Signbit(got) && w != 0 {
			continue
		}
		d := math.Abs(w - float64(f))
		if d < e || d == e && h&1 == 1 {
			t.Fatalf("%s(%g) = %#04x (%g), but %#04x (%g) is nearer or an even tie", name, f, h, got, n, w)
		}
	}
}

// TestNarrowRandom rounds random floats over the whole f16 range,
// subnormals included, and random float32 bit patterns for bf16.
func TestNarrowRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		f := float32(math.Ldexp(r.Float64()*2-1, r.IntN(44)-26))
		nearestCheck(t, "f16", f, FromFloat32F16(f), ToFloat32F16)
		g := math.Float32frombits(r.Uint32())
		if g == g && !math.IsInf(float64(g), 0) && math.Abs(float64(g)) < 3e38 {
			nearestCheck(t, "bf16", g, FromFloat32BF16(g), ToFloat32BF16)
		}
	}
}

func TestEdgeCases(t *testing.T) {
	for _, c := range []struct {
		f         float32
		f16, bf16 uint16
	}{
		{1, 0x3c00, 0x3f80},
		{-2.5, 0xc100, 0xc020},
		{0.1, 0x2e66, 0x3dcd},
		{1 + 0x1p-11, 0x3c00, 0x3f80},                      // f16 tie, even stays
		{1 + 3*0x1p-11, 0x3c02, 0x3f80},                    // f16 tie, odd rounds up
		{math.Float32frombits(0x3f808000), 0x3c04, 0x3f80}, // bf16 tie, even stays
		{math.Float32frombits(0x3f818000), 0x3c0c, 0x3f82}, // bf16 tie, odd rounds up
		{65504, 0x7bff, 0x4780},
		{65519.99, 0x7bff, 0x4780},
		{65520, 0x7c00, 0x4780}, // halfway above the f16 maximum ties (to even) to infinity
		{-1e6, 0xfc00, 0xc974},
		{math.MaxFloat32, 0x7c00, 0x7f80},
		{0x1p-24, 0x0001, 0x3380},           // smallest f16 subnormal
		{0x1p-25, 0x0000, 0x3300},           // exactly half of it: ties to even, zero
		{0x1p-25 * 1.0001, 0x0001, 0x3300},  // just above half: rounds up
		{3 * 0x1p-26, 0x0001, 0x3340},       // above half: rounds up
		{0x1p-24 * 1.5, 0x0002, 0x33c0},     // subnormal tie, odd rounds up
		{0x1p-14 - 0x1p-25, 0x0400, 0x3880}, // subnormal rounding carries into the smallest normal
		{-0x1p-14, 0x8400, 0xb880},
		{1e-40, 0x0000, 0x0001}, // a float32 subnormal
		{float32(math.Inf(1)), 0x7c00, 0x7f80},
		{float32(math.Inf(-1)), 0xfc00, 0xff80},
		{float32(math.Copysign(0, -1)), 0x8000, 0x8000},
	} {
		if got := FromFloat32F16(c.f); got != c.f16 {
			t.Errorf("FromFloat32F16(%g) = %#04x, want %#04x", c.f, got, c.f16)
		}
		if got := FromFloat32BF16(c.f); got != c.bf16 {
			t.Errorf("FromFloat32BF16(%g) = %#04x, want %#04x", c.f, got, c.bf16)
		}
	}
	// NaNs stay NaNs of the same sign, made quiet, keeping the top of the
	// payload. A signalling NaN whose payload sits below the kept bits would
	// become an infinity if it were truncated.
	for _, c := range []struct {
		bits      uint32
		f16, bf16 uint16
	}{
		{0x7fc00000, 0x7e00, 0x7fc0},
		{0xffc00000, 0xfe00, 0xffc0},
		{0x7f800001, 0x7e00, 0x7fc0},
		{0x7fa02000, 0x7f01, 0x7fe0},
	} {
		f := math.Float32frombits(c.bits)
		if got := FromFloat32F16(f); got != c.f16 {
			t.Errorf("FromFloat32F16(%#08x) = %#04x, want %#04x", c.bits, got, c.f16)
		}
		if got := FromFloat32BF16(f); got != c.bf16 {
			t.Errorf("FromFloat32BF16(%#08x) = %#04x, want %#04x", c.bits, got, c.bf16)
		}
	}
}

// TestBulk checks that every bulk function agrees with the scalar
// conversion on every 16-bit pattern (and on the float32s those widen to).
func TestBulk(t *testing.T) {
	const n = 1 << 16
	patterns := make([]uint16, n)
	bytes := make([]byte, 2*n)
	for h := range n {
		patterns[h] = uint16(h)
		binary.LittleEndian.PutUint16(bytes[2*h:], uint16(h))
	}
	for _, c := range []struct {
		name   string
		widen  func([]float32, []uint16)
		decode func([]float32, []byte)
		narrow func([]uint16, []float32)
		encode func([]byte, []float32)
		to     func(uint16) float32
		from   func(float32) uint16
	}{
		{"f16", WidenF16, DecodeF16, NarrowF16, EncodeF16, ToFloat32F16, FromFloat32F16},
		{"bf16", WidenBF16, DecodeBF16, NarrowBF16, EncodeBF16, ToFloat32BF16, FromFloat32BF16},
	} {
		widened, decoded := make([]float32, n), make([]float32, n)
		c.widen(widened, patterns)
		c.decode(decoded, bytes)
		for h := range n {
			want := math.Float32bits(c.to(uint16(h)))
			if math.Float32bits(widened[h]) != want || math.Float32bits(decoded[h]) != want {
				t.Fatalf("%s: bulk widening of %#04x = %#08x, %#08x; want %#08x", c.name, h, math.Float32bits(widened[h]), math.Float32bits(decoded[h]), want)
			}
		}
		// Narrow values between the patterns too, so rounding is exercised.
		src := make([]float32, n)
		for h := range n {
			src[h] = math.Float32frombits(math.Float32bits(widened[h]) + uint32(h%3)*0x0fff)
		}
		narrowed, encoded := make([]uint16, n), make([]byte, 2*n)
		c.narrow(narrowed, src)
		c.encode(encoded, src)
		for h := range n {
			want := c.from(src[h])
			if narrowed[h] != want || binary.LittleEndian.Uint16(encoded[2*h:]) != want {
				t.Fatalf("%s: bulk narrowing of %#08x = %#04x, %#04x; want %#04x", c.name, math.Float32bits(src[h]), narrowed[h], binary.LittleEndian.Uint16(encoded[2*h:]), want)
			}
		}
	}
}

func TestBulkPanicsOnShortDestination(t *testing.T) {
	for name, f := range map[string]func(){
		"WidenF16":   func() { WidenF16(make([]float32, 1), make([]uint16, 2)) },
		"WidenBF16":  func() { WidenBF16(make([]float32, 1), make([]uint16, 2)) },
		"NarrowF16":  func() { NarrowF16(make([]uint16, 1), make([]float32, 2)) },
		"NarrowBF16": func() { NarrowBF16(make([]uint16, 1), make([]float32, 2)) },
		"DecodeF16":  func() { DecodeF16(make([]float32, 2), make([]byte, 3)) },
		"DecodeBF16": func() { DecodeBF16(make([]float32, 2), make([]byte, 3)) },
		"EncodeF16":  func() { EncodeF16(make([]byte, 3), make([]float32, 2)) },
		"EncodeBF16": func() { EncodeBF16(make([]byte, 3), make([]float32, 2)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s with a short slice did not panic", name)
				}
			}()
			f()
		}()
	}
}
