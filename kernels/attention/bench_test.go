package attention

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"lrmc/internal/cputime"
)

// benchShapes are the attention shapes of the models lrmc prunes.
var benchShapes = []struct {
	name                     string
	b, t, heads, kvHeads, hd int
}{
	{"qwen3-0.6B", 4, 512, 16, 8, 128},
	{"smollm-135M", 1, 512, 9, 3, 64},
	{"stories260K", 1, 256, 8, 4, 8},
}

// BenchmarkCausal times Causal and the per-query loop it replaces (copied
// from kernels/llama in attention_test.go) on 1 and 2 threads. GFLOP/s
// counts the useful work only: 4·hd flops per (query, visible key, head).
// GFLOP/cpu-s divides it by the process's CPU time instead of wall time: on
// a shared host that leaves out time the benchmark was descheduled, and is
// per core (multiply by the thread count for the rate of an idle machine).
//
//	go test -run=NONE -bench=Causal -count=5 ./kernels/attention
func BenchmarkCausal(b *testing.B) {
	impls := []struct {
		name string
		fn   func(out, q, k, v []float32, b, t, heads, kvHeads, hd int)
	}{{"tiled", Causal}, {"perquery", perQuery}}
	for _, s := range benchShapes {
		p := newProblem(rand.New(rand.NewPCG(1, 1)), s.b, s.t, s.heads, s.kvHeads, s.hd, 2)
		out := make([]float32, s.b*s.t*s.heads*s.hd)
		flops := 4 * float64(s.hd) * float64(s.b*s.heads) * float64(s.t*(s.t+1)/2)
		for _, im := range impls {
			for _, threads := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/%s/threads=%d", s.name, im.name, threads), func(b *testing.B) {
					defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads))
					cpu0 := cputime.Process()
					for b.Loop() {
						im.fn(out, p.q, p.k, p.v, s.b, s.t, s.heads, s.kvHeads, s.hd)
					}
					total := flops * float64(b.N)
					b.ReportMetric(total/b.Elapsed().Seconds()/1e9, "GFLOP/s")
					if cpu := cputime.Process() - cpu0; cpu > 0 {
						b.ReportMetric(total/cpu.Seconds()/1e9, "GFLOP/cpu-s")
					}
				})
			}
		}
	}
}
