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
	"slices"
	"strings"
)

// Doc is one row of a task's jsonl file.
type Doc map[string]any

// Task turns documents into multiple-choice items the way lm-eval's task
// yaml does: Text is doc_to_text, Choices doc_to_choice and Gold
// doc_to_target (an index into Choices).
type Task struct {
	Name    string
	Text    func(Doc) (string, error)
	Choices func(Doc) ([]string, error)
	Gold    func(Doc) (int, error)
	// Delimiter is lm-eval's target_delimiter, put between the context and
	// each choice.
	Delimiter string
	// FewshotDelimiter separates few-shot examples from each other and
	// from the item (lm-eval's fewshot_delimiter).
	FewshotDelimiter string
}

// The task families, transcribed from lm-eval's yaml files (tasks/piqa,
// tasks/hellaswag, tasks/super_glue/boolq, tasks/commonsense_qa, tasks/swag)
// for the field layouts of the jsonl files in ../shared/data/text.
var tasks = map[string]Task{
	// piqa.yaml: doc_to_text "Question: {{goal}}\nAnswer:",
	// doc_to_choice "{{[sol1, sol2]}}", doc_to_target label.
	"piqa": {
		Text: func(d Doc) (string, error) {
			g, err := str(d, "goal")
			return "Question: " + g + "\nAnswer:", err
		},
		Choices: func(d Doc) ([]string, error) { return strs(d, "sol1", "sol2") },
		Gold:    func(d Doc) (int, error) { return integer(d, "label") },
	},
	// hellaswag.yaml with utils.process_docs: query = preprocess(
	// activity_label + ": " + ctx_a + " " + ctx_b.capitalize()), choices =
	// preprocess(ending) each. The shared file has that context already
	// joined in "ctx" (so ctx_b's capital is lost: lm-eval would write "He"
	// where the file has "he").
	"hellaswag": {
		Text: func(d Doc) (string, error) {
			c, err := str(d, "ctx")
			return Preprocess(c), err
		},
		Choices: func(d Doc) ([]string, error) {
			e, err := list(d, "endings")
			for i := range e {
				e[i] = Preprocess(e[i])
			}
			return e, err
		},
		Gold: func(d Doc) (int, error) { return integer(d, "label") },
	},
	// super_glue/boolq/default.yaml: doc_to_text
	// "{{passage}}\nQuestion: {{question}}?\nAnswer:", doc_to_choice
	// ["no", "yes"], doc_to_target label (answer true is "yes").
	"boolq": {
		Text: func(d Doc) (string, error) {
			p, err1 := str(d, "passage")
			q, err2 := str(d, "question")
			return p + "\nQuestion: " + q + "?\nAnswer:", firstErr(err1, err2)
		},
		Choices: func(Doc) ([]string, error) { return []string{"no", "yes"}, nil },
		Gold: func(d Doc) (int, error) {
			v, ok := d["answer"].(bool)
			if !ok {
				return 0, fmt.Errorf("field \"answer\" is %T, want a boolean", d["answer"])
			}
			if v {
				return 1, nil
			}
			return 0, nil
		},
	},
	// commonsense_qa/default.yaml: doc_to_text "Question: {{question.strip()}}
	// \nA. …\nB. …\nC. …\nD. …\nE. …\nAnswer:", doc_to_choice the labels
	// A…E, doc_to_target the answer's index.
	"commonsense_qa": {
		Text: func(d Doc) (string, error) {
			q, err := str(d, "question")
			if err != nil {
				return "", err
			}
			c, err := list(d, "choices")
			if err != nil {
				return "", err
			}
			var b strings.Builder
			b.WriteString("Question: " + strings.TrimSpace(q))
			for i, s := range c {
				fmt.Fprintf(&b, "\n%c. %s", 'A'+i, s)
			}
			b.WriteString("\nAnswer:")
			return b.String(), nil
		},
		Choices: func(d Doc) ([]string, error) {
			c, err := list(d, "choices")
			labels := make([]string, len(c))
			for i := range c {
				labels[i] = string(rune('A' + i))
			}
			return labels, err
		},
		Gold: func(d Doc) (int, error) { return integer(d, "answer") },
	},
	// swag/swag.yaml: doc_to_text startphrase, doc_to_choice the four
	// endings, doc_to_target label.
	"swag": {
		Text:    func(d Doc) (string, error) { return str(d, "startphrase") },
		Choices: func(d Doc) ([]string, error) { return list(d, "choices") },
		Gold:    func(d Doc) (int, error) { return integer(d, "answer") },
	},
}

func init() {
	for name, t := range tasks {
		t.Name = name
		t.Delimiter = " "
		t.FewshotDelimiter = "\n\n"
		tasks[name] = t
	}
}

// Lookup returns the task named name.
func Lookup(name string) (Task, bool) {
	t, ok := tasks[name]
	return t, ok
}

// Names returns the task names, sorted.
func Names() []string {
	out := make([]string, 0, len(tasks))
	for n := range tasks {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
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

func str(d Doc, field string) (string, error) {
	s, ok := d[field].(string)
	if !ok {
		return "", fmt.Errorf("field %q is %s, want a string", field, kind(d[field]))
	}
	return s, nil
}

func strs(d Doc, fields ...string) ([]string, error) {
	out := make([]string, len(fields))
	for i, f := range fields {
		s, err := str(d, f)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

func list(d Doc, field string) ([]string, error) {
	v, ok := d[field].([]any)
	if !ok || len(v) == 0 {
		return nil, fmt.Errorf("field %q is %s, want a non-empty list of strings", field, kind(d[field]))
	}
	out := make([]string, len(v))
	for i, e := range v {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("field %q[%d] is %s, want a string", field, i, kind(e))
		}
		out[i] = s
	}
	return out, nil
}

func integer(d Doc, field string) (int, error) {
	switch v := d[field].(type) {
	case float64:
		if v == float64(int(v)) {
			return int(v), nil
		}
	case string: // some exports write labels as "0"/"1"
		var n int
		if _, err := fmt.Sscan(v, &n); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("field %q is %s, want an integer", field, kind(d[field]))
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

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
