package ops

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"

	"lrmc/executor"
	"lrmc/kernels/mceval"
	"lrmc/kernels/textdata"
	"lrmc/planner"
)

// MCItem is one multiple-choice item, as text and as tokens.
type MCItem struct {
	// Doc is the document's line among the split's documents.
	Doc       int      `json:"doc"`
	Context   string   `json:"context"`
	Choices   []string `json:"choices"`
	Delimiter string   `json:"delimiter"`
	Gold      int      `json:"gold"`
	// ContextTokens and ChoiceTokens are how lm-eval splits each
	// context+continuation encoding.
	ContextTokens []int32   `json:"contextTokens"`
	ChoiceTokens  [][]int32 `json:"choiceTokens"`
	// A partial item's choices are contexts: choice i is scored as
	// ChoiceTokens[i] after ChoiceContextTokens[i] (ContextTokens is
	// empty), the continuation being Delimiter+Target.
	Target              string    `json:"target,omitempty"`
	ChoiceContextTokens [][]int32 `json:"choiceContextTokens,omitempty"`
}

// mcItems reads a task's documents into tokenized items. Inputs: data
// source (a jsonl file, or a dataset split's first parquet file),
// tokenizer source, then the split's other parquet files.
type mcItems struct{ jsonCodec[[]MCItem] }

func (mcItems) Version() int { return 1 }

func (mcItems) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.MCItemsParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	spec := mcSpec(p.Def)
	task, err := mceval.FromSpec(p.Task, spec)
	if err != nil {
		return nil, fmt.Errorf("task %q: %w", p.Task, err)
	}
	tokPath, err := input[string](c, 1)
	if err != nil {
		return nil, err
	}
	tf, err := openTokenizer(p.TokenizerFormat, tokPath, p.Vocab)
	if err != nil {
		return nil, err
	}
	path, docs, err := mcDocs(c, p.Format, p.Task, spec)
	if err != nil {
		return nil, err
	}
	lo, hi := textdata.SplitRange(len(docs), p.From, p.To)
	docs = docs[lo:hi]
	items, err := mceval.Items(task, docs, p.Samples, p.Fewshot, uint64(p.Seed))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	enc := mcEncoder{tok: tf.tok, bos: true}
	if h, ok := tf.tok.(hfTokenizer); ok {
		// A leading BOS where the model's tokenizer adds one (Llama),
		// none where it has none (Qwen).
		_, enc.bos = h.BOS()
	}
	out := make([]MCItem, len(items))
	for i, it := range items {
		if it.Partial {
			if out[i], err = partialItem(enc, it, path, lo, p.Vocab); err != nil {
				return nil, err
			}
			continue
		}
		r, err := mceval.Tokenize(enc, it)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, lo+it.Doc, err)
		}
		for _, ids := range append([][]int32{r.Context}, r.Conts...) {
			if err := checkVocab(path, ids, p.Vocab); err != nil {
				return nil, err
			}
		}
		out[i] = MCItem{Doc: lo + it.Doc, Context: it.Context, Choices: it.Choices, Delimiter: it.Delimiter, Gold: it.Gold,
			ContextTokens: r.Context, ChoiceTokens: r.Conts}
	}
	c.Log.Debug("multiple-choice items", "task", p.Task, "path", path, "items", len(out))
	return out, nil
}

// mcEncoder encodes text as a model's tokenizer does by default.
type mcEncoder struct {
	tok textTokenizer
	bos bool
}

func (e mcEncoder) Encode(text string) []int32 { return e.tok.Encode(text, e.bos, false) }

// readDocs reads a jsonl file, one JSON object per non-blank line.
func readDocs(path string) ([]mceval.Doc, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var docs []mceval.Doc
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<16), 64<<20)
	for line := 1; sc.Scan(); line++ {
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
	return docs, nil
}

