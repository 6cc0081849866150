package gemm

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkKernel measures each micro-kernel alone on L1/L2-resident packed
// panels: the ceiling the blocked driver can approach.
func BenchmarkKernel(b *testing.B) {
	for _, name := range Impls() {
		im := impls[name]
		b.Run(name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 1))
			kc := im.kc
			a, bp := randMatrix(r, kc*im.mr), randMatrix(r, kc*im.nr)
			c := make([]float32, im.mr*im.nr)
			for b.Loop() {
				im.kernel(kc, a, bp, c, im.nr, true)
			}
			b.ReportMetric(2*float64(kc*im.mr*im.nr)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkPack measures packing one kc-deep block of w into nr-wide panels
// (GB/s of float32 read).
func BenchmarkPack(b *testing.B) {
	for _, width := range []int{16, 32} {
		for _, name := range Impls() {
			b.Run(fmt.Sprintf("%s/w%d", name, width), func(b *testing.B) {
				const rows, k, kc = 1024, 1024, 256
				src := randMatrix(rand.New(rand.NewPCG(1, 1)), rows*k)
				dst := make([]float32, rows*kc)
				for b.Loop() {
					packPanels(dst, src, k, rows, 256, kc, width, impls[name].transpose8, impls[name].transpose4)
				}
				b.ReportMetric(float64(rows*kc*4)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
		}
	}
}

// BenchmarkBlocking compares cache-blocking parameters on a copy of each
// assembly implementation (tuning aid; the defaults live in impl_amd64.go).
func BenchmarkBlocking(b *testing.B) {
	s := shape{512, 1024, 3072}
	for _, name := range []string{"avx2", "avx512"} {
		base, ok := impls[name]
		if !ok {
			continue
		}
		for _, kc := range []int{128, 256, 384} {
			for _, nc := range []int{512, 1024, 3072} {
				im := *base
				im.kc, im.nc = kc, nc
				b.Run(fmt.Sprintf("%s/kc%d/nc%d", name, im.kc, im.nc), func(b *testing.B) {
					out, x, w := benchOperands(s)
					meter := startMeter(b, s)
					for b.Loop() {
						im.matMul(out, x, w, s.m, s.k, s.n, 1)
					}
					meter.report()
				})
			}
		}
	}
}
