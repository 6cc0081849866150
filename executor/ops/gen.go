package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"time"

	"lrmc/executor"
	"lrmc/kernels/generate"
	"lrmc/kernels/geneval"
	"lrmc/kernels/textdata"
	"lrmc/kernels/thinktrace"
	"lrmc/planner"
)

// genItems renders a generation task's documents into prompts and
// targets. Input: data source.
type genItems struct{ jsonCodec[[]geneval.Item] }

func (genItems) Version() int { return 1 }

func (genItems) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.GenItemsParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	prompts, err := geneval.NewPrompts(p.Task, geneval.PromptSpec{Text: p.Prompt.Text, Target: p.Prompt.Target,
		Delimiter: p.Prompt.Delimiter, FewshotDelimiter: p.Prompt.FewshotDelimiter})
	if err != nil {
		return nil, fmt.Errorf("task %q: %w", p.Task, err)
	}
	path, err := input[string](c, 0)
	if err != nil {
		return nil, err
	}
	docs, err := readDocs(path)
	if err != nil {
		return nil, err
	}
	lo, hi := textdata.SplitRange(len(docs), p.From, p.To)
	items, err := prompts.Items(docs[lo:hi], p.Samples, p.Fewshot, uint64(p.Seed))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for i := range items {
		items[i].Doc += lo
	}
	return items, nil
}

// Generation is one item's generations: the OpGenerate result, one per
// item.
type Generation struct {
	Doc int `json:"doc"`
	// Prompt is the text fed to the model: the item's prompt, rendered
	// with the chat template when chat is on.
	Prompt       string `json:"prompt"`
	PromptTokens int    `json:"prompt_tokens"`
	// Cut counts the prompt tokens dropped from the left so that the
	// prompt and the new tokens fit the model's context, as lm-eval
	// truncates a context.
	Cut     int       `json:"cut,omitempty"`
	Target  string    `json:"target"`
	Samples []GenText `json:"samples"`
}

// GenText is one sample of an item.
type GenText struct {
	Seed uint64 `json:"seed"`
	// Text is the generation, cut before a stop sequence.
	Text string `json:"text"`
	// Stop is why it ended: "eos", "stop_sequence" or "max_tokens".
	Stop   string   `json:"stop"`
	Tokens int      `json:"tokens"`
	Think  GenTrace `json:"think"`
}

// GenTrace is a generation's think trace (thinktrace.Trace).
type GenTrace struct {
	Before    int  `json:"before"`
	Think     int  `json:"think"`
	After     int  `json:"after"`
	Markers   int  `json:"markers"`
	Opened    bool `json:"opened"`
	Closed    bool `json:"closed"`
	Truncated bool `json:"truncated"`
}

// checkpointEvery is how often (at most) generation saves what it has
// done, so that an interrupted evaluation loses little.
var checkpointEvery = 10 * time.Second

// generateOp generates every item's samples. Inputs: model, items,
// tokenizer source, and the model source of a Hugging Face checkpoint.
type generateOp struct{ jsonCodec[[]Generation] }

func (generateOp) Version() int { return 1 }

