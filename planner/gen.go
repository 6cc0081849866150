package planner

import (
	"fmt"
	"path/filepath"
	"slices"

	"lrmc/compiler/ir"
)

// GenItemsParams: input is the task's jsonl file. The first Samples
// documents of the split (0: all) become items, each with Fewshot
// examples drawn with Seed from the split's other documents.
type GenItemsParams struct {
	Task    string          `json:"task"`
	Prompt  GenPromptParams `json:"prompt"`
	From    float64         `json:"from"`
	To      float64         `json:"to"`
	Samples int             `json:"samples"`
	Fewshot int             `json:"fewshot"`
	Seed    int64           `json:"seed"`
}

// GenPromptParams are the templates of a generation task (ir.GenTask).
type GenPromptParams struct {
	Text             string `json:"text"`
	Target           string `json:"target"`
	Delimiter        string `json:"delimiter,omitempty"`
	FewshotDelimiter string `json:"fewshotDelimiter,omitempty"`
}

// GenerateParams: inputs are a model, the items (OpGenItems), the
// tokenizer source and, for a Hugging Face checkpoint, the model source
// (its generation_config.json names end ids). Sample s of document d is
// drawn with geneval.SampleSeed(Seed, d, s).
type GenerateParams struct {
	Task            string   `json:"task"`
	TokenizerFormat string   `json:"tokenizerFormat"`
	Chat            bool     `json:"chat,omitempty"`
	Thinking        *bool    `json:"thinking,omitempty"`
	N               int      `json:"n"`
	Temperature     float64  `json:"temperature"`
	TopP            float64  `json:"topP"`
	MaxNewTokens    int      `json:"maxNewTokens"`
	Stop            []string `json:"stop"`
	Seed            int64    `json:"seed"`
}

// GenExtractParams say how answers are read and compared (geneval).
type GenExtractParams struct {
	Extraction        string `json:"extraction"`
	Regex             string `json:"regex,omitempty"`
	GroupSelect       int    `json:"groupSelect,omitempty"`
	IgnoreCase        bool   `json:"ignoreCase,omitempty"`
	IgnorePunctuation bool   `json:"ignorePunctuation,omitempty"`
}

// GenScoreParams: input is the generations (OpGenerate).
type GenScoreParams struct {
	Task    string           `json:"task"`
	Extract GenExtractParams `json:"extract"`
}

// GenMetricsParams: inputs are the scored samples (OpGenScore) and the
// model, for its shape.
type GenMetricsParams struct {
	Task    string           `json:"task"`
	Extract GenExtractParams `json:"extract"`
}

// generation plans a generation evaluation: the items (shared by every
// model), the generations of the run's model, their scores (written as
// samples/<name>.jsonl) and the metrics; nil on error. Each stage is its
// own node so that a new extraction does not generate again.
func (p *planning) generation(name, posRun string, e ir.Eval, model *Node, m modelNodes) *Node {
	g := e.Gen
	if g.MaxNewTokens >= m.info.SeqLen {
		p.errorf(posRun, e.Field+".maxNewTokens", "maxNewTokens %d leaves no room for a prompt in the model's context of %d tokens", g.MaxNewTokens, m.info.SeqLen)
		return nil
	}
	sum, err := p.env.FileDigest(e.Data.Path)
	if err != nil {
		p.errorf(posRun, e.Field+".data.path", "%v", err)
		return nil
	}
	src := p.b.source(name, e.Data.Path, sum, filepath.Base(e.Data.Path))
	items := p.b.add(name, OpGenItems, GenItemsParams{
		Task:   e.Task,
		Prompt: GenPromptParams{Text: g.Text, Target: g.Target, Delimiter: g.Delimiter, FewshotDelimiter: g.FewshotDelimiter},
		From:   e.Data.Split.From, To: e.Data.Split.To, Samples: e.Samples, Fewshot: e.Fewshot, Seed: e.Seed,
	}, fmt.Sprintf("%s prompts %s (%d-shot)", e.Task, filepath.Base(e.Data.Path), e.Fewshot), src)
	stop := slices.Clone(g.Stop)
	if stop == nil {
		stop = []string{}
	}
	inputs := []*Node{model, items, m.tokenizer}
	if m.info.Format == "hf" && m.source != nil {
		inputs = append(inputs, m.source)
	}
	gen := p.b.add(name, OpGenerate, GenerateParams{
		Task: e.Task, TokenizerFormat: m.info.TokenizerFormat, Chat: g.Chat, Thinking: g.Thinking,
		N: g.N, Temperature: g.Temperature, TopP: g.TopP, MaxNewTokens: g.MaxNewTokens, Stop: stop, Seed: e.Seed,
	}, fmt.Sprintf("%s generate ×%d, ≤%d tokens", e.Task, g.N, g.MaxNewTokens), inputs...)
	x := GenExtractParams{Extraction: g.Extraction, Regex: g.Regex, GroupSelect: g.GroupSelect,
		IgnoreCase: g.IgnoreCase, IgnorePunctuation: g.IgnorePunctuation}
	score := p.b.add(name, OpGenScore, GenScoreParams{Task: e.Task, Extract: x}, e.Task+" answers", gen)
	p.b.g.Targets = append(p.b.g.Targets, score)
	p.b.g.Outputs = append(p.b.g.Outputs, Output{Node: score, Path: filepath.Join(name, "samples", e.Name+".jsonl")})
	return p.b.add(name, OpGenMetrics, GenMetricsParams{Task: e.Task, Extract: x}, e.Task+" metrics", score, model)
}
