package ops

import (
	"runtime"

	"lrmc/kernels/bench"
	"lrmc/kernels/dynamic"
	"lrmc/planner"
)

// DynamicSpeed is a routed model's speed beside its dense base's, measured
// in the same interleaved repetitions (dynamic.MeasureSpeed) on the text
// its routers were trained on, and what the routers skipped while timed.
type DynamicSpeed struct {
	DensePrefillTokensPerS float64 `json:"densePrefillTokensPerS"`
	DenseDecodeTokensPerS  float64 `json:"denseDecodeTokensPerS"`
	// PrefillSpeedup and DecodeSpeedup are the medians of the routed/dense
	// ratios of back-to-back repetitions.
	PrefillSpeedup float64 `json:"prefillSpeedup"`
	DecodeSpeedup  float64 `json:"decodeSpeedup"`
	// PrefillCPUSpeedup and DecodeCPUSpeedup are the same ratios of
	// process CPU time, which other work on a shared machine disturbs
	// less than wall time (0 where unknown).
	PrefillCPUSpeedup float64 `json:"prefillCpuSpeedup"`
	DecodeCPUSpeedup  float64 `json:"decodeCpuSpeedup"`
	// PrefillSkip and DecodeSkip are the realised skip ratios of the timed
	// passes; the ...Compute fields the fraction of the blocks' dense
	// multiply-adds not run.
	PrefillSkip           float64 `json:"prefillSkip"`
	DecodeSkip            float64 `json:"decodeSkip"`
	PrefillSkippedCompute float64 `json:"prefillSkippedCompute"`
	DecodeSkippedCompute  float64 `json:"decodeSkippedCompute"`
	// Text says the timed tokens were the model's Text (its calibration
	// text); false: seeded random tokens, the text being too short.
	Text bool `json:"text"`
}

// routedSpeed measures a model with routers: its compute-skipping prefill
// and decoder against its dense base, on threads threads.
func routedSpeed(m *Model, p planner.SpeedParams, threads int) (Speed, error) {
	dm, err := dynamic.New(m.LM, m.Routers)
	if err != nil {
		return Speed{}, err
	}
	o := dynamic.SpeedOptions{Prefill: p.Prefill, Decode: p.Decode, Reps: p.Reps, MinRep: minRep}
	text := len(m.Text) >= max(p.Prefill, p.Decode)
	if text {
		o.Tokens = m.Text
	}
	prev := runtime.GOMAXPROCS(threads)
	sp, err := dynamic.MeasureSpeed(dm, o)
	runtime.GOMAXPROCS(prev)
	if err != nil {
		return Speed{}, err
	}
	pre, dec := NewDynamicEval(m.Routers, &sp.Prefill), NewDynamicEval(m.Routers, &sp.Decode)
	return Speed{
		PrefillTokens: p.Prefill, DecodeTokens: p.Decode,
		PrefillTokensPerS: sp.RoutedPrefill, DecodeTokensPerS: sp.RoutedDecode,
		PrefillSeconds: float64(p.Prefill) / sp.RoutedPrefill, DecodeSeconds: float64(p.Decode) / sp.RoutedDecode,
		Reps: p.Reps, Threads: threads, Machine: bench.Machine(),
		Dynamic: &DynamicSpeed{
			DensePrefillTokensPerS: sp.DensePrefill, DenseDecodeTokensPerS: sp.DenseDecode,
			PrefillSpeedup: sp.PrefillRatio, DecodeSpeedup: sp.DecodeRatio,
			PrefillCPUSpeedup: sp.PrefillCPURatio, DecodeCPUSpeedup: sp.DecodeCPURatio,
			PrefillSkip: pre.Skip, DecodeSkip: dec.Skip,
			PrefillSkippedCompute: pre.SkippedCompute, DecodeSkippedCompute: dec.SkippedCompute, Text: text,
		},
	}, nil
}
