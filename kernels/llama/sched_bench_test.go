package llama

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"syscall"
	"testing"

	"lrmc/internal/cputime"
	"lrmc/kernels/parallel"
)

// schedSample reads the scheduler's counters a block's threading shows in:
// goroutines started (one per fork of a parallel loop when each loop starts
// its own) and the time the runtime's Ps sat idle (threads waiting at a
// join, or for a serial section to end).
func schedSample() (created uint64, idle float64) {
	runtime.GC() // the runtime's CPU classes are a snapshot taken at each GC
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}, {Name: "/cpu/classes/idle:cpu-seconds"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Float64()
}

// minorFaults is the process's minor page faults so far: pages the kernel
// mapped in on first touch, each a trap taken on the touching thread
// (fresh buffers of a large allocation, after the collector returned
// them).
func minorFaults() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Minflt
}

// BenchmarkBlockSched is one block at 1 and 2 threads with what its
// threading costs: cpu-ms/op (process CPU time), idle-ms/op (time the Ps
// were idle within the block: waits at joins and serial sections; at 2
// threads idle/wall is the share of the block that ran on one thread),
// goroutines/op, page-faults/op, B/op, forks/op (the kernels' parallel loops that forked and
// joined), join-wait-ms/op (callers blocked at those joins) and
// serial-ms/op (wall time with no fork in flight: the block's serial
// sections). The shapes: Qwen3-0.6B over 4 sequences of 512 tokens (one
// capture.block call) and over one (a prefill's block), SmolLM-135M over
// one.
//
//	go test -run=NONE -bench=BlockSched -benchtime=5x ./kernels/llama
func BenchmarkBlockSched(b *testing.B) {
	const T = 512
	for _, s := range []struct {
		name string
		c    Config
		seqs int
	}{{"qwen3-capture", qwen3Layer, 4}, {"qwen3", qwen3Layer, 1}, {"smollm", smolLayer, 1}} {
		m := randModel(s.c, 1)
		h := m.Embed(randTokens(s.seqs*T, s.c.Vocab, 2), nil)
		// Several sequences run as capture.block runs them: into its
		// output, with a workspace kept over its batches.
		run := func() { m.Block(0, h, s.seqs, T) }
		if s.seqs > 1 {
			ws, dst := new(Workspace), make([]float32, len(h))
			run = func() { m.BlockInto(ws, dst, 0, h, s.seqs, T) }
		}
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads=%d", s.name, threads), func(b *testing.B) {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads))
				run() // buffers and workers warm
				b.ReportAllocs()
				f0 := minorFaults()
				cpu0 := cputime.Process()
				g0, i0 := schedSample()
				p0 := parallel.Read()
				for b.Loop() {
					run()
				}
				p1 := parallel.Read().Sub(p0)
				g1, i1 := schedSample()
				n := float64(b.N)
				sec := b.Elapsed().Seconds() / n
				b.ReportMetric(float64(s.seqs*T)/sec, "tok/s")
				if cpu := (cputime.Process() - cpu0).Seconds() / n; cpu > 0 {
					b.ReportMetric(cpu*1e3, "cpu-ms/op")
					b.ReportMetric(float64(s.seqs*T)/cpu, "tok/cpu-s")
				}
				b.ReportMetric((i1-i0)/n*1e3, "idle-ms/op")
				b.ReportMetric(float64(g1-g0)/n, "goroutines/op")
				b.ReportMetric(float64(minorFaults()-f0)/n, "page-faults/op")
				b.ReportMetric(float64(p1.Forks)/n, "forks/op")
				b.ReportMetric(p1.JoinWait.Seconds()/n*1e3, "join-wait-ms/op")
				if threads > 1 {
					b.ReportMetric((b.Elapsed()-p1.Forked).Seconds()/n*1e3, "serial-ms/op")
				}
			})
		}
	}
}