func (generateOp) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.GenerateParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	model, err := llamaInput(c, 0)
	if err != nil {
		return nil, err
	}
	dec, err := routedDecoder(model)
	if err != nil {
		return nil, err
	}
	items, err := input[[]geneval.Item](c, 1)
	if err != nil {
		return nil, err
	}
	tokPath, err := input[string](c, 2)
	if err != nil {
		return nil, err
	}
	var modelDir string
	if len(c.Inputs) > 3 {
		if modelDir, err = input[string](c, 3); err != nil {
			return nil, err
		}
	}
	var cfgEOS []int
	if model.HF != nil {
		cfgEOS = model.HF.EOSTokenIDs
	}
	gm, err := generate.Attach(model.LM, tokPath, cfgEOS, modelDir)
	if err != nil {
		return nil, err
	}
	if p.Chat && gm.Template == nil {
		return nil, fmt.Errorf("%s: chat is on, but the tokenizer %s has no chat template", p.Task, tokPath)
	}
	prompts, err := genPrompts(gm, p, items)
	if err != nil {
		return nil, err
	}

	out := make([]*Generation, len(items))
	if _, state, ok, err := c.Checkpoints.Load(); err != nil {
		return nil, err
	} else if ok {
		// A checkpoint holds the items finished before an interruption
		// (null for the others); each item's generation depends only on
		// the item, so resuming gives what an uninterrupted run gives.
		var saved []*Generation
		if json.Unmarshal(state, &saved) == nil && len(saved) == len(items) {
			out = saved
		}
	}
	var todo []int
	for i := range items {
		if out[i] == nil {
			todo = append(todo, i)
		}
	}
	var mu sync.Mutex
	done := len(items) - len(todo)
	lastSave := time.Now()
	finish := func(i int, g *Generation) error {
		mu.Lock()
		defer mu.Unlock()
		out[i] = g
		done++
		c.Progress(int64(done), int64(len(items)))
		if time.Since(lastSave) < checkpointEvery || done == len(items) {
			return nil
		}
		lastSave = time.Now()
		state, err := json.Marshal(out)
		if err != nil {
			return err
		}
		return c.Checkpoints.Save(int64(done), state)
	}

	// Items are independent; each worker generates whole items, so the
	// result does not depend on which worker took which.
	workers := min(runtime.GOMAXPROCS(0), max(1, len(todo)))
	next := make(chan int)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if errs[w] != nil {
					continue
				}
				g, err := generateItem(ctx, gm, dec, p, items[i], prompts[i])
				if err == nil {
					err = finish(i, g)
				}
				if err != nil {
					errs[w] = fmt.Errorf("%s: item %d (document %d): %w", p.Task, i, items[i].Doc, err)
				}
			}
		}()
	}
feed:
	for _, i := range todo {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	res := make([]Generation, len(out))
	for i, g := range out {
		res[i] = *g
	}
	return res, nil
}

// genPrompt is an item's prompt as fed: its text and token ids, and how
// many ids were cut from the left to fit the context.
type genPrompt struct {
	text string
	ids  []int32
	cut  int
}

// genPrompts renders and encodes every item's prompt: through the chat
// template as the user's message when chat is on (as `lrmc generate
// --chat` does), else as plain text with the tokenizer's own special
// tokens (BOS where the model wants one).
func genPrompts(gm *generate.Model, p planner.GenerateParams, items []geneval.Item) ([]genPrompt, error) {
	ctxLen := gm.LM.Config.SeqLen
	if p.MaxNewTokens >= ctxLen {
		return nil, fmt.Errorf("%s: maxNewTokens %d leaves no room for a prompt in the model's context of %d tokens", p.Task, p.MaxNewTokens, ctxLen)
	}
	out := make([]genPrompt, len(items))
	for i, it := range items {
		text := it.Prompt
		var ids []int32
		if p.Chat {
			var err error
			if text, err = gm.RenderChat(it.Prompt, generate.ChatOptions{Thinking: p.Thinking}); err != nil {
				return nil, fmt.Errorf("%s: document %d: %w", p.Task, it.Doc, err)
			}
			ids = gm.Tok.EncodeRendered(text)
		} else {
			ids = gm.Tok.EncodePrompt(text)
		}
		if len(ids) == 0 {
			return nil, fmt.Errorf("%s: document %d: the prompt encodes to no tokens", p.Task, it.Doc)
		}
		// Generate feeds every token but the last generated one, so a
		// prompt of ctxLen-maxNew+1 tokens leaves room for maxNew.
		cut := max(0, len(ids)-(ctxLen-p.MaxNewTokens+1))
		out[i] = genPrompt{text: text, ids: ids[cut:], cut: cut}
	}
	return out, nil
}

