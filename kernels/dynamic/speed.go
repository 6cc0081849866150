package dynamic

import (
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"

	"lrmc/kernels/bench"
	"lrmc/kernels/llama"
)

// SpeedOptions say how MeasureSpeed measures; zero fields take the
// defaults named beside them.
type SpeedOptions struct {
	Prefill int // tokens of the one prefill sequence (512)
	Decode  int // decode steps (64)
	// Tokens, when set, are the tokens measured (at least Prefill and
	// Decode of them; see MeasureSpeed). Unset: seeded random tokens.
	Tokens []int32
	Reps   int // interleaved repetitions, medians reported (3)
	// MinRep, when positive, makes each repetition repeat its phase until
	// it lasts about this long (the warm-up call sizes it), so a small
	// model is not timed at the clock's and the scheduler's grain; rates
	// are per phase. Zero times one call.
	MinRep time.Duration
	Seed   uint64
	// Progress, when set, receives a line per timed phase.
	Progress io.Writer
}

func (o SpeedOptions) withDefaults() SpeedOptions {
	if o.Prefill <= 0 {
		o.Prefill = 512
	}
	if o.Decode <= 0 {
		o.Decode = 64
	}
	if o.Reps <= 0 {
		o.Reps = 3
	}
	return o
}

// Speed is what MeasureSpeed measured: tokens per second (medians over the
// repetitions) of the dense model and of the routed one, and the median of
// the per-repetition ratios routed/dense (each from back-to-back runs, so
// a shared machine's drift cancels in it).
type Speed struct {
	DensePrefill, RoutedPrefill float64
	DenseDecode, RoutedDecode   float64
	PrefillRatio, DecodeRatio   float64
	// PrefillCPURatio and DecodeCPURatio are the same ratios of CPU
	// seconds (process user+system time; 0 where unknown), which other
	// work on a shared machine disturbs less than wall time.
	PrefillCPURatio, DecodeCPURatio float64
	Reps                            int
	// Prefill and Decode are the routed passes' counts (one prefill, one
	// decode run): realised skip ratios per layer and part, MACs.
	Prefill, Decode Stats
}

