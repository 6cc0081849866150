package capture_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"lrmc/cache"
	"lrmc/compiler/ir"
	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/internal/shareddata"
	"lrmc/kernels/bench"
	"lrmc/kernels/gemm"
	"lrmc/kernels/synth"
	_ "lrmc/methods/all"
	"lrmc/planner"
)

// envInt reads a positive integer knob of the benchmark, else def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkCaptureQwen3 runs ShortGPT's capture and block influence as
// lrmc apply does (planner, executor, a Badger cache in a temporary
// directory) on a Qwen3-0.6B-shaped checkpoint of random weights written in
// Hugging Face's layout, with LRMC_CAPTURE_LAYERS blocks (2) and
// LRMC_CAPTURE_SAMPLES × 512 calibration tokens (16; the cost per block is
// linear in the samples), weights in LRMC_CAPTURE_DTYPE (float32), on 2
// threads. Each iteration is a cold apply into a fresh cache, after a
// measurement of the 2-thread GEMM (512×1024×3072), so the two interleave.
// It reports, per block, the wall and CPU seconds of the whole apply
// (tokenizing, embedding, the scores and the cache writes included)
// divided by the blocks, the capture ops' own seconds, and the GFLOP/s of
// a block's work against the GEMM's: vs-gemm over wall time, vs-gemm-cpu
// per CPU-second (steadier on a shared host):
//
//	go test -run NONE -bench CaptureQwen3 -benchtime 3x ./methods/stats/capture
func BenchmarkCaptureQwen3(b *testing.B) {
	tok := shareddata.Path(b, "models", "stories260K", "tok512.bin")
	text := shareddata.Path(b, "text", "tinystories", "tinystories_val.txt")
	layers := envInt("LRMC_CAPTURE_LAYERS", 2)
	samples := envInt("LRMC_CAPTURE_SAMPLES", 16)
	dtype := os.Getenv("LRMC_CAPTURE_DTYPE")
	if dtype == "" {
		dtype = "float32"
	}
	const seqLen = 512
	shape, err := bench.ModelShapeNamed("qwen3-0.6b")
	if err != nil {
		b.Fatal(err)
	}
	spec := shape.Spec
	spec.Layers, spec.Vocab, spec.SeqLen = layers, 512, seqLen
	dir := filepath.Join(b.TempDir(), "model")
	if err := synth.WriteHF(dir, spec, dtype, 2<<30); err != nil {
		b.Fatal(err)
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	gemmRate := func() (wall, cpu float64) {
		rs, err := bench.MeasureGEMM([]bench.GEMMShape{{M: 512, K: 1024, N: 3072}}, []int{2}, bench.GEMMOptions{Impls: []string{gemm.Impl()}})
		if err != nil {
			b.Fatal(err)
		}
		return rs[0].GFLOPS, rs[0].CPUGFLOPS
	}
	var wall, cpu, capSec, gemmWall, gemmCPU float64
	for i := 0; b.Loop(); i++ {
		gw, gc := gemmRate()
		gemmWall += gw
		gemmCPU += gc
		r := &ir.Recipe{File: "bench.cue", Output: ir.Output{Dir: b.TempDir()}, Runs: []ir.Run{{
			Name: "shortgpt-1", Model: ir.Model{Path: dir, Format: "hf", DType: dtype, Tokenizer: tok},
			Calibration: ir.Calibration{Data: ir.Data{Path: text, Format: "text", Split: ir.Split{From: 0, To: 0.9}},
				Samples: samples, SeqLen: seqLen, Seed: 1},
			Prune: ir.Prune{Paradigm: "depth", Method: "shortgpt", Remove: 1},
		}}}
		env := &ops.Env{}
		g, err := planner.Plan(r, env)
		if err != nil {
			b.Fatal(err)
		}
		store, err := cache.Open(filepath.Join(b.TempDir(), "cache"), cache.Options{})
		if err != nil {
			b.Fatal(err)
		}
		var blockSec float64
		ex, err := executor.New(ops.Registry(), store, executor.Options{Sources: env, Events: func(e executor.Event) {
			if e.Event == executor.EventFinished && e.Op == "capture.block" {
				blockSec += e.Seconds
			}
		}})
		if err != nil {
			b.Fatal(err)
		}
		c0, t0 := bench.ProcessCPUTime(), time.Now()
		if _, err := ex.Run(context.Background(), g); err != nil {
			b.Fatal(err)
		}
		wall += time.Since(t0).Seconds()
		cpu += (bench.ProcessCPUTime() - c0).Seconds()
		capSec += blockSec
		if err := store.Close(); err != nil {
			b.Fatal(err)
		}
	}
	n, l := float64(b.N), float64(layers)
	c := spec
	tokens := float64(samples * seqLen)
	// Per block: 2 FLOPs per weight and token, plus causal attention
	// (QKᵀ and PV over half the t×t square, per head).
	params := float64(c.Dim*(c.Heads*c.HeadDim) + 2*c.Dim*(c.KVHeads*c.HeadDim) + (c.Heads*c.HeadDim)*c.Dim + 3*c.Dim*c.FFN)
	attn := float64(samples) * 2 * 2 * float64(c.Heads*c.HeadDim) * seqLen * (seqLen + 1) / 2
	flops := 2*params*tokens + attn
	b.ReportMetric(wall/n/l, "wall-s/block")
	b.ReportMetric(cpu/n/l, "cpu-s/block")
	b.ReportMetric(capSec/n/l, "op-s/block")
	b.ReportMetric(flops/(wall/n/l)/1e9, "GFLOP/s")
	b.ReportMetric(flops/(cpu/n/l)/1e9, "GFLOP/cpu-s")
	b.ReportMetric(gemmWall/n, "gemm-GFLOP/s")
	b.ReportMetric(gemmCPU/n, "gemm-GFLOP/cpu-s")
	b.ReportMetric(flops/(wall/n/l)/1e9/(gemmWall/n), "vs-gemm")
	b.ReportMetric(flops/(cpu/n/l)/1e9/(gemmCPU/n), "vs-gemm-cpu")
}
