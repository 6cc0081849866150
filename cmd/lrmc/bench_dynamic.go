package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"lrmc/kernels/bench"
	"lrmc/kernels/dynamic"
	"lrmc/kernels/llama"
	"lrmc/kernels/synth"
)

// benchDynamicCmd is `lrmc bench dynamic`: prefill and decode tokens/s of a
// model whose tokens skip parts of its blocks, next to the same model
// dense, in one run.
func benchDynamicCmd() *cobra.Command {
	var (
		shape, method, dtype string
		skip                 float64
		prefill, decode      int
		reps, threads        int
		asJSON               bool
	)
	cmd := &cobra.Command{
		Use:   "dynamic",
		Short: "Prefill and decode tokens/s of a routed (dynamically pruned) model vs dense",
		Long: `Measure the speed of compute skipping: a synthetic model (seeded random
weights via kernels/synth) of each --shape runs dense (llama's prefill and
decoder) and routed (kernels/dynamic's compute-skipping prefill and decoder),
interleaved rep by rep, and the medians of tokens/s and of the per-rep
ratios routed/dense are printed, with the realised skip ratio per layer.

The routers are synthetic: seeded random weights with biases calibrated on
the measured tokens (seeded random ones) so that every routed part skips
--skip of them in the prefill (MoD keeps its first and last layers dense).
They measure what skipping that much compute buys, not a trained router's
quality. Prefill is one sequence of --prefill tokens with the logits of its
last position; decode feeds the last --decode of the same tokens one at a
time after an untimed prefill of the ones before them (its realised skip
ratio, on those positions only, is printed too). Besides
wall-time ratios, ratios of CPU time are printed: on a machine shared with
other work they move less.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			shapes, err := selectShapes(shape)
			if err != nil {
				return err
			}
			m := dynamic.Method(method)
			if !m.Valid() {
				return fmt.Errorf("bench dynamic: --method %q is not one of %v", method, dynamic.Methods)
			}
			if !(skip >= 0 && skip < 1) {
				return fmt.Errorf("bench dynamic: --skip %g is outside [0, 1)", skip)
			}
			if prefill <= 0 || decode <= 0 || reps <= 0 || threads <= 0 {
				return fmt.Errorf("bench dynamic: --prefill %d, --decode %d, --reps %d and --threads %d must be positive", prefill, decode, reps, threads)
			}
			dt := llama.Float32
			if dtype != string(llama.Float32) {
				if dt, err = llama.ParseDType(dtype); err != nil {
					return fmt.Errorf("bench dynamic: --dtype: %w", err)
				}
			}
			prev := runtime.GOMAXPROCS(threads)
			defer runtime.GOMAXPROCS(prev)
			opts := dynamic.SpeedOptions{Prefill: prefill, Decode: decode, Reps: reps, MinRep: 200 * time.Millisecond, Seed: 1, Progress: cmd.ErrOrStderr()}
			for _, s := range shapes {
				if err := benchDynamic(cmd.OutOrStdout(), s, dt, m, skip, opts, threads, asJSON); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&shape, "shape", "stories260k,qwen3-0.6b", "model shapes: "+strings.Join(shapeNames(), ", ")+", a comma-separated list or all")
	f.StringVar(&method, "method", string(dynamic.SkipGPT), "routing method: mod, dllm or skipgpt (sets the KV rule and what is routed)")
	f.StringVar(&dtype, "dtype", string(llama.BFloat16), "weights' type: float32, bfloat16 or float16")
	f.Float64Var(&skip, "skip", 0.4, "fraction of tokens each routed part skips")
	f.IntVar(&prefill, "prefill", 512, "tokens in the prefill sequence")
	f.IntVar(&decode, "decode", 64, "decode steps")
	f.IntVar(&reps, "reps", 5, "interleaved repetitions; medians are reported")
	f.IntVar(&threads, "threads", 1, "threads (GOMAXPROCS)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object per shape")
	return cmd
}

// dynamicBench is one shape's result, as --json prints it.
type dynamicBench struct {
	Shape          string    `json:"shape"`
	Method         string    `json:"method"`
	DType          string    `json:"dtype"`
	Threads        int       `json:"threads"`
	Skip           float64   `json:"skip"`
	Prefill        int       `json:"prefill_tokens"`
	Decode         int       `json:"decode_steps"`
	Reps           int       `json:"reps"`
	DensePrefill   float64   `json:"dense_prefill_tokens_per_s"`
	RoutedPrefill  float64   `json:"routed_prefill_tokens_per_s"`
	PrefillRatio   float64   `json:"prefill_ratio"`
	DenseDecode    float64   `json:"dense_decode_tokens_per_s"`
	RoutedDecode   float64   `json:"routed_decode_tokens_per_s"`
	DecodeRatio    float64   `json:"decode_ratio"`
	PrefillCPU     float64   `json:"prefill_cpu_ratio"`
	DecodeCPU      float64   `json:"decode_cpu_ratio"`
	PrefillSkipped float64   `json:"prefill_skipped_compute"`
	DecodeSkipped  float64   `json:"decode_skipped_compute"`
	AttnSkip       []float64 `json:"prefill_attn_skip_per_layer"`
	MLPSkip        []float64 `json:"prefill_mlp_skip_per_layer"`
	DecodeAttnSkip []float64 `json:"decode_attn_skip_per_layer"`
	DecodeMLPSkip  []float64 `json:"decode_mlp_skip_per_layer"`
}

func benchDynamic(w io.Writer, s bench.ModelShape, dt llama.DType, m dynamic.Method, skip float64, opts dynamic.SpeedOptions, threads int, asJSON bool) error {
	spec := s.Spec
	if dt != llama.Float32 {
		spec.DType = dt
	}
	lm, _, err := synth.New(spec)
	if err != nil {
		return fmt.Errorf("bench dynamic: shape %s: %w", s.Name, err)
	}
	// Calibrate on the measured prefill: it then skips exactly --skip of
	// every routed part.
	r := rand.New(rand.NewPCG(2, 0))
	tokens := make([]int32, max(opts.Prefill, opts.Decode))
	for i := range tokens {
		tokens[i] = int32(r.IntN(lm.Config.Vocab))
	}
	opts.Tokens = tokens
	rs, err := dynamic.Calibrated(lm, m, skip, tokens[:opts.Prefill], 1, opts.Prefill, 3)
	if err != nil {
		return fmt.Errorf("bench dynamic: shape %s: %w", s.Name, err)
	}
	dm, err := dynamic.New(lm, rs)
	if err != nil {
		return err
	}
	sp, err := dynamic.MeasureSpeed(dm, opts)
	if err != nil {
		return err
	}
	res := dynamicBench{Shape: s.Name, Method: string(m), DType: string(lm.DType()), Threads: threads, Skip: skip,
		Prefill: opts.Prefill, Decode: opts.Decode, Reps: sp.Reps,
		DensePrefill: sp.DensePrefill, RoutedPrefill: sp.RoutedPrefill, PrefillRatio: sp.PrefillRatio,
		DenseDecode: sp.DenseDecode, RoutedDecode: sp.RoutedDecode, DecodeRatio: sp.DecodeRatio,
		PrefillCPU: sp.PrefillCPURatio, DecodeCPU: sp.DecodeCPURatio,
		PrefillSkipped: sp.Prefill.SkippedCompute(), DecodeSkipped: sp.Decode.SkippedCompute()}
	for i, l := range sp.Prefill.Layers {
		res.AttnSkip = append(res.AttnSkip, l[dynamic.Attn].SkipRatio())
		res.MLPSkip = append(res.MLPSkip, l[dynamic.MLP].SkipRatio())
		res.DecodeAttnSkip = append(res.DecodeAttnSkip, sp.Decode.Layers[i][dynamic.Attn].SkipRatio())
		res.DecodeMLPSkip = append(res.DecodeMLPSkip, sp.Decode.Layers[i][dynamic.MLP].SkipRatio())
	}
	if asJSON {
		return json.NewEncoder(w).Encode(res)
	}
	fmt.Fprintf(w, "%s (synthetic, %s), %s routers: synthetic, biases calibrated to skip %.2f per routed part of the measured prefill; %d thread(s), %d interleaved reps, medians\n",
		s.Name, res.DType, m, skip, threads, sp.Reps)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\ttokens\tdense tok/s\trouted tok/s\trouted/dense\tby CPU time\tskipped compute\t")
	fmt.Fprintf(tw, "prefill\t%d\t%.1f\t%.1f\t%.2f×\t%.2f×\t%.3f\t\n", opts.Prefill, sp.DensePrefill, sp.RoutedPrefill, sp.PrefillRatio, sp.PrefillCPURatio, res.PrefillSkipped)
	fmt.Fprintf(tw, "decode\t%d\t%.2f\t%.2f\t%.2f×\t%.2f×\t%.3f\t\n", opts.Decode, sp.DenseDecode, sp.RoutedDecode, sp.DecodeRatio, sp.DecodeCPURatio, res.DecodeSkipped)
	tw.Flush()
	for _, ph := range []struct {
		name      string
		attn, mlp []float64
	}{{"prefill", res.AttnSkip, res.MLPSkip}, {"decode", res.DecodeAttnSkip, res.DecodeMLPSkip}} {
		fmt.Fprintf(w, "realised skip ratio per layer (%s), attn/mlp:", ph.name)
		for i := range ph.attn {
			fmt.Fprintf(w, " %d:%.2f/%.2f", i, ph.attn[i], ph.mlp[i])
		}
		fmt.Fprintln(w)
	}
	return nil
}