// MeasureSpeed times, in interleaved repetitions, the prefill of one
// sequence of o.Prefill tokens (every block, the logits of the last
// position only) and o.Decode decode steps, for the dense model (llama's
// Block and Decoder) and for dm (ForwardLast and its Decoder). The decode
// steps feed the last o.Decode of the prefill's tokens one at a time after
// an untimed prefill of the ones before them (or, when o.Decode exceeds
// o.Prefill, the first o.Decode tokens from position 0): a generation's
// steps after its prompt, meeting the decisions the prefill meets at those
// positions. Each repetition runs dense prefill, routed prefill, dense
// decode, routed decode, after one untimed warm-up of each.
func MeasureSpeed(dm *Model, o SpeedOptions) (*Speed, error) {
	o = o.withDefaults()
	lm := dm.LM
	if err := lm.Validate(); err != nil {
		return nil, fmt.Errorf("dynamic: measuring speed: %w", err)
	}
	if o.Prefill > lm.Config.SeqLen || o.Decode > lm.Config.SeqLen {
		return nil, fmt.Errorf("dynamic: measuring speed: %d prefill tokens or %d decode steps exceed the model's context of %d", o.Prefill, o.Decode, lm.Config.SeqLen)
	}
	tokens := o.Tokens
	if tokens == nil {
		r := rand.New(rand.NewPCG(o.Seed, 0x7370656564))
		tokens = make([]int32, max(o.Prefill, o.Decode))
		for i := range tokens {
			tokens[i] = int32(r.IntN(lm.Config.Vocab))
		}
	}
	if len(tokens) < max(o.Prefill, o.Decode) {
		return nil, fmt.Errorf("dynamic: measuring speed: %d tokens given for %d prefill tokens and %d decode steps", len(tokens), o.Prefill, o.Decode)
	}
	for i, tok := range tokens {
		if tok < 0 || int(tok) >= lm.Config.Vocab {
			return nil, fmt.Errorf("dynamic: measuring speed: token %d at index %d is outside the vocabulary [0, %d)", tok, i, lm.Config.Vocab)
		}
	}
	prompt := tokens[:o.Prefill]
	// Decode continues a prompt of the tokens before its own (untimed), so
	// it steps through positions the prefill also runs.
	start := max(0, o.Prefill-o.Decode)
	steps := tokens[start : start+o.Decode]
	sp := &Speed{Reps: o.Reps}
	densePrefill := func() (float64, float64) { return timed(func() { denseLast(lm, prompt) }) }
	routedPrefill := func() (float64, float64) {
		return timed(func() { sp.Prefill = dm.ForwardLast(prompt, 1, len(prompt)).Stats })
	}
	denseDecode := func() (float64, float64) {
		d := llama.NewDecoder(lm, start+o.Decode)
		if start > 0 {
			d.Prefill(tokens[:start])
		}
		return timed(func() {
			for j, tok := range steps {
				d.Step(tok, start+j)
			}
		})
	}
	routedDecode := func() (float64, float64) {
		d := dm.NewDecoder(start + o.Decode)
		if start > 0 {
			d.Prefill(tokens[:start])
		}
		d.st = newStats(len(lm.Layers))
		wall, cpu := timed(func() {
			for j, tok := range steps {
				d.Step(tok, start+j)
			}
		})
		sp.Decode = d.st
		return wall, cpu
	}
	phases := []struct {
		name   string
		tokens int
		run    func() (wall, cpu float64)
		times  []float64
		cpu    []float64
	}{{"dense prefill", o.Prefill, densePrefill, nil, nil}, {"routed prefill", o.Prefill, routedPrefill, nil, nil},
		{"dense decode", o.Decode, denseDecode, nil, nil}, {"routed decode", o.Decode, routedDecode, nil, nil}}
	calls := make([]int, len(phases))
	for i := range phases {
		wall, _ := phases[i].run()
		calls[i] = max(1, int(o.MinRep.Seconds()/max(wall, 1e-9)))
	}
	for rep := range o.Reps {
		for i := range phases {
			ph := &phases[i]
			var wall, cpu float64
			for range calls[i] {
				w, c := ph.run()
				wall, cpu = wall+w, cpu+c
			}
			s := wall / float64(calls[i])
			ph.times = append(ph.times, s)
			ph.cpu = append(ph.cpu, cpu/float64(calls[i]))
			if o.Progress != nil {
				fmt.Fprintf(o.Progress, "dynamic: rep %d/%d %s: %d tokens in %.2fs, %.2f CPU s (%.1f tokens/s)\n", rep+1, o.Reps, ph.name, ph.tokens, s, ph.cpu[rep], float64(ph.tokens)/s)
			}
		}
	}
	rate := func(i int) float64 { return float64(phases[i].tokens) / median(phases[i].times) }
	ratio := func(dense, routed []float64) float64 {
		rs := make([]float64, o.Reps)
		for k := range rs {
			if routed[k] <= 0 {
				return 0
			}
			rs[k] = dense[k] / routed[k]
		}
		return median(rs)
	}
	sp.DensePrefill, sp.RoutedPrefill, sp.DenseDecode, sp.RoutedDecode = rate(0), rate(1), rate(2), rate(3)
	sp.PrefillRatio, sp.DecodeRatio = ratio(phases[0].times, phases[1].times), ratio(phases[2].times, phases[3].times)
	sp.PrefillCPURatio, sp.DecodeCPURatio = ratio(phases[0].cpu, phases[1].cpu), ratio(phases[2].cpu, phases[3].cpu)
	return sp, nil
}

// timed runs fn and returns its wall and CPU (process user+system)
// seconds.
func timed(fn func()) (wall, cpu float64) {
	c0, t0 := bench.ProcessCPUTime(), time.Now()
	fn()
	return time.Since(t0).Seconds(), (bench.ProcessCPUTime() - c0).Seconds()
}

// denseLast is the dense prefill of one sequence up to its last position's
// logits, as bench.MeasureModel times it.
func denseLast(lm *llama.Model, tokens []int32) []float32 {
	t := len(tokens)
	h := lm.Embed(tokens, nil)
	for i := range lm.Layers {
		h = lm.Block(i, h, 1, t)
	}
	return lm.Logits(h[(t-1)*lm.Config.Dim:], 1, 1)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
