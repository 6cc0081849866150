package slicegpt

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"lrmc/kernels/llama"
	"lrmc/kernels/synth"
)

// benchModels are a 4-block model of SmolLM-135M's block shape (d 576, 9
// query and 3 kv heads of 64, MLP 1536; vocabulary 512 to keep the focus on
// the blocks) and its slicings at s = 0.25 and 0.4, calibrated on random
// tokens (speed does not depend on the values).
var benchModels = sync.OnceValues(func() (*llama.Model, map[float64]*Model) {
	m, _, err := synth.New(synth.Spec{Arch: "llama", Layers: 4, Dim: 576, Heads: 9, KVHeads: 3, FFN: 1536,
		Vocab: 512, SeqLen: 2048, Seed: 1})
	if err != nil {
		panic(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	calib := make([]int32, 4*128)
	for i := range calib {
		calib[i] = int32(r.IntN(512))
	}
	sliced := map[float64]*Model{}
	for _, s := range []float64{0.25, 0.4} {
		sm, _, err := Slice(context.Background(), m, calib, 128, nil, Options{Sparsity: s})
		if err != nil {
			panic(err)
		}
		sliced[s] = sm
	}
	return m, sliced
})

// BenchmarkPrefill compares the dense and sliced models' prefill
// throughput over one sequence of 256 tokens:
//
//	go test -run=NONE -bench=Prefill ./kernels/slicegpt
func BenchmarkPrefill(b *testing.B) {
	dense, sliced := benchModels()
	toks := make([]int32, 256)
	for i := range toks {
		toks[i] = int32(i * 7 % 512)
	}
	run := func(name string, fwd func([]int32, int, int) []float32) {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				fwd(toks, 1, len(toks))
			}
			b.ReportMetric(float64(len(toks)*b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
	run("dense", dense.Forward)
	for _, s := range []float64{0.25, 0.4} {
		run(fmt.Sprintf("s=%g", s), sliced[s].Forward)
	}
}

// BenchmarkDecode compares decode steps at position 128:
//
//	go test -run=NONE -bench=Decode ./kernels/slicegpt
func BenchmarkDecode(b *testing.B) {
	dense, sliced := benchModels()
	b.Run("dense", func(b *testing.B) {
		d := llama.NewDecoder(dense, 256)
		for p := range 128 {
			d.Step(int32(p), p)
		}
		for b.Loop() {
			d.Step(3, 128)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
	})
	for _, s := range []float64{0.25, 0.4} {
		b.Run(fmt.Sprintf("s=%g", s), func(b *testing.B) {
			d := NewDecoder(sliced[s], 256)
			for p := range 128 {
				d.Step(int32(p), p)
			}
			for b.Loop() {
				d.Step(3, 128)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}
