package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"lrmc/internal/shareddata"
	"lrmc/kernels/bench"
	"lrmc/kernels/gemm"
	"lrmc/kernels/llama"
)

// benchCmd is `lrmc bench`: measured, never asserted, speeds of lrmc's
// kernels on this machine. Without a subcommand it runs `bench gemm` on the
// default shapes.
func benchCmd() *cobra.Command {
	gemmC := benchGEMMCmd()
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure lrmc's GEMM and model speed on this machine",
		Long: `Measure lrmc's kernels on this machine and print what was measured.

Without a subcommand, bench runs "bench gemm" on its default shapes. Every
ratio is taken against a baseline measured in the same run: shared machines
drift by tens of percent over minutes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return gemmC.RunE(cmd, nil)
		},
	}
	cmd.AddCommand(gemmC, benchModelCmd(), benchCaptureCmd(), benchEvalCmd(), benchSmokeCmd(), benchDynamicCmd())
	return cmd
}

func benchGEMMCmd() *cobra.Command {
	var (
		m, n, k    int
		threads    []int
		reps       int
		asJSON     bool
		impls      []string
		naiveGFLOP float64
	)
	cmd := &cobra.Command{
		Use:   "gemm",
		Short: "GFLOP/s of lrmc's GEMM implementations next to gonum and a naive loop",
		Long: `Measure out[m×n] = x[m×k]·wᵀ with every GEMM implementation usable here
(avx512, avx2, go), gonum's Sgemm and a naive triple loop, on the same
operands, and print the median GFLOP/s of --reps repetitions and the ratio
to gonum's. Without --m/--n/--k: 512×1024×3072, 512×3072×1024 and
1×1024×3072 (m×k×n). The naive loop is skipped above --naive-max-gflop.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			shapes := bench.DefaultGEMMShapes
			switch set := m > 0 || n > 0 || k > 0; {
			case set && (m <= 0 || n <= 0 || k <= 0):
				return fmt.Errorf("bench gemm: --m, --n and --k go together and must be positive (got m=%d n=%d k=%d)", m, n, k)
			case set:
				shapes = []bench.GEMMShape{{M: m, K: k, N: n}}
			}
			opts := bench.GEMMOptions{Reps: reps, MinRep: 50 * time.Millisecond, NaiveMaxFLOPs: naiveGFLOP * 1e9, Impls: impls}
			if reps <= 0 {
				return fmt.Errorf("bench gemm: --reps %d must be positive", reps)
			}
			return runGEMM(cmd.OutOrStdout(), cmd.ErrOrStderr(), shapes, threads, opts, asJSON)
		},
	}
	f := cmd.Flags()
	f.IntVar(&m, "m", 0, "rows of x and of the output (tokens)")
	f.IntVar(&n, "n", 0, "rows of w, columns of the output (output features)")
	f.IntVar(&k, "k", 0, "columns of x and w (input features)")
	f.IntSliceVar(&threads, "threads", []int{1, 2}, "thread counts to measure")
	f.IntVar(&reps, "reps", 5, "timed repetitions (each at least 50ms); the median is reported")
	f.BoolVar(&asJSON, "json", false, "print one JSON object per measured kernel")
	f.StringSliceVar(&impls, "impl", nil, "measure only these kernels (avx512, avx2, go, gonum, naive)")
	f.Float64Var(&naiveGFLOP, "naive-max-gflop", 1, "skip the naive loop on shapes above this many GFLOP")
	return cmd
}

