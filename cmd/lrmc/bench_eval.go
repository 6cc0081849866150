package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"lrmc/internal/shareddata"
	"lrmc/kernels/bench"
	"lrmc/kernels/generate"
	"lrmc/kernels/hf"
	"lrmc/kernels/synth"
)

// evalBench is what `lrmc bench eval` measures.
type evalBench struct {
	model, shape, dtype string
	tasks               []string
	items               int
	prompt              string
	genTokens           int
	opts                bench.EvalOptions
	asJSON              bool
}

func benchEvalCmd() *cobra.Command {
	var e evalBench
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Evaluation throughput beside plain prefill and decode of the same model",
		Long: `Measure multiple-choice scoring (items/s) next to the plain prefills the same
items need, and generation (tokens/s) next to plain decode steps over the
same positions, so the harness's overhead shows as a ratio measured in the
same run (the target for multiple choice is at most 1.2×).

Multiple choice: the first --items documents of each --task from the
shared data folder (text/…), tokenized as the eval op does (0-shot), scored
as it scores them (batched passes of --budget tokens); tokenization is not
timed. The plain prefill of an item is one sequence of the tokens scoring
feeds (each context once, every continuation but its last token) through
the model, and the logits of the rows scoring reads. --steps also times
the token-by-token scorer the harness used before it batched continuations.

Generation: --gen-tokens greedy tokens after --prompt with the generate
package, against llama.Decoder steps with an argmax over the same positions.

The model is stories260K from the shared data folder unless --model names
one (anything lrmc generate reads) or --shape qwen3-0.6b asks for a
synthetic model of that shape (seeded random weights, written in the
Hugging Face layout to a temporary folder and loaded from there, with the
shared Qwen3 tokenizer).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e.opts.Progress = cmd.ErrOrStderr()
			return runEvalBench(cmd.OutOrStdout(), cmd.ErrOrStderr(), e)
		},
	}
	f := cmd.Flags()
	f.StringVar(&e.model, "model", "", "model to measure (default: stories260K from the shared data folder)")
	f.StringVar(&e.shape, "shape", "", "measure a synthetic model of this shape instead: qwen3-0.6b")
	f.StringVar(&e.dtype, "dtype", "", "hold the weights as float32 (the default), bfloat16 or float16")
	f.StringSliceVar(&e.tasks, "task", []string{"piqa", "hellaswag"}, "multiple-choice tasks: piqa, hellaswag")
	f.IntVar(&e.items, "items", 50, "items per task (the file's first)")
	f.StringVar(&e.prompt, "prompt", "Once upon a time", "generation prompt")
	f.IntVar(&e.genTokens, "gen-tokens", 64, "greedy tokens to generate (0: skip generation)")
	f.IntVar(&e.opts.Threads, "threads", 1, "threads (GOMAXPROCS)")
	f.IntVar(&e.opts.Reps, "reps", 3, "repetitions; the median is reported")
	f.IntVar(&e.opts.Budget, "budget", 0, "tokens per batched scoring pass (default: the eval op's)")
	f.BoolVar(&e.opts.Steps, "steps", true, "also time token-by-token scoring (the harness before batching)")
	f.BoolVar(&e.asJSON, "json", false, "print one JSON object per task and one for generation")
	return cmd
}

func runEvalBench(stdout, stderr io.Writer, e evalBench) error {
	if e.items < 1 || e.genTokens < 0 || e.opts.Reps < 1 || e.opts.Budget < 0 {
		return fmt.Errorf("bench eval: --items %d and --reps %d must be positive, --gen-tokens %d and --budget %d not negative",
			e.items, e.opts.Reps, e.genTokens, e.opts.Budget)
	}
	if err := checkThreads([]int{e.opts.Threads}); err != nil {
		return err
	}
	data := shareddata.Find()
	if data == "" {
		return errors.New("bench eval: the shared data folder (tasks, tokenizers, stories260K) is not found: set LRMC_DATA")
	}
	var tasks []bench.EvalTask
	for _, name := range e.tasks {
		t, err := bench.EvalTaskNamed(strings.TrimSpace(name))
		if err != nil {
			return err
		}
		tasks = append(tasks, t)
	}
	m, name, cleanup, err := evalBenchModel(stderr, data, e)
	if err != nil {
		return err
	}
	defer cleanup()
	var mcs []bench.MCResult
	for _, t := range tasks {
		rs, err := t.Requests(data, e.items, encodeFunc(m.Tok.EncodePrompt))
		if err != nil {
			return err
		}
		r, err := bench.MeasureMC(m.LM, name, t.Name, rs, e.opts)
		if err != nil {
			return err
		}
		mcs = append(mcs, r)
	}
	var gen *bench.GenResult
	if e.genTokens > 0 {
		prompt := m.Tok.EncodePrompt(e.prompt)
		r, err := bench.MeasureGenerate(m.LM, m.Tok, name, prompt, e.genTokens, e.opts)
		if err != nil {
			return err
		}
		gen = &r
	}
	return printEvalBench(stdout, mcs, gen, e.asJSON)
}

// encodeFunc is a function as an mceval.Encoder.
type encodeFunc func(string) []int32

func (f encodeFunc) Encode(s string) []int32 { return f(s) }

// evalBenchModel loads the model to measure; cleanup removes what it wrote.
func evalBenchModel(stderr io.Writer, data string, e evalBench) (*generate.Model, string, func(), error) {
	none := func() {}
	switch {
	case e.model != "" && e.shape != "":
		return nil, "", none, errors.New("bench eval: --model and --shape exclude each other")
	case e.shape != "":
		if e.shape != "qwen3-0.6b" {
			return nil, "", none, fmt.Errorf("bench eval: --shape %q: only qwen3-0.6b has a tokenizer in the shared data", e.shape)
		}
		s, err := bench.ModelShapeNamed(e.shape)
		if err != nil {
			return nil, "", none, err
		}
		t0 := time.Now()
		lm, cfg, err := synth.New(s.Spec)
		if err != nil {
			return nil, "", none, err
		}
		tmp, err := os.MkdirTemp("", "lrmc-bench-eval-")
		if err != nil {
			return nil, "", none, err
		}
		cleanup := func() { os.RemoveAll(tmp) }
		dir := filepath.Join(tmp, s.Name)
		// bfloat16 on disk halves the writing; --dtype says how it is held.
		if err := hf.Save(dir, lm, cfg, "bfloat16", 0); err != nil {
			cleanup()
			return nil, "", none, err
		}
		lm = nil
		m, err := generate.Load(dir, filepath.Join(data, "tokenizers", "qwen3"), e.dtype)
		if err != nil {
			cleanup()
			return nil, "", none, err
		}
		fmt.Fprintf(stderr, "bench: synthetic %s written and loaded in %.1fs\n", s.Name, time.Since(t0).Seconds())
		return m, s.Name + " (synthetic)", cleanup, nil
	default:
		ref := e.model
		if ref == "" {
			ref = filepath.Join(data, "models", "stories260K", "stories260K.bin")
		}
		m, err := generate.Load(ref, "", e.dtype)
		if err != nil {
			return nil, "", none, err
		}
		return m, filepath.Base(m.Path), none, nil
	}
}

func printEvalBench(w io.Writer, mcs []bench.MCResult, gen *bench.GenResult, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for _, r := range mcs {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		if gen != nil {
			return enc.Encode(gen)
		}
		return nil
	}
	if len(mcs) > 0 {
		fmt.Fprintf(w, "multiple choice; %s; harness: batched scoring as the eval op runs it; plain: one prefill per item of the tokens it feeds, logits of the rows it scores; median of %d reps\n",
			machine(), mcs[0].Reps)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "model\ttask\tthreads\titems\tchoices\tfed tokens\tharness s\titems/s\tplain prefill s\titems/s\tratio\tcpu ratio\ttoken-by-token s\tratio\tcpu ratio\t")
		for _, r := range mcs {
			steps, stepsRatio, stepsCPU := "-", "-", "-"
			if r.StepsSeconds > 0 {
				steps, stepsRatio = fmt.Sprintf("%.3f", r.StepsSeconds), fmt.Sprintf("%.2f×", r.StepsRatio)
				stepsCPU = fmt.Sprintf("%.2f×", r.StepsCPURatio)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%.3f\t%.1f\t%.3f\t%.1f\t%.2f×\t%.2f×\t%s\t%s\t%s\t\n", r.Model, r.Task, r.Threads, r.Items, r.Choices,
				r.FedTokens, r.Seconds, r.ItemsPerS, r.PrefillSeconds, r.PrefillItemsPerS, r.Ratio, r.CPURatio, steps, stepsRatio, stepsCPU)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w, "ratio: harness over plain prefill (target ≤ 1.2×); cpu ratio: the same of CPU time, steadier on a shared host")
	}
	if gen != nil {
		fmt.Fprintf(w, "generation; greedy, prompt fed token by token; plain: llama.Decoder steps and argmax over the same positions; median of %d reps\n", gen.Reps)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "model\tthreads\tprompt\ttokens\tgenerate s\ttokens/s\tplain decode s\ttokens/s\tratio\tcpu ratio\t")
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.3f\t%.1f\t%.3f\t%.1f\t%.2f×\t%.2f×\t\n", gen.Model, gen.Threads, gen.PromptTokens, gen.Tokens,
			gen.Seconds, gen.TokensPerS, gen.DecodeSeconds, gen.DecodeTokensPerS, gen.Ratio, gen.CPURatio)
		return tw.Flush()
	}
	return nil
}
