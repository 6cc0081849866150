package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"lrmc/kernels/generate"
	"lrmc/kernels/llama"
	"lrmc/kernels/mceval"
)

// EvalTask is a multiple-choice task the eval benchmark reads from the
// shared data folder: its jsonl file there and its definition, as the
// built-in tasks of the recipe schema define it.
type EvalTask struct {
	Name string
	File string // relative to the shared data folder
	Spec mceval.Spec
}

// EvalTasks are the tasks `lrmc bench eval` knows.
var EvalTasks = []EvalTask{
	{"piqa", "text/piqa/piqa_valid_labeled.jsonl",
		mceval.Spec{Text: "Question: {{goal}}\nAnswer:", Choices: []string{"{{sol1}}", "{{sol2}}"}, Gold: "label"}},
	{"hellaswag", "text/hellaswag/hellaswag_val_first2000.jsonl",
		mceval.Spec{Text: "{{ctx}}", ChoicesField: "endings", Gold: "label", Preprocess: "hellaswag"}},
}

// EvalTaskNamed returns the task called name.
func EvalTaskNamed(name string) (EvalTask, error) {
	var names []string
	for _, t := range EvalTasks {
		if t.Name == name {
			return t, nil
		}
		names = append(names, t.Name)
	}
	return EvalTask{}, fmt.Errorf("bench: unknown task %q (have %s)", name, strings.Join(names, ", "))
}

// Requests reads the task's first n documents (0: all) from the shared
// data folder dir and tokenizes them as the eval harness does (0-shot).
func (t EvalTask) Requests(dir string, n int, enc mceval.Encoder) ([]mceval.Request, error) {
	path := filepath.Join(dir, t.File)
	task, err := mceval.FromSpec(t.Name, t.Spec)
	if err != nil {
		return nil, err
	}
	docs, err := readJSONL(path, n)
	if err != nil {
		return nil, err
	}
	items, err := mceval.Items(task, docs, 0, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rs := make([]mceval.Request, len(items))
	for i, it := range items {
		if rs[i], err = mceval.Tokenize(enc, it); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
	}
	return rs, nil
}

// readJSONL reads the first n (0: all) objects of a jsonl file.
func readJSONL(path string, n int) ([]mceval.Doc, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var docs []mceval.Doc
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<16), 64<<20)
	for line := 1; sc.Scan() && (n <= 0 || len(docs) < n); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var d mceval.Doc
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		docs = append(docs, d)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if n > 0 && len(docs) < n {
		return nil, fmt.Errorf("%s: %d documents asked for, the file has %d", path, n, len(docs))
	}
	return docs, nil
}

// EvalOptions say how to measure evaluation; zero fields take the
// defaults named beside them.
type EvalOptions struct {
	Threads int // GOMAXPROCS while measuring (1)
	Reps    int // repetitions, the median reported (1)
	// Budget is the tokens per batched pass of the harness
	// (mceval.DefaultBudget).
	Budget int
	// Steps also times the token-by-token scorer (mceval.Score), what
	// the harness did before it batched continuations.
	Steps bool
	// Progress, when set, receives a line per measured phase.
	Progress io.Writer
}

func (o EvalOptions) withDefaults() EvalOptions {
	o.Threads = max(o.Threads, 1)
	o.Reps = max(o.Reps, 1)
	if o.Budget <= 0 {
		o.Budget = mceval.DefaultBudget
	}
	return o
}

// MCResult compares the harness's multiple-choice scoring with the plain
// prefills the same items need.
type MCResult struct {
	Kind    string `json:"kind"` // "mc"
	Model   string `json:"model"`
	Task    string `json:"task"`
	Threads int    `json:"threads"`
	Reps    int    `json:"reps"`
	Items   int    `json:"items"`
	Choices int    `json:"choices"`
	// FedTokens are the tokens scoring feeds the model (each context once,
	// every continuation but its last token); LogitRows the positions
	// whose logits it scores.
	FedTokens int `json:"fed_tokens"`
	LogitRows int `json:"logit_rows"`
	// Seconds is the harness (mceval.Batches and ScoreBatch, as the eval
	// op runs them, tokenization excluded); PrefillSeconds the plain
	// prefills of the same items: per item one sequence of its fed tokens
	// through the model and the logits of its scored rows, no harness.
	Seconds          float64 `json:"seconds"`
	ItemsPerS        float64 `json:"items_per_s"`
	PrefillSeconds   float64 `json:"prefill_seconds"`
	PrefillItemsPerS float64 `json:"prefill_items_per_s"`
	// Ratio is Seconds/PrefillSeconds (the target is at most 1.2);
	// CPURatio the same of the process's CPU time, which a descheduled
	// process does not accumulate: on a shared host the better estimate.
	Ratio             float64 `json:"ratio"`
	CPUSeconds        float64 `json:"cpu_seconds"`
	PrefillCPUSeconds float64 `json:"prefill_cpu_seconds"`
	CPURatio          float64 `json:"cpu_ratio"`
	// StepsSeconds and StepsRatio time mceval.Score (with
	// EvalOptions.Steps).
	StepsSeconds  float64 `json:"steps_seconds,omitempty"`
	StepsRatio    float64 `json:"steps_ratio,omitempty"`
	StepsCPURatio float64 `json:"steps_cpu_ratio,omitempty"`
}