// MCSample is one scored item: a line of samples/<eval>.jsonl.
type MCSample struct {
	Doc     int      `json:"doc"`
	Context string   `json:"context"`
	Choices []string `json:"choices"`
	// LogLikelihoods are Σ log p of each choice's continuation tokens.
	LogLikelihoods []float64 `json:"loglikelihoods"`
	// Pred is argmax of the log-likelihoods, PredNorm argmax of them per
	// character of the choice.
	Pred     int `json:"pred"`
	PredNorm int `json:"pred_norm"`
	// Target is a partial item's one continuation (after the delimiter);
	// its choices are then the contexts.
	Target  string `json:"target,omitempty"`
	Gold    int    `json:"gold"`
	Acc     bool   `json:"acc"`
	AccNorm bool   `json:"acc_norm"`
	// Truncated counts the context tokens dropped from the left to fit
	// the model's context, for the choice that keeps the least (each
	// context+continuation is cut on its own, as lm-eval does).
	Truncated int `json:"truncated,omitempty"`
}

// mcScore scores every choice of every item under a model. Inputs: model,
// items.
type mcScore struct{ samplesCodec }

// Version 2: continuations batched (log-likelihoods change in the last
// bits) and over-long items cut per choice, as lm-eval does.
func (mcScore) Version() int { return 2 }

func (mcScore) Run(ctx context.Context, c *executor.Call) (any, error) {
	model, err := llamaInput(c, 0)
	if err != nil {
		return nil, err
	}
	items, err := input[[]MCItem](c, 1)
	if err != nil {
		return nil, err
	}
	m := model.LM
	maxLen := m.Config.SeqLen
	// Every item is one request (its choices branch from its context),
	// but a partial item (WinoGrande: one continuation after each choice's
	// own context) is one request per choice; span[i] are item i's.
	var reqs []mceval.Request
	span := make([][2]int, len(items))
	for i, it := range items {
		lo := len(reqs)
		if it.ChoiceContextTokens != nil {
			if len(it.ChoiceContextTokens) != len(it.ChoiceTokens) || len(it.ChoiceTokens) != len(it.Choices) {
				return nil, fmt.Errorf("item %d (document %d): partial item with %d contexts, %d continuations and %d choices",
					i, it.Doc, len(it.ChoiceContextTokens), len(it.ChoiceTokens), len(it.Choices))
			}
			for j := range it.ChoiceTokens {
				reqs = append(reqs, mceval.Request{Context: it.ChoiceContextTokens[j], Conts: [][]int32{it.ChoiceTokens[j]}})
			}
		} else {
			reqs = append(reqs, mceval.Request{Context: it.ContextTokens, Conts: it.ChoiceTokens})
		}
		span[i] = [2]int{lo, len(reqs)}
		for j := lo; j < len(reqs); j++ {
			if _, err := mceval.Fit(reqs[j], maxLen); err != nil {
				return nil, fmt.Errorf("item %d (document %d): %w", i, it.Doc, err)
			}
		}
	}
	if model.Routers != nil {
		// Dynamic pruning: the compute-skipping forward pass, unbatched.
		lls, err := routedScores(ctx, model, maxLen, reqs, func(d int) { c.Progress(int64(d), int64(len(reqs))) })
		if err != nil {
			return nil, err
		}
		return mcSamples(items, reqs, span, maxLen, lls), nil
	}
	// Consecutive items are scored together in one batched pass
	// (mceval.ScoreBatch); the batches depend only on the items, and
	// workers take batches in turn, so the result does not depend on which
	// worker scored what.
	batches, err := mceval.Batches(reqs, maxLen, mceval.DefaultBudget)
	if err != nil {
		return nil, err
	}
	lls := make([][]float64, len(reqs))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(batches)))
	next := make(chan [2]int)
	errs := make([]error, workers)
	var done sync.WaitGroup
	var mu sync.Mutex
	finished := 0
	for w := range workers {
		done.Add(1)
		go func() {
			defer done.Done()
			for b := range next {
				got, err := mceval.ScoreBatch(m, maxLen, reqs[b[0]:b[1]])
				if err != nil {
					errs[w] = fmt.Errorf("requests %d…%d: %w", b[0], b[1]-1, err)
					continue
				}
				copy(lls[b[0]:b[1]], got)
				mu.Lock()
				finished += b[1] - b[0]
				c.Progress(int64(finished), int64(len(items)))
				mu.Unlock()
			}
		}()
	}