func runGEMM(stdout, stderr io.Writer, shapes []bench.GEMMShape, threads []int, opts bench.GEMMOptions, asJSON bool) error {
	if err := checkThreads(threads); err != nil {
		return err
	}
	rs, err := bench.MeasureGEMM(shapes, threads, opts)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		for _, r := range rs {
			if r.Skipped != "" {
				fmt.Fprintf(stderr, "bench: %s on %d×%d×%d skipped: %s\n", r.Impl, r.M, r.K, r.N, r.Skipped)
				continue
			}
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	fmt.Fprintf(stdout, "GEMM out[m×n] = x[m×k]·wᵀ, float32; %s; lrmc's default implementation %s; median of %d reps\n",
		machine(), gemm.Impl(), opts.Reps)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "m×k×n\tthreads\timpl\tGFLOP/s\tGFLOP/cpu-s\tvs gonum\tmax abs err\t")
	for _, r := range rs {
		shape := fmt.Sprintf("%d×%d×%d", r.M, r.K, r.N)
		if r.Skipped != "" {
			fmt.Fprintf(tw, "%s\t%d\t%s\t-\t-\t-\t-\t skipped: %s\n", shape, r.Threads, r.Impl, r.Skipped)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.2f\t%.2f\t%.2f×\t%.1e\t\n", shape, r.Threads, r.Impl, r.GFLOPS, r.CPUGFLOPS, r.VsGonum, r.MaxAbsErr)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, "GFLOP/cpu-s is per CPU-second of this process: on a shared host it estimates the speed per busy core; max abs err is against float64 on sampled outputs")
	return err
}

func benchModelCmd() *cobra.Command {
	var (
		shape           string
		threads         []int
		prefill, decode int
		reps            int
		asJSON          bool
		exportDir       string
		dtypes          []string
		compute         string
		exportDType     string
	)
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Prefill and decode tokens/s of synthetic models of real shapes",
		Long: `Measure tokens/s of synthetic models (seeded random weights via kernels/synth)
shaped like stories260K, SmolLM-135M and Qwen3-0.6B:
prefill is one batch of --prefill tokens through every block and the
logits of the last position; decode is --decode greedy steps with the
key/value cache from position 0. Threads set GOMAXPROCS, which lrmc's
kernels follow. --dtype measures the same model with its weights held in
float32, bfloat16 or float16 (the 16-bit weights are the float32 ones rounded).

--export-gguf DIR writes the selected shapes' models as DIR/<shape>.gguf
(f32, synthetic vocabulary) for running them in llama.cpp, and measures
nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			shapes, err := selectShapes(shape)
			if err != nil {
				return err
			}
			stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			if exportDir != "" {
				return exportShapes(stdout, stderr, shapes, exportDir, exportDType)
			}
			if err := checkThreads(threads); err != nil {
				return err
			}
			opts := bench.ModelOptions{Threads: threads, Prefill: prefill, Decode: decode, Reps: reps, Progress: stderr}
			if prefill <= 0 || decode <= 0 || reps <= 0 {
				return fmt.Errorf("bench model: --prefill %d, --decode %d and --reps %d must be positive", prefill, decode, reps)
			}
			return runModels(stdout, stderr, shapes, opts, dtypes, llama.Compute(compute), asJSON)
		},
	}
	f := cmd.Flags()
	f.StringVar(&shape, "shape", "smollm-135m", "model shape: "+strings.Join(shapeNames(), ", ")+" or all")
	f.IntSliceVar(&threads, "threads", []int{1, 2}, "thread counts to measure")
	f.IntVar(&prefill, "prefill", 512, "tokens in the prefill batch")
	f.IntVar(&decode, "decode", 128, "greedy decode steps")
	f.IntVar(&reps, "reps", 1, "repetitions of each phase; the median is reported")
	f.BoolVar(&asJSON, "json", false, "print one JSON object per shape, thread count and phase")
	f.StringVar(&exportDir, "export-gguf", "", "write the shapes' models to `DIR` as GGUF files instead of measuring")
	f.StringSliceVar(&dtypes, "dtype", []string{"float32"}, "weight types to measure: float32, bfloat16, float16")
	f.StringVar(&exportDType, "export-dtype", "f32", "weight type of --export-gguf: f32, bf16 or f16")
	f.StringVar(&compute, "compute", "f32", "arithmetic of the matrix products: f32, or bf16 (bfloat16 weights only: --dtype bfloat16)")
	return cmd
}

func shapeNames() []string {
	names := make([]string, len(bench.ModelShapes))
	for i, s := range bench.ModelShapes {
		names[i] = s.Name
	}
	return names
}

// selectShapes resolves --shape: a name, a comma-separated list, or all.
func selectShapes(arg string) ([]bench.ModelShape, error) {
	if arg == "all" {
		return bench.ModelShapes, nil
	}
	var shapes []bench.ModelShape
	for name := range strings.SplitSeq(arg, ",") {
		s, err := bench.ModelShapeNamed(strings.TrimSpace(name))
		if err != nil {
			return nil, err
		}
		shapes = append(shapes, s)
	}
	return shapes, nil
}

func exportShapes(stdout, stderr io.Writer, shapes []bench.ModelShape, dir, dtype string) error {
	for _, s := range shapes {
		fmt.Fprintf(stderr, "bench: building %s\n", s.Name)
		m, err := s.Build()
		if err != nil {
			return err
		}
		path, err := bench.ExportGGUFDType(dir, s, m, dtype)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, path)
	}
	return nil
}

func runModels(stdout, stderr io.Writer, shapes []bench.ModelShape, opts bench.ModelOptions, dtypes []string, compute llama.Compute, asJSON bool) error {
	var all []bench.ModelResult
	for _, s := range shapes {
		t0 := time.Now()
		fmt.Fprintf(stderr, "bench: building %s (synthetic, f32)\n", s.Name)
		m, err := s.Build()
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "bench: built %s: %d parameters, %.2f GB in %.1fs\n",
			s.Name, m.Config.Params(), 4*float64(m.Config.Params())/1e9, time.Since(t0).Seconds())
		for _, name := range dtypes {
			dt, err := llama.ParseDType(name)
			if err != nil {
				return err
			}
			mm, err := m.WithDType(dt)
			if err != nil {
				return err
			}
			if mm, err = mm.WithCompute(compute); err != nil {
				return fmt.Errorf("bench model: --compute: %w", err)
			}
			rs, err := bench.MeasureModel(mm, s.Name, opts)
			if err != nil {
				return err
			}
			all = append(all, rs...)
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		for _, r := range all {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	fmt.Fprintf(stdout, "synthetic models; %s; prefill: one batch, logits of the last position; decode: greedy from position 0 with the KV cache; median of %d reps\n",
		machine(), opts.Reps)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "shape\tparams\tdtype\tthreads\tphase\ttokens\tseconds\tcpu-s\ttokens/s\tGFLOP/s\tweights GB/s\t")
	for _, r := range all {
		gbps := "-"
		if r.WeightsGBPS > 0 {
			gbps = fmt.Sprintf("%.1f", r.WeightsGBPS)
		}
		fmt.Fprintf(tw, "%s\t%.1fM\t%s\t%d\t%s\t%d\t%.3f\t%.3f\t%.1f\t%.1f\t%s\t\n",
			r.Shape, float64(r.Params)/1e6, r.Dtype, r.Threads, r.Phase, r.Tokens, r.Seconds, r.CPUSeconds, r.TokensPerS, r.GFLOPS, gbps)
	}
	return tw.Flush()
}

func benchCaptureCmd() *cobra.Command {
	var (
		shape                   string
		samples, seqLen, layers int
		threads                 int
		asJSON                  bool
	)
	cmd := &cobra.Command{
		Use:   "capture",
		Short: "Time calibration capture (every block over a calibration batch)",
		Long: `Time what calibration capture computes: a batch of --samples sequences of
--seqlen tokens through every block of a synthetic model. Only --layers
blocks are built and timed; the total is extrapolated to the shape's
depth (all blocks share one shape). Storing the activations is not
included.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := bench.ModelShapeNamed(shape)
			if err != nil {
				return err
			}
			if err := checkThreads([]int{threads}); err != nil {
				return err
			}
			r, err := bench.MeasureCapture(s, bench.CaptureOptions{Samples: samples, SeqLen: seqLen, Layers: layers,
				Threads: threads, Progress: cmd.ErrOrStderr()})
			if err != nil {
				return err
			}
			return printCapture(cmd.OutOrStdout(), r, asJSON)
		},
	}
	f := cmd.Flags()
	f.StringVar(&shape, "shape", "qwen3-0.6b", "model shape: "+strings.Join(shapeNames(), ", "))
	f.IntVar(&samples, "samples", 64, "sequences in the calibration batch")
	f.IntVar(&seqLen, "seqlen", 512, "tokens per sequence")
	f.IntVar(&layers, "layers", 1, "blocks to time (the rest are extrapolated)")
	f.IntVar(&threads, "threads", 2, "threads (GOMAXPROCS)")
	f.BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	return cmd
}

