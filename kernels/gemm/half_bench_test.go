package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// halfBench is one case of BenchmarkMatMulHalf. working > 0 rotates the
// product over enough copies of w to make that many bytes per format, so w
// comes from main memory even on hosts with a large L3 (the development VM
// reports 300 MiB), as it does when decode walks all layers of a model.
type halfBench struct {
	s       shape
	working int
}

func (c halfBench) String() string {
	if c.working > 0 {
		return fmt.Sprintf("%v/dram", c.s)
	}
	return c.s.String()
}

var halfBenches = []halfBench{
	{shape{1, 4096, 8192}, 0},
	{shape{1, 4096, 8192}, 768 << 20},
	{shape{1, 1024, 3072}, 0},
	{shape{512, 1024, 3072}, 0},
}

// BenchmarkMatMulHalf compares float32, bf16 and f16 weights, and
// MatMulBF16Rounded ("bf16rounded"):
//
//	go test -run=NONE -bench=MatMulHalf/avx512 ./kernels/gemm
//
// (names: impl/format/shape/threads). "GB/s" counts bytes of w read per
// second of wall time, once per product.
func BenchmarkMatMulHalf(b *testing.B) {
	for _, name := range Impls() {
		for _, c := range halfBenches {
			for _, format := range []string{"f32", "bf16", "f16", "bf16rounded"} {
				for _, threads := range []int{1, 2} {
					b.Run(fmt.Sprintf("%s/%s/%v/t%d", name, format, c, threads), func(b *testing.B) {
						restore, err := SetImpl(name)
						if err != nil {
							b.Fatal(err)
						}
						defer restore()
						benchHalf(b, c, format, threads)
					})
				}
			}
		}
	}
}

func benchHalf(b *testing.B, c halfBench, format string, threads int) {
	s := c.s
	r := rand.New(rand.NewPCG(11, 12))
	out, x := make([]float32, s.m*s.n), randMatrix(r, s.m*s.k)
	w32 := randMatrix(r, s.n*s.k)
	size := 4
	if format != "f32" {
		size = 2
	}
	copies := max(1, (c.working+s.n*s.k*size-1)/(s.n*s.k*size))
	var run func(i int)
	switch format {
	case "f32":
		ws := make([][]float32, copies)
		for i := range ws {
			ws[i] = append([]float32(nil), w32...)
		}
		run = func(i int) { MatMulThreads(out, x, ws[i], s.m, s.k, s.n, threads) }
	default:
		w16 := make([]uint16, len(w32))
		for i, v := range w32 {
			// Truncation is enough for benchmark operands; both formats hold
			// values of this range ([-1, 1]) as normal numbers.
			if format == "f16" {
				w16[i] = float32ToF16Trunc(v)
			} else {
				w16[i] = uint16(math.Float32bits(v) >> 16)
			}
		}
		ws := make([][]uint16, copies)
		for i := range ws {
			ws[i] = append([]uint16(nil), w16...)
		}
		mm := map[string]func(out, x []float32, w []uint16, m, k, n, threads int){
			"bf16": MatMulBF16Threads, "f16": MatMulF16Threads, "bf16rounded": MatMulBF16RoundedThreads,
		}[format]
		run = func(i int) { mm(out, x, ws[i], s.m, s.k, s.n, threads) }
	}
	meter := startMeter(b, s)
	i := 0
	for b.Loop() {
		run(i % copies)
		i++
	}
	meter.report()
	b.ReportMetric(float64(s.n*s.k*size)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
}

// float32ToF16Trunc converts a float32 in the normal binary16 range or below
// it (flushing values under 2⁻¹⁴ to zero) by truncating the mantissa.
func float32ToF16Trunc(v float32) uint16 {
	bits := math.Float32bits(v)
	sign := uint16(bits>>16) & 0x8000
	exp := int(bits>>23&0xff) - 127 + 15
	if exp <= 0 {
		return sign
	}
	return sign | uint16(exp)<<10 | uint16(bits>>13&0x3ff)
}

// decodeShapes are the matrix-vector products of a SmolLM-135M-shaped decode
// step (d 576, FFN 1536, vocab 49152): short rows, with w coming from main
// memory as when decode walks all layers.
var decodeShapes = []halfBench{
	{shape{1, 576, 1536}, 256 << 20},
	{shape{1, 1536, 576}, 256 << 20},
	{shape{1, 576, 49152}, 256 << 20},
}

// BenchmarkDecodeShapes measures the matrix-vector path on decodeShapes for
// each weight format with the default implementation:
//
//	go test -run=NONE -bench=DecodeShapes -count=5 ./kernels/gemm
//
// (names: format/shape/threads; "GB/s" is bytes of w per second of wall
// time, "GFLOP/cpu-s" per CPU-second, robust on a shared host).
func BenchmarkDecodeShapes(b *testing.B) {
	for _, c := range decodeShapes {
		for _, format := range []string{"f32", "bf16", "f16"} {
			for _, threads := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/%v/t%d", format, c, threads), func(b *testing.B) {
					benchHalf(b, c, format, threads)
				})
			}
		}
	}
}
