// Package geneval evaluates generation tasks with the semantics of
// lm-evaluation-harness's generate_until tasks: a prompt is rendered from a
// document (with few-shot examples, each text + delimiter + target), the
// model continues it until a stop sequence, its end of sequence or a token
// limit, and an answer is extracted from the continuation and compared
// with the document's target. It knows nothing of models or recipes:
// callers give it documents and the generated texts, with their think
// traces (kernels/thinktrace).
package geneval

import (
	"fmt"
	"slices"
	"strings"

	"lrmc/kernels/mceval"
)

// PromptSpec is how a task turns a document into a prompt and a target:
// Text is doc_to_text, Target doc_to_target (templates as mceval.Spec
// writes them), Delimiter lm-eval's target_delimiter between a few-shot
// example's text and its target (" " when empty) and FewshotDelimiter
// what follows each example ("\n\n" when empty).
type PromptSpec struct {
	Text, Target                string
	Delimiter, FewshotDelimiter string
}

// Prompts renders a task's items.
type Prompts struct {
	name                        string
	text, target                mceval.Template
	delimiter, fewshotDelimiter string
}

// NewPrompts checks the templates of a task named name.
func NewPrompts(name string, s PromptSpec) (*Prompts, error) {
	text, err := mceval.ParseTemplate(s.Text)
	if err != nil {
		return nil, fmt.Errorf("text: %w", err)
	}
	if s.Text == "" {
		return nil, fmt.Errorf("text: empty template")
	}
	target, err := mceval.ParseTemplate(s.Target)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	if s.Target == "" {
		return nil, fmt.Errorf("target: empty template")
	}
	p := &Prompts{name: name, text: text, target: target, delimiter: s.Delimiter, fewshotDelimiter: s.FewshotDelimiter}
	if p.delimiter == "" {
		p.delimiter = " "
	}
	if p.fewshotDelimiter == "" {
		p.fewshotDelimiter = "\n\n"
	}
	return p, nil
}

// Item is one question: the prompt the model continues (few-shot examples
// included, before any chat template) and the rendered target.
type Item struct {
	// Doc is the document's index among the documents given.
	Doc    int    `json:"doc"`
	Prompt string `json:"prompt"`
	Target string `json:"target"`
}

// Items turns the first samples documents (all when 0) into items with k
// few-shot examples each, drawn as mceval.Items draws them (seeded by
// (seed, document), never the document itself), each written as lm-eval
// writes one: text, delimiter, target, few-shot delimiter.
func (p *Prompts) Items(docs []mceval.Doc, samples, k int, seed uint64) ([]Item, error) {
	n := len(docs)
	if samples > 0 {
		if samples > n {
			return nil, fmt.Errorf("%s: %d samples asked for but the data has %d documents", p.name, samples, n)
		}
		n = samples
	}
	if k > 0 && k >= len(docs) {
		return nil, fmt.Errorf("%s: %d few-shot examples need more than the %d documents of the data", p.name, k, len(docs))
	}
	items := make([]Item, n)
	for i := range n {
		text, target, err := p.parts(docs[i])
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", p.name, i, err)
		}
		var b strings.Builder
		if k > 0 {
			for _, j := range mceval.FewshotIndices(seed, len(docs), k, i) {
				xt, xg, err := p.parts(docs[j])
				if err != nil {
					return nil, fmt.Errorf("%s: few-shot document %d: %w", p.name, j, err)
				}
				b.WriteString(xt + p.delimiter + xg + p.fewshotDelimiter)
			}
		}
		b.WriteString(text)
		items[i] = Item{Doc: i, Prompt: b.String(), Target: target}
	}
	return items, nil
}

func (p *Prompts) parts(d mceval.Doc) (string, string, error) {
	text, err := p.text.Render(d)
	if err != nil {
		return "", "", err
	}
	target, err := p.target.Render(d)
	if err != nil {
		return "", "", err
	}
	return text, target, nil
}

// Extractions are the values of ExtractSpec.Extraction.
var Extractions = []string{"gsm8k", "boxed", "exact", "regex"}

// checkExtraction returns an error naming the known extractions.
func checkExtraction(s string) error {
	if slices.Contains(Extractions, s) {
		return nil
	}
	return fmt.Errorf("unknown extraction %q; extractions: %s", s, strings.Join(Extractions, ", "))
}