func printCapture(w io.Writer, r bench.CaptureResult, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(r)
	}
	how := "measured"
	if r.Extrapolated {
		how = fmt.Sprintf("extrapolated from %d timed", r.LayersTimed)
	}
	_, err := fmt.Fprintf(w, "capture %s: %d × %d tokens, %d threads: %.3gs per block, %.4gs for %d blocks (%s); %.0f tokens/s, %.1f GFLOP/s\n",
		r.Shape, r.Samples, r.SeqLen, r.Threads, r.SecondsPerLayer, r.Seconds, r.LayersTotal, how, r.TokensPerS, r.GFLOPS)
	return err
}

func benchSmokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "smoke",
		Short: "A seconds-long run of every benchmark on tiny shapes, for CI",
		Long: `Run bench gemm, model, capture and eval (stories260K, three PIQA items,
when the shared data folder is there) on tiny shapes with one repetition, to
show that they work. The numbers mean nothing and nothing is checked
against a time.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			shapes := []bench.GEMMShape{{M: 16, K: 64, N: 48}, {M: 1, K: 64, N: 48}}
			if err := runGEMM(stdout, stderr, shapes, []int{1, 2}, bench.GEMMOptions{Reps: 1}, false); err != nil {
				return err
			}
			s, err := bench.ModelShapeNamed("stories260k")
			if err != nil {
				return err
			}
			opts := bench.ModelOptions{Threads: []int{1, 2}, Prefill: 16, Decode: 8, Reps: 1}
			if err := runModels(stdout, io.Discard, []bench.ModelShape{s}, opts, []string{"float32", "bfloat16"}, "", false); err != nil {
				return err
			}
			r, err := bench.MeasureCapture(s, bench.CaptureOptions{Samples: 2, SeqLen: 16, Layers: 1, Threads: 1})
			if err != nil {
				return err
			}
			if err := printCapture(stdout, r, false); err != nil {
				return err
			}
			if shareddata.Find() == "" {
				_, err := fmt.Fprintln(stdout, "bench eval skipped: the shared data folder is not found")
				return err
			}
			return runEvalBench(stdout, io.Discard, evalBench{tasks: []string{"piqa"}, items: 3, prompt: "Once upon a time", genTokens: 8,
				opts: bench.EvalOptions{Threads: 1, Reps: 1, Steps: true}})
		},
	}
}

func checkThreads(threads []int) error {
	if len(threads) == 0 {
		return errors.New("bench: --threads is empty")
	}
	for _, t := range threads {
		if t < 1 {
			return fmt.Errorf("bench: --threads %d must be at least 1", t)
		}
	}
	return nil
}

// machine names what the numbers were measured on.
func machine() string {
	cpu := fmt.Sprintf("%s/%s", runtime.GOOS, runtime.GOARCH)
	// Linux names the processor in /proc/cpuinfo; elsewhere the
	// architecture has to do.
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimLeft(name, " \t:"))
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d CPUs, GEMM implementations %s", cpu, runtime.NumCPU(), strings.Join(gemm.Impls(), ", "))
}
