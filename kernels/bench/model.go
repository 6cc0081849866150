package bench

import (
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"lrmc/internal/cputime"
	"lrmc/kernels/llama"
	"lrmc/kernels/synth"
)

// ModelShape is a named synthetic model: random weights in the layout and
// at the size of a real model, so that its speed is the real model's.
type ModelShape struct {
	Name string
	Spec synth.Spec
}

// ModelShapes are the shapes `lrmc bench model` knows, smallest first.
var ModelShapes = []ModelShape{
	{"stories260k", synth.Spec{Arch: "llama", Layers: 5, Dim: 64, Heads: 8, KVHeads: 4, FFN: 172, Vocab: 512,
		SeqLen: 512, Tie: true, Seed: 1}},
	{"smollm-135m", synth.Spec{Arch: "llama", Layers: 30, Dim: 576, Heads: 9, KVHeads: 3, FFN: 1536, Vocab: 49152,
		SeqLen: 2048, Tie: true, Seed: 1}},
	{"qwen3-0.6b", synth.Spec{Arch: "qwen3", Layers: 28, Dim: 1024, Heads: 16, KVHeads: 8, HeadDim: 128, FFN: 3072,
		Vocab: 151936, SeqLen: 40960, Tie: true, Seed: 1}},
}

// ModelShapeNamed returns the shape called name.
func ModelShapeNamed(name string) (ModelShape, error) {
	for _, s := range ModelShapes {
		if s.Name == name {
			return s, nil
		}
	}
	names := make([]string, len(ModelShapes))
	for i, s := range ModelShapes {
		names[i] = s.Name
	}
	return ModelShape{}, fmt.Errorf("bench: unknown model shape %q (have %s)", name, strings.Join(names, ", "))
}

// Build makes the shape's model with f32 weights.
func (s ModelShape) Build() (*llama.Model, error) {
	m, _, err := synth.New(s.Spec)
	if err != nil {
		return nil, fmt.Errorf("bench: model shape %s: %w", s.Name, err)
	}
	return m, nil
}

// ModelOptions says how to measure a model; zero fields take the defaults
// named beside them.
type ModelOptions struct {
	Threads []int // thread counts, each run in turn ([1])
	Prefill int   // tokens in the one prefill batch (512)
	Decode  int   // greedy decode steps (128)
	Reps    int   // repetitions of each phase, the median reported (1)
	// MinRep, when positive, makes each repetition repeat its phase until
	// it lasts at least this long (a first, untimed call sizes it and warms
	// up), so a small model's phase is not timed at the clock's and the
	// scheduler's grain; the result is per phase. Zero times one call.
	MinRep time.Duration
	// Progress, when set, receives a line per phase and repetition: a
	// Qwen3-0.6B-shaped run takes minutes.
	Progress io.Writer
}

func (o ModelOptions) withDefaults() ModelOptions {
	if len(o.Threads) == 0 {
		o.Threads = []int{1}
	}
	if o.Prefill <= 0 {
		o.Prefill = 512
	}
	if o.Decode <= 0 {
		o.Decode = 128
	}
	if o.Reps <= 0 {
		o.Reps = 1
	}
	return o
}

// Phases of a model measurement.
const (
	PhasePrefill = "prefill"
	PhaseDecode  = "decode"
)

// ModelResult is one phase of one model at one thread count.
type ModelResult struct {
	Shape   string `json:"shape"`
	Params  int64  `json:"params"`
	Dtype   string `json:"dtype"` // weights' type: "float32", "bfloat16" or "float16"
	Threads int    `json:"threads"`
	Phase   string `json:"phase"` // PhasePrefill or PhaseDecode
	Tokens  int    `json:"tokens"`
	Reps    int    `json:"reps"`
	// Seconds is the median repetition's wall time for all Tokens.
	Seconds     float64 `json:"seconds"`
	TokensPerS  float64 `json:"tokens_per_s"`
	CPUSeconds  float64 `json:"cpu_seconds,omitempty"`
	GFLOPS      float64 `json:"gflops"`
	WeightsGBPS float64 `json:"weights_gb_per_s,omitempty"` // decode: weight bytes read per second
}

