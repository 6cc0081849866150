// Package mceval scores multiple-choice tasks by log-likelihood with the
// semantics of EleutherAI's lm-evaluation-harness ("lm-eval"): each item is
// a context and N continuations, the continuation is the target delimiter
// (" ") followed by the choice, and the model's answer is the choice whose
// continuation it finds most likely (acc) or most likely per character
// (acc_norm). It knows nothing of recipes: callers give it documents, a
// tokenizer and a model.
package mceval

import (
	"fmt"
	"regexp"
	"strings"
)

// Doc is one row of a task's data: a jsonl line, or a parquet row read
// as the same JSON-shaped record.
type Doc map[string]any

// Task turns documents into multiple-choice items the way lm-eval's task
// yaml does: Text is doc_to_text, Choices doc_to_choice and Gold
// doc_to_target (an index into Choices). FromSpec builds one from its
// definition as data.
type Task struct {
	Name    string
	Text    func(Doc) (string, error)
	Choices func(Doc) ([]string, error)
	Gold    func(Doc) (int, error)
	// Target, when not nil, is the one continuation every choice shares
	// (lm-eval's multiple_inputs): each choice is then a context, scored
	// by the log-likelihood of Delimiter+Target after it.
	Target func(Doc) (string, error)
	// Metrics are the metrics reported ("acc", "acc_norm").
	Metrics []string
	// Delimiter is lm-eval's target_delimiter, put between the context and
	// each choice.
	Delimiter string
	// FewshotDelimiter separates few-shot examples from each other and
	// from the item (lm-eval's fewshot_delimiter).
	FewshotDelimiter string
}

var brackets = regexp.MustCompile(`\[.*?\]`)

// Preprocess is lm-eval's hellaswag preprocess: strip, " [title]" becomes
// ". ", other bracketed markers go, and double spaces become single.
func Preprocess(text string) string {
	text = strings.TrimSpace(text)
	text = strings.ReplaceAll(text, " [title]", ". ")
	text = brackets.ReplaceAllString(text, "")
	return strings.ReplaceAll(text, "  ", " ")
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "missing"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
