package ops

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"lrmc/executor"
	"lrmc/kernels/bench"
	"lrmc/planner"
)

// Speed is a model's measured speed: tokens per second of one prefill
// and of greedy key/value-cache decoding (kernels/bench.MeasureModel), on
// Machine with Threads threads, the median of Reps repetitions of at
// least minRep each (seconds are per phase).
type Speed struct {
	PrefillTokens     int     `json:"prefillTokens"`
	DecodeTokens      int     `json:"decodeTokens"`
	PrefillTokensPerS float64 `json:"prefillTokensPerS"`
	DecodeTokensPerS  float64 `json:"decodeTokensPerS"`
	PrefillSeconds    float64 `json:"prefillSeconds"`
	DecodeSeconds     float64 `json:"decodeSeconds"`
	Reps              int     `json:"reps"`
	Threads           int     `json:"threads"`
	Machine           string  `json:"machine"`
	// Dynamic, for a model with routers, is the dense base's speed
	// measured beside it and what the routers skipped; nil otherwise.
	Dynamic *DynamicSpeed `json:"dynamic,omitempty"`
}

// Note says where and how the speed was measured.
func (s Speed) Note() string {
	return fmt.Sprintf("%s, %d threads; one prefill of %d tokens and %d greedy decode steps, median of %d",
		s.Machine, s.Threads, s.PrefillTokens, s.DecodeTokens, s.Reps)
}

// minRep is how long each timed repetition of a phase lasts at least: a
// small model's prefill takes well under a millisecond, which one timing
// would measure at the scheduler's grain. Fixed, like every parameter
// that is not in a node's key.
const minRep = 100 * time.Millisecond

// speedOp measures a model. Input: the model. Its result depends on the
// machine and its load, not only on its inputs: it is cached so that a
// rerun does not measure again, and says where it was measured.
type speedOp struct{ jsonCodec[Speed] }

func (speedOp) Version() int { return 1 }

func (speedOp) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.SpeedParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	m, err := input[*Model](c, 0)
	if err != nil {
		return nil, err
	}
	threads := p.Threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	if m.Routers != nil {
		return routedSpeed(m, p, threads)
	}
	rs, err := bench.MeasureModel(m.LM, c.Node.Label, bench.ModelOptions{
		Threads: []int{threads}, Prefill: p.Prefill, Decode: p.Decode, Reps: p.Reps, MinRep: minRep,
	})
	if err != nil {
		return nil, err
	}
	s := Speed{Reps: p.Reps, Threads: threads, Machine: bench.Machine()}
	for _, r := range rs {
		switch r.Phase {
		case bench.PhasePrefill:
			s.PrefillTokens, s.PrefillTokensPerS, s.PrefillSeconds = r.Tokens, r.TokensPerS, r.Seconds
		case bench.PhaseDecode:
			s.DecodeTokens, s.DecodeTokensPerS, s.DecodeSeconds = r.Tokens, r.TokensPerS, r.Seconds
		}
	}
	if s.PrefillTokens != p.Prefill || s.DecodeTokens != p.Decode {
		return nil, fmt.Errorf("measured %d prefill and %d decode tokens, asked for %d and %d", s.PrefillTokens, s.DecodeTokens, p.Prefill, p.Decode)
	}
	return s, nil
}