// MeasureMC times scoring rs with the harness and the plain prefills the
// same items need, alternating them in each repetition, under the model's
// context of m.Config.SeqLen positions.
func MeasureMC(m *llama.Model, model, task string, rs []mceval.Request, o EvalOptions) (MCResult, error) {
	o = o.withDefaults()
	if len(rs) == 0 {
		return MCResult{}, fmt.Errorf("bench: %s: no items", task)
	}
	maxLen := m.Config.SeqLen
	res := MCResult{Kind: "mc", Model: model, Task: task, Threads: o.Threads, Reps: o.Reps, Items: len(rs)}
	// Each item's plain prefill: its fed tokens as one sequence (one per
	// part when an over-long item is cut differently per choice), the
	// logits of as many rows as scoring reads. Positions past the model's
	// context are no harder to compute than others, so a sequence is not
	// cut.
	type plain struct {
		tokens []int32
		rows   int
	}
	var plains []plain
	for i, r := range rs {
		parts, err := mceval.Fit(r, maxLen)
		if err != nil {
			return MCResult{}, fmt.Errorf("bench: %s item %d: %w", task, i, err)
		}
		for _, pt := range parts {
			p := plain{tokens: slices.Clone(pt.Context), rows: 1}
			for _, ci := range pt.Conts {
				c := r.Conts[ci]
				p.tokens = append(p.tokens, c[:len(c)-1]...)
				p.rows += len(c) - 1
			}
			plains = append(plains, p)
			res.FedTokens += len(p.tokens)
			res.LogitRows += p.rows
		}
		res.Choices += len(r.Conts)
	}
	batches, err := mceval.Batches(rs, maxLen, o.Budget)
	if err != nil {
		return MCResult{}, fmt.Errorf("bench: %s: %w", task, err)
	}
	var harness, pre, steps []timing
	var scoreErr error
	withProcs(o.Threads, func() {
		// A first item through both paths, untimed: the first pass over a
		// large model's weights pays for page faults the others do not.
		plainPrefill(m, plains[0].tokens, plains[0].rows)
		if _, err := mceval.ScoreBatch(m, maxLen, rs[:1]); err != nil {
			scoreErr = err
			return
		}
		for rep := range o.Reps {
			pre = append(pre, timed(func() {
				for _, p := range plains {
					plainPrefill(m, p.tokens, p.rows)
				}
			}))
			evalProgress(o.Progress, model, task, rep, o.Reps, "plain prefills", len(rs), pre[rep].wall)
			harness = append(harness, timed(func() {
				for _, b := range batches {
					if _, err := mceval.ScoreBatch(m, maxLen, rs[b[0]:b[1]]); err != nil {
						scoreErr = err
					}
				}
			}))
			evalProgress(o.Progress, model, task, rep, o.Reps, "harness", len(rs), harness[rep].wall)
			if o.Steps {
				d := llama.NewDecoder(m, maxLen)
				steps = append(steps, timed(func() {
					for _, r := range rs {
						mceval.Score(d, r)
					}
				}))
				evalProgress(o.Progress, model, task, rep, o.Reps, "token-by-token scoring", len(rs), steps[rep].wall)
			}
		}
	})
	if scoreErr != nil {
		return MCResult{}, fmt.Errorf("bench: %s: %w", task, scoreErr)
	}
	res.Seconds, res.CPUSeconds = median(harness).wall.Seconds(), median(harness).cpu.Seconds()
	res.PrefillSeconds, res.PrefillCPUSeconds = median(pre).wall.Seconds(), median(pre).cpu.Seconds()
	if res.PrefillCPUSeconds > 0 {
		res.CPURatio = res.CPUSeconds / res.PrefillCPUSeconds
	}
	res.ItemsPerS = float64(len(rs)) / res.Seconds
	res.PrefillItemsPerS = float64(len(rs)) / res.PrefillSeconds
	res.Ratio = res.Seconds / res.PrefillSeconds
	if o.Steps {
		res.StepsSeconds = median(steps).wall.Seconds()
		res.StepsRatio = res.StepsSeconds / res.PrefillSeconds
		if res.PrefillCPUSeconds > 0 {
			res.StepsCPURatio = median(steps).cpu.Seconds() / res.PrefillCPUSeconds
		}
	}
	return res, nil
}

