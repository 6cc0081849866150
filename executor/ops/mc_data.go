package ops

import (
	"fmt"
	"slices"
	"strings"

	"lrmc/executor"
	"lrmc/kernels/hfdataset"
	"lrmc/kernels/mceval"
	"lrmc/planner"
)

// mcSpec is a task's definition as mceval takes it.
func mcSpec(d planner.MCTaskParams) mceval.Spec {
	return mceval.Spec{Text: d.Text, Choices: d.Choices, ChoicesField: d.ChoicesField, Gold: d.Gold,
		GoldLabels: d.GoldLabels, GoldLabelsField: d.GoldLabelsField, Target: d.Target,
		Preprocess: d.Preprocess, Delimiter: d.Delimiter, FewshotDelimiter: d.FewshotDelimiter}
}

// mcDocs reads the documents of a multiple-choice evaluation: the jsonl
// file of input 0, or the parquet files of a Hugging Face dataset's split
// (input 0, then inputs 2…, input 1 being the tokenizer), concatenated in
// order. It also returns the data's name for messages.
func mcDocs(c *executor.Call, format, task string, spec mceval.Spec) (string, []mceval.Doc, error) {
	path, err := input[string](c, 0)
	if err != nil {
		return "", nil, err
	}
	switch format {
	case "":
		docs, err := readDocs(path)
		return path, docs, err
	case "parquet":
	default:
		return "", nil, fmt.Errorf("%s: unknown format %q of multiple-choice data", path, format)
	}
	files := []string{path}
	for i := 2; i < len(c.Inputs); i++ {
		f, err := input[string](c, i)
		if err != nil {
			return "", nil, err
		}
		files = append(files, f)
	}
	fields, err := spec.Fields()
	if err != nil {
		return "", nil, fmt.Errorf("task %q: %w", task, err)
	}
	var docs []mceval.Doc
	for _, f := range files {
		// A column the task reads and the file lacks is named here, with
		// the file's columns, rather than as a missing field of row 0.
		cols, err := hfdataset.Columns(f)
		if err != nil {
			return "", nil, err
		}
		for _, field := range fields {
			if !slices.Contains(cols, field) {
				return "", nil, fmt.Errorf("%s: task %q reads column %q, which the file lacks (columns: %s)",
					f, task, field, strings.Join(cols, ", "))
			}
		}
		rows, err := hfdataset.ReadRows(f)
		if err != nil {
			return "", nil, err
		}
		for _, r := range rows {
			docs = append(docs, r)
		}
	}
	return hfdataset.Describe(files), docs, nil
}

// partialItem tokenizes a partial item (its choices are contexts, its
// target the one continuation), each pair split as lm-eval splits it.
func partialItem(enc mcEncoder, it mceval.Item, path string, lo, vocab int) (MCItem, error) {
	reqs, err := mceval.TokenizePartial(enc, it)
	if err != nil {
		return MCItem{}, fmt.Errorf("%s: document %d: %w", path, lo+it.Doc, err)
	}
	out := MCItem{Doc: lo + it.Doc, Context: it.Context, Choices: it.Choices, Delimiter: it.Delimiter, Gold: it.Gold,
		Target: it.Target, ContextTokens: []int32{}}
	for _, r := range reqs {
		for _, ids := range [][]int32{r.Context, r.Conts[0]} {
			if err := checkVocab(path, ids, vocab); err != nil {
				return MCItem{}, err
			}
		}
		out.ChoiceContextTokens = append(out.ChoiceContextTokens, r.Context)
		out.ChoiceTokens = append(out.ChoiceTokens, r.Conts[0])
	}
	return out, nil
}