feed:
	for _, b := range batches {
		select {
		case next <- b:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	done.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return mcSamples(items, reqs, span, maxLen, lls), nil
}

// mcSamples are the items' scored samples, item i's from its requests
// span[i].
func mcSamples(items []MCItem, reqs []mceval.Request, span [][2]int, maxLen int, lls [][]float64) []MCSample {
	out := make([]MCSample, len(items))
	for i, it := range items {
		out[i] = mcSample(it, reqs[span[i][0]:span[i][1]], maxLen, lls[span[i][0]:span[i][1]])
	}
	return out
}

// mcSample is item it's scored sample from its requests' log-likelihoods:
// one request whose continuations are the choices, or, for a partial
// item, one request of one continuation per choice.
func mcSample(it MCItem, reqs []mceval.Request, maxLen int, lls [][]float64) MCSample {
	var ll []float64
	truncated := 0
	for j, r := range reqs {
		ll = append(ll, lls[j]...)
		parts, _ := mceval.Fit(r, maxLen) // checked before scoring
		truncated = max(truncated, mceval.Dropped(parts, r))
	}
	pred, norm := mceval.Prediction(ll, it.Choices)
	return MCSample{
		Doc: it.Doc, Context: it.Context, Choices: it.Choices, Target: it.Target, LogLikelihoods: ll,
		Pred: pred, PredNorm: norm, Gold: it.Gold, Acc: pred == it.Gold, AccNorm: norm == it.Gold,
		Truncated: truncated,
	}
}

// samplesCodec stores scored items as JSON lines, the samples file's
// format.
type samplesCodec = jsonLines[MCSample]

// jsonLines stores a []T as JSON lines, one value a line, HTML left
// unescaped so the samples files read as the text they hold.
type jsonLines[T any] struct{}

func (jsonLines[T]) Encode(v any) ([]byte, error) {
	s, ok := v.([]T)
	if !ok {
		return nil, fmt.Errorf("result is %T, want %T", v, s)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	for _, x := range s {
		if err := enc.Encode(x); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

func (jsonLines[T]) Decode(b []byte) (any, error) {
	out := []T{}
	dec := json.NewDecoder(bytes.NewReader(b))
	for dec.More() {
		var x T
		if err := dec.Decode(&x); err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

// mcAccuracy computes acc and acc_norm from the scores. Inputs: scores,
// model (for its shape, reported with every evaluation).
type mcAccuracy struct{ jsonCodec[EvalResult] }

func (mcAccuracy) Version() int { return 1 }

func (mcAccuracy) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.MCAccuracyParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	samples, err := input[[]MCSample](c, 0)
	if err != nil {
		return nil, err
	}
	model, err := llamaInput(c, 1)
	if err != nil {
		return nil, err
	}
	if len(samples) == 0 {
		return nil, fmt.Errorf("%s: no items were scored", p.Task)
	}
	acc := make([]float64, len(samples))
	norm := make([]float64, len(samples))
	for i, s := range samples {
		acc[i], norm[i] = b2f(s.Acc), b2f(s.AccNorm)
	}
	r := EvalResult{Task: p.Task, Items: len(samples), Params: model.LM.Config.Params(), Blocks: model.LM.Config.Layers}
	if len(p.Metrics) == 0 || slices.Contains(p.Metrics, "acc") {
		a, ase := mceval.Mean(acc)
		r.Acc, r.AccStderr = &a, &ase
	}
	if len(p.Metrics) == 0 || slices.Contains(p.Metrics, "acc_norm") {
		n, nse := mceval.Mean(norm)
		r.AccNorm, r.AccNormStderr = &n, &nse
	}
	return r, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