// generateItem generates an item's samples.
// generateItem generates an item's samples; dec, when set, is a routed
// model's compute-skipping decoder (generate.Options.Decoder).
func generateItem(ctx context.Context, gm *generate.Model, dec func(int) generate.Stepper, p planner.GenerateParams, it geneval.Item, pr genPrompt) (*Generation, error) {
	g := &Generation{Doc: it.Doc, Prompt: pr.text, PromptTokens: len(pr.ids), Cut: pr.cut, Target: it.Target}
	for s := range p.N {
		seed := geneval.SampleSeed(p.Seed, it.Doc, s)
		res, err := generate.Generate(ctx, gm.LM, gm.Tok, pr.ids, generate.Options{
			MaxNew: p.MaxNewTokens, Temperature: float32(p.Temperature), TopP: float32(p.TopP), Seed: seed,
			Stop: p.Stop, EOS: gm.EOS, Decoder: dec,
		})
		if err != nil {
			return nil, err
		}
		pieces := make([]string, len(res.IDs))
		for k, id := range res.IDs {
			pieces[k] = gm.Tok.Decode([]int32{id})
		}
		tr := geneval.Trace(pr.text, pieces, res.Reason == generate.StopMaxTokens)
		g.Samples = append(g.Samples, GenText{Seed: seed, Text: res.Text, Stop: string(res.Reason), Tokens: len(res.IDs),
			Think: GenTrace{Before: tr.Before, Think: tr.Think, After: tr.After, Markers: tr.MarkerTokens,
				Opened: tr.Opened, Closed: tr.Closed, Truncated: tr.Truncated}})
	}
	return g, nil
}

// GenSample is one scored item: a line of samples/<eval>.jsonl.
type GenSample struct {
	Doc    int    `json:"doc"`
	Prompt string `json:"prompt"`
	Cut    int    `json:"prompt_cut,omitempty"`
	// Target is the rendered target; Gold the answer read from it.
	Target  string         `json:"target"`
	Gold    string         `json:"gold"`
	Samples []GenSampleOut `json:"samples"`
	// Pass1 is the fraction of the samples the primary filter finds
	// correct.
	Pass1 float64 `json:"pass@1"`
}

// GenSampleOut is one generation with its answers by filter.
type GenSampleOut struct {
	Text      string            `json:"text"`
	Stop      string            `json:"stop"`
	Tokens    int               `json:"tokens"`
	Extracted map[string]string `json:"extracted"`
	Correct   map[string]bool   `json:"correct"`
	// ThinkTokens and AnswerTokens count the tokens inside the think
	// block and after it (all of a generation without one).
	ThinkTokens  int  `json:"think_tokens"`
	AnswerTokens int  `json:"answer_tokens"`
	ThinkClosed  bool `json:"think_closed"`
	Truncated    bool `json:"truncated"`
	// Trace is the whole think trace.
	Trace GenTrace `json:"trace"`
}

// genScore extracts and scores the answers. Input: generations.
type genScore struct{ genSamplesCodec }

func (genScore) Version() int { return 1 }

func (genScore) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.GenScoreParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	j, err := geneval.NewJudge(extractSpec(p.Extract))
	if err != nil {
		return nil, fmt.Errorf("task %q: %w", p.Task, err)
	}
	gens, err := input[[]Generation](c, 0)
	if err != nil {
		return nil, err
	}
	filters := j.Filters()
	primary := j.Primary()
	out := make([]GenSample, len(gens))
	for i, g := range gens {
		s := GenSample{Doc: g.Doc, Prompt: g.Prompt, Cut: g.Cut, Target: g.Target, Gold: j.Gold(g.Target)}
		right := 0
		for _, t := range g.Samples {
			jd := j.Judge(t.Text, g.Target)
			o := GenSampleOut{Text: t.Text, Stop: t.Stop, Tokens: t.Tokens, Extracted: map[string]string{}, Correct: map[string]bool{},
				ThinkTokens: t.Think.Think, AnswerTokens: t.Think.After, ThinkClosed: t.Think.Closed, Truncated: t.Think.Truncated, Trace: t.Think}
			for k, f := range filters {
				o.Extracted[f], o.Correct[f] = jd.Answers[k], jd.Correct[k]
			}
			if o.Correct[primary] {
				right++
			}
			s.Samples = append(s.Samples, o)
		}
		if len(g.Samples) > 0 {
			s.Pass1 = float64(right) / float64(len(g.Samples))
		}
		out[i] = s
	}
	return out, nil
}

