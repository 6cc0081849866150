package tensor

import (
	"math"
	"testing"
)

// ulpDiff is the distance between a and b in units in the last place of
// float32 (the number of representable values between them).
func ulpDiff(a, b float32) int64 {
	ia, ib := int64(int32(math.Float32bits(a))), int64(int32(math.Float32bits(b)))
	if ia < 0 {
		ia = math.MinInt32 - ia
	}
	if ib < 0 {
		ib = math.MinInt32 - ib
	}
	if d := ia - ib; d >= 0 {
		return d
	}
	return ib - ia
}

// TestFastExp32Accuracy compares FastExp32 with math.Exp rounded to
// float32 on every 512th float32 of [−104, 89] (all binades, subnormal
// results included) and on every 127th of [−20, 0], where softmax arguments
// live: at most 2 ulps anywhere (1 measured).
func TestFastExp32Accuracy(t *testing.T) {
	var worst int64
	var worstAt float32
	var count int
	var batch []float32
	check := func(x float32) {
		count++
		got := FastExp32(x)
		want := float32(math.Exp(float64(x)))
		if d := ulpDiff(got, want); d > worst {
			worst, worstAt = d, x
		}
		batch = append(batch[:0], x)
		if FastExp32s(batch); math.Float32bits(batch[0]) != math.Float32bits(got) {
			t.Fatalf("FastExp32s(%g) = %g, FastExp32 %g", x, batch[0], got)
		}
	}
	for _, c := range []struct {
		lo, hi float32
		step   uint32
	}{{0, 89, 512}, {-104, 0, 512}, {-20, 0, 127}} {
		sign := uint32(0)
		if c.lo < 0 {
			sign = 1 << 31
		}
		limit := math.Float32bits(max(c.hi, -c.lo))
		for b := uint32(0); b <= limit; b += c.step {
			check(math.Float32frombits(b | sign))
		}
	}
	t.Logf("FastExp32 on %d arguments: worst error %d ulp at %g", count, worst, worstAt)
	if worst > 2 {
		t.Fatalf("FastExp32(%g) is %d ulps from e^x", worstAt, worst)
	}
}

func TestFastExp32Special(t *testing.T) {
	inf := float32(math.Inf(1))
	for _, c := range []struct{ x, want float32 }{
		{0, 1}, {1, float32(math.E)}, {-1, float32(1 / math.E)},
		{89, inf}, {inf, inf}, {float32(math.Inf(-1)), 0}, {-104, 0},
		{88.72283, float32(math.Exp(float64(float32(88.72283))))},                          // top binade
		{-103.9, float32(math.Exp(float64(float32(-103.9))))},                              // subnormal
		{-87.5, float32(math.Exp(float64(float32(-87.5))))},                                // subnormal, n = −126
		{float32(math.Ln2 * 127.6), float32(math.Exp(float64(float32(math.Ln2 * 127.6))))}, // n = 128
	} {
		if got := FastExp32(c.x); ulpDiff(got, c.want) > 1 {
			t.Errorf("FastExp32(%g) = %g, want %g", c.x, got, c.want)
		}
		v := []float32{c.x}
		if FastExp32s(v); v[0] != FastExp32(c.x) {
			t.Errorf("FastExp32s(%g) = %g, FastExp32 %g", c.x, v[0], FastExp32(c.x))
		}
	}
	if nan := float32(math.NaN()); !math.IsNaN(float64(FastExp32(nan))) {
		t.Error("FastExp32(NaN) is not NaN")
	}
}

// TestFastExp32sSum checks the fused form against its definition: shifted
// and scaled arguments through FastExp32, summed in index order.
func TestFastExp32sSum(t *testing.T) {
	x := []float32{3, -1.5, 0.25, 7, -200, 2}
	const shift, scale = 7, 0.35355338
	var want float32
	got := append([]float32(nil), x...)
	sum := FastExp32sSum(got, shift, scale)
	for i, v := range x {
		e := FastExp32(float32((v - shift) * scale))
		if got[i] != e {
			t.Fatalf("element %d: %g, FastExp32 %g", i, got[i], e)
		}
		want += e
	}
	if sum != want {
		t.Fatalf("sum %g, want %g", sum, want)
	}
}

func BenchmarkExp32(b *testing.B) {
	xs := make([]float32, 4096)
	for i := range xs {
		xs[i] = -float32(i) / 256
	}
	for _, f := range []struct {
		name string
		fn   func(float32) float32
	}{{"Exp32", Exp32}, {"FastExp32", FastExp32}, {"FastExp32s", nil}} {
		b.Run(f.name, func(b *testing.B) {
			var s float32
			buf := make([]float32, len(xs))
			for b.Loop() {
				if f.fn == nil {
					copy(buf, xs)
					FastExp32s(buf)
					s += buf[0]
					continue
				}
				for _, x := range xs {
					s += f.fn(x)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(xs)), "ns/exp")
			_ = s
		})
	}
}