// plainPrefill runs one sequence through the model and computes the logits
// of its last rows positions: the work a harness cannot avoid.
func plainPrefill(m *llama.Model, tokens []int32, rows int) []float32 {
	t := len(tokens)
	h := m.Embed(tokens, nil)
	for i := range m.Layers {
		h = m.Block(i, h, 1, t)
	}
	return m.Logits(h[(t-rows)*m.Config.Dim:], 1, rows)
}

func evalProgress(w io.Writer, model, task string, rep, reps int, what string, items int, d time.Duration) {
	if w != nil {
		fmt.Fprintf(w, "bench: %s %s rep %d/%d: %s of %d items in %.2fs\n", model, task, rep+1, reps, what, items, d.Seconds())
	}
}

// GenResult compares generate.Generate with plain decode steps over the
// same positions.
type GenResult struct {
	Kind         string `json:"kind"` // "generate"
	Model        string `json:"model"`
	Threads      int    `json:"threads"`
	Reps         int    `json:"reps"`
	PromptTokens int    `json:"prompt_tokens"`
	Tokens       int    `json:"tokens"` // generated
	// Seconds is generate.Generate (greedy, no stop sequence, the prompt
	// fed as it feeds it); DecodeSeconds the same positions through
	// llama.Decoder.Step with an argmax, no harness. Tokens/s count the
	// generated tokens over the whole time.
	Seconds          float64 `json:"seconds"`
	TokensPerS       float64 `json:"tokens_per_s"`
	DecodeSeconds    float64 `json:"decode_seconds"`
	DecodeTokensPerS float64 `json:"decode_tokens_per_s"`
	Ratio            float64 `json:"ratio"`     // Seconds/DecodeSeconds
	CPURatio         float64 `json:"cpu_ratio"` // the same of CPU time
}

// MeasureGenerate times generating n tokens greedily after prompt with
// generate.Generate and with plain decode steps, alternating them in each
// repetition.
func MeasureGenerate(m *llama.Model, tok generate.Detokenizer, model string, prompt []int32, n int, o EvalOptions) (GenResult, error) {
	o = o.withDefaults()
	if len(prompt) == 0 || n < 1 || len(prompt)+n-1 > m.Config.SeqLen {
		return GenResult{}, fmt.Errorf("bench: %d prompt and %d new tokens do not fit the model's %d positions", len(prompt), n, m.Config.SeqLen)
	}
	res := GenResult{Kind: "generate", Model: model, Threads: o.Threads, Reps: o.Reps, PromptTokens: len(prompt), Tokens: n}
	var gen, dec []timing
	var genErr error
	got := 0
	withProcs(o.Threads, func() {
		plainDecode(m, prompt, 1) // untimed, as in MeasureMC
		for rep := range o.Reps {
			dec = append(dec, timed(func() { plainDecode(m, prompt, n) }))
			genProgress(o.Progress, model, rep, o.Reps, "plain decode", n, dec[rep].wall)
			gen = append(gen, timed(func() {
				r, err := generate.Generate(context.Background(), m, tok, prompt, generate.Options{MaxNew: n})
				if err != nil {
					genErr = err
				}
				got = len(r.IDs)
			}))
			genProgress(o.Progress, model, rep, o.Reps, "generate", n, gen[rep].wall)
		}
	})
	if genErr != nil {
		return GenResult{}, fmt.Errorf("bench: %w", genErr)
	}
	if got != n {
		return GenResult{}, fmt.Errorf("bench: generate made %d tokens, %d asked for", got, n)
	}
	res.Seconds = median(gen).wall.Seconds()
	res.DecodeSeconds = median(dec).wall.Seconds()
	res.TokensPerS = float64(n) / res.Seconds
	res.DecodeTokensPerS = float64(n) / res.DecodeSeconds
	res.Ratio = res.Seconds / res.DecodeSeconds
	if c := median(dec).cpu.Seconds(); c > 0 {
		res.CPURatio = median(gen).cpu.Seconds() / c
	}
	return res, nil
}

// plainDecode feeds prompt position by position, then n-1 greedy tokens,
// and returns the n chosen: the decoder steps generation runs, bare.
func plainDecode(m *llama.Model, prompt []int32, n int) []int32 {
	d := llama.NewDecoder(m, len(prompt)+n-1)
	var logits []float32
	for pos, id := range prompt {
		logits = d.Step(id, pos)
	}
	out := make([]int32, 0, n)
	for {
		tok := argmax(logits)
		out = append(out, tok)
		if len(out) == n {
			return out
		}
		logits = d.Step(tok, len(prompt)+len(out)-1)
	}
}

func genProgress(w io.Writer, model string, rep, reps int, what string, n int, d time.Duration) {
	if w != nil {
		fmt.Fprintf(w, "bench: %s rep %d/%d: %s of %d tokens in %.2fs\n", model, rep+1, reps, what, n, d.Seconds())
	}
}