// MeasureModel times the prefill of one batch of o.Prefill tokens (the
// embedding, every block, and the logits of the last position only, as a
// runtime that goes on to generate computes them) and o.Decode greedy steps
// of the key/value-cache decoder starting from position 0, at each thread
// count (runtime.GOMAXPROCS, which lrmc's kernels follow). name labels the
// results.
func MeasureModel(m *llama.Model, name string, o ModelOptions) ([]ModelResult, error) {
	o = o.withDefaults()
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("bench: model %s: %w", name, err)
	}
	c := m.Config
	tokens := randomTokens(o.Prefill, c.Vocab, 7)
	var results []ModelResult
	for _, t := range o.Threads {
		pre := ModelResult{Shape: name, Params: c.Params(), Dtype: string(m.DType()), Threads: t, Phase: PhasePrefill,
			Tokens: o.Prefill, Reps: o.Reps}
		dec := pre
		dec.Phase, dec.Tokens = PhaseDecode, o.Decode
		var preT, decT []timing
		withProcs(t, func() {
			pre := func() { prefill(m, tokens) }
			dec := func() { decode(m, tokens[0], o.Decode) }
			preCalls, decCalls := 1, 1
			if o.MinRep > 0 {
				preCalls, decCalls = callsFor(o.MinRep, pre), callsFor(o.MinRep, dec)
			}
			for r := range o.Reps {
				preT = append(preT, timedCalls(preCalls, pre))
				progress(o.Progress, name, t, r, o.Reps, PhasePrefill, o.Prefill, preT[r].wall)
				decT = append(decT, timedCalls(decCalls, dec))
				progress(o.Progress, name, t, r, o.Reps, PhaseDecode, o.Decode, decT[r].wall)
			}
		})
		pre.fill(median(preT), prefillFLOPs(c, o.Prefill))
		dec.fill(median(decT), decodeFLOPs(c, o.Decode))
		bytesPer := 4.0
		if m.DType() != llama.Float32 {
			bytesPer = 2
		}
		dec.WeightsGBPS = bytesPer * float64(matrixParams(c)) * float64(o.Decode) / dec.Seconds / 1e9
		results = append(results, pre, dec)
	}
	return results, nil
}

func (r *ModelResult) fill(tm timing, flops float64) {
	r.Seconds = tm.wall.Seconds()
	r.TokensPerS = float64(r.Tokens) / r.Seconds
	r.CPUSeconds = tm.cpu.Seconds()
	r.GFLOPS = flops / r.Seconds / 1e9
}

func progress(w io.Writer, name string, threads, rep, reps int, phase string, tokens int, d time.Duration) {
	if w == nil {
		return
	}
	fmt.Fprintf(w, "bench: %s t=%d rep %d/%d: %s of %d tokens in %.2fs (%.1f tokens/s)\n",
		name, threads, rep+1, reps, phase, tokens, d.Seconds(), float64(tokens)/d.Seconds())
}

// prefill runs one sequence through the model and returns the last
// position's logits.
func prefill(m *llama.Model, tokens []int32) []float32 {
	t := len(tokens)
	h := m.Embed(tokens, nil)
	for i := range m.Layers {
		h = m.Block(i, h, 1, t)
	}
	return m.Logits(h[(t-1)*m.Config.Dim:], 1, 1)
}

// decode feeds first at position 0, then each step's most likely token, for
// steps steps, and returns the tokens chosen.
func decode(m *llama.Model, first int32, steps int) []int32 {
	d := llama.NewDecoder(m, steps)
	out := make([]int32, 0, steps)
	tok := first
	for pos := range steps {
		tok = argmax(d.Step(tok, pos))
		out = append(out, tok)
	}
	return out
}

func argmax(v []float32) int32 {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return int32(best)
}

// timedCalls times calls calls of fn and returns the time of one.
func timedCalls(calls int, fn func()) timing {
	tm := timed(func() {
		for range calls {
			fn()
		}
	})
	return timing{wall: tm.wall / time.Duration(calls), cpu: tm.cpu / time.Duration(calls)}
}

func timed(fn func()) timing {
	cpu0, t0 := cputime.Process(), time.Now()
	fn()
	return timing{wall: time.Since(t0), cpu: cputime.Process() - cpu0}
}

func median(ts []timing) timing {
	s := slices.Clone(ts)
	slices.SortFunc(s, func(a, b timing) int { return int(a.wall - b.wall) })
	return s[(len(s)-1)/2]
}

func randomTokens(n, vocab int, seed uint64) []int32 {
	r := rand.New(rand.NewPCG(seed, uint64(vocab)))
	ts := make([]int32, n)
	for i := range ts {
		ts[i] = int32(r.IntN(vocab))
	}
	return ts
}

// layerMatrixParams is the number of weights in one block's projections.
func layerMatrixParams(c llama.Config) int64 {
	d, q, kv, h := int64(c.Dim), int64(c.QDim()), int64(c.KVDim()), int64(c.HiddenDim)
	return 2*d*q + 2*d*kv + 3*d*h
}

// matrixParams is the number of weights one decode step reads: every
// block's projections and the classifier (the embedding row is negligible).
func matrixParams(c llama.Config) int64 {
	return int64(c.Layers)*layerMatrixParams(c) + int64(c.Vocab)*int64(c.Dim)
}

// attentionFLOPs is one block's causal attention over t tokens from
// position 0: for each query position p, scores and the weighted sum over
// p+1 keys, in every head.
func attentionFLOPs(c llama.Config, t int) float64 {
	tt := float64(t)
	return 2 * 2 * float64(c.QDim()) * tt * (tt + 1) / 2
}

func prefillFLOPs(c llama.Config, t int) float64 {
	per := 2*float64(layerMatrixParams(c))*float64(t) + attentionFLOPs(c, t)
	return float64(c.Layers)*per + 2*float64(c.Vocab)*float64(c.Dim)
}

func decodeFLOPs(c llama.Config, steps int) float64 {
	return 2*float64(matrixParams(c))*float64(steps) + float64(c.Layers)*attentionFLOPs(c, steps)
}
