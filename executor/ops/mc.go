package ops

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
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
}

// mcItems reads a task's jsonl documents into tokenized items. Inputs:
// data source, tokenizer source.
type mcItems struct{ jsonCodec[[]MCItem] }

func (mcItems) Version() int { return 1 }

func (mcItems) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.MCItemsParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	d := p.Def
	task, err := mceval.FromSpec(p.Task, mceval.Spec{Text: d.Text, Choices: d.Choices, ChoicesField: d.ChoicesField,
		Gold: d.Gold, Preprocess: d.Preprocess, Delimiter: d.Delimiter, FewshotDelimiter: d.FewshotDelimiter})
	if err != nil {
		return nil, fmt.Errorf("task %q: %w", p.Task, err)
	}
	path, err := input[string](c, 0)
	if err != nil {
		return nil, err
	}
	tokPath, err := input[string](c, 1)
	if err != nil {
		return nil, err
	}
	tf, err := openTokenizer(p.TokenizerFormat, tokPath, p.Vocab)
	if err != nil {
		return nil, err
	}
	docs, err := readDocs(path)
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
	Pred     int  `json:"pred"`
	PredNorm int  `json:"pred_norm"`
	Gold     int  `json:"gold"`
	Acc      bool `json:"acc"`
	AccNorm  bool `json:"acc_norm"`
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
	model, err := input[*Model](c, 0)
	if err != nil {
		return nil, err
	}
	items, err := input[[]MCItem](c, 1)
	if err != nil {
		return nil, err
	}
	m := model.LM
	maxLen := m.Config.SeqLen
	reqs := make([]mceval.Request, len(items))
	for i, it := range items {
		reqs[i] = mceval.Request{Context: it.ContextTokens, Conts: it.ChoiceTokens}
		if _, err := mceval.Fit(reqs[i], maxLen); err != nil {
			return nil, fmt.Errorf("item %d (document %d): %w", i, it.Doc, err)
		}
	}
	// Consecutive items are scored together in one batched pass
	// (mceval.ScoreBatch); the batches depend only on the items, and
	// workers take batches in turn, so the result does not depend on which
	// worker scored what.
	batches, err := mceval.Batches(reqs, maxLen, mceval.DefaultBudget)
	if err != nil {
		return nil, err
	}
	out := make([]MCSample, len(items))
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
				lls, err := mceval.ScoreBatch(m, maxLen, reqs[b[0]:b[1]])
				if err != nil {
					errs[w] = fmt.Errorf("items %d…%d: %w", b[0], b[1]-1, err)
					continue
				}
				for i := b[0]; i < b[1]; i++ {
					out[i] = mcSample(items[i], reqs[i], maxLen, lls[i-b[0]])
				}
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
	return out, nil
}

func mcSample(it MCItem, r mceval.Request, maxLen int, lls []float64) MCSample {
	parts, _ := mceval.Fit(r, maxLen) // checked before scoring
	pred, norm := mceval.Prediction(lls, it.Choices)
	return MCSample{
		Doc: it.Doc, Context: it.Context, Choices: it.Choices, LogLikelihoods: lls,
		Pred: pred, PredNorm: norm, Gold: it.Gold, Acc: pred == it.Gold, AccNorm: norm == it.Gold,
		Truncated: mceval.Dropped(parts, r),
	}
}

// samplesCodec stores scored items as JSON lines, the samples file's
// format.
type samplesCodec struct{}

func (samplesCodec) Encode(v any) ([]byte, error) {
	s, ok := v.([]MCSample)
	if !ok {
		return nil, fmt.Errorf("result is %T, want []MCSample", v)
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

func (samplesCodec) Decode(b []byte) (any, error) {
	out := []MCSample{}
	dec := json.NewDecoder(bytes.NewReader(b))
	for dec.More() {
		var s MCSample
		if err := dec.Decode(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
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
	model, err := input[*Model](c, 1)
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
	a, ase := mceval.Mean(acc)
	n, nse := mceval.Mean(norm)
	r.Acc, r.AccStderr, r.AccNorm, r.AccNormStderr = &a, &ase, &n, &nse
	return r, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