func extractSpec(x planner.GenExtractParams) geneval.ExtractSpec {
	return geneval.ExtractSpec{Extraction: x.Extraction, Regex: x.Regex, GroupSelect: x.GroupSelect,
		IgnoreCase: x.IgnoreCase, IgnorePunctuation: x.IgnorePunctuation}
}

// genSamplesCodec stores scored items as JSON lines, the samples file's
// format.
type genSamplesCodec = jsonLines[GenSample]

// GenResult is a generation evaluation's metrics: the task, the items
// and samples per item, the model's shape, and the metric columns
// (geneval.Judge.Metrics) written at the top level of its JSON object
// beside them ("exact_match_strict", "pass@1", "think_tokens_mean", …).
type GenResult struct {
	Task    string
	Items   int
	N       int
	Params  int64
	Blocks  int
	Metrics map[string]float64
}

func (r GenResult) MarshalJSON() ([]byte, error) {
	m := map[string]any{"task": r.Task, "items": r.Items, "n": r.N, "params": r.Params, "blocks": r.Blocks}
	for k, v := range r.Metrics {
		if _, taken := m[k]; taken {
			return nil, fmt.Errorf("metric %q collides with a field", k)
		}
		m[k] = v
	}
	return json.Marshal(m)
}

func (r *GenResult) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	r.Metrics = map[string]float64{}
	for k, raw := range m {
		var err error
		switch k {
		case "task":
			err = json.Unmarshal(raw, &r.Task)
		case "items":
			err = json.Unmarshal(raw, &r.Items)
		case "n":
			err = json.Unmarshal(raw, &r.N)
		case "params":
			err = json.Unmarshal(raw, &r.Params)
		case "blocks":
			err = json.Unmarshal(raw, &r.Blocks)
		default:
			var v float64
			err = json.Unmarshal(raw, &v)
			r.Metrics[k] = v
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

// genMetrics computes the metrics from the scored samples. Inputs:
// samples, model (for its shape).
type genMetrics struct{ jsonCodec[GenResult] }

func (genMetrics) Version() int { return 1 }

func (genMetrics) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.GenMetricsParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	j, err := geneval.NewJudge(extractSpec(p.Extract))
	if err != nil {
		return nil, fmt.Errorf("task %q: %w", p.Task, err)
	}
	samples, err := input[[]GenSample](c, 0)
	if err != nil {
		return nil, err
	}
	model, err := input[*Model](c, 1)
	if err != nil {
		return nil, err
	}
	if len(samples) == 0 {
		return nil, fmt.Errorf("%s: no items were generated", p.Task)
	}
	outcomes := make([][]geneval.Outcome, len(samples))
	for i, s := range samples {
		for _, o := range s.Samples {
			oc := geneval.Outcome{Trace: o.Trace.trace(o.Tokens)}
			for _, f := range j.Filters() {
				oc.Correct = append(oc.Correct, o.Correct[f])
			}
			outcomes[i] = append(outcomes[i], oc)
		}
	}
	m, err := j.Metrics(outcomes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Task, err)
	}
	return GenResult{Task: p.Task, Items: len(samples), N: len(samples[0].Samples),
		Params: model.LM.Config.Params(), Blocks: model.LM.Config.Layers, Metrics: m}, nil
}

// trace is the thinktrace form of a stored trace of tokens tokens.
func (t GenTrace) trace(tokens int) thinktrace.Trace {
	return thinktrace.Trace{Tokens: tokens, Before: t.Before, Think: t.Think, After: t.After, MarkerTokens: t.Markers,
		Opened: t.Opened, Closed: t.Closed, Truncated: t.Truncated}
}
