package geneval

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"

	"lrmc/kernels/answer"
	"lrmc/kernels/mceval"
	"lrmc/kernels/thinktrace"
)

// ExtractSpec says how an answer is read out of a generation and
// compared with the target:
//
//   - "gsm8k": lm-eval's gsm8k filters, "strict" (the number after
//     "#### ") and "flexible" (the last number), each scored by the task's
//     exact_match against the whole target (its regexes_to_ignore keep
//     what follows the last "#### ").
//   - "boxed": the last \boxed{...} of the generation against the last
//     \boxed{...} of the target (or the whole target when it has none),
//     equal under answer.Equivalent (Hendrycks' is_equiv, then exact
//     rationals).
//   - "exact": the generation, stripped of surrounding space, against the
//     stripped target by exact_match.
//   - "regex": lm-eval's regex filter (Regex, the GroupSelect-th match,
//     negative from the end) against the stripped target by exact_match.
//
// IgnoreCase and IgnorePunctuation are exact_match's options for "exact"
// and "regex".
type ExtractSpec struct {
	Extraction                    string
	Regex                         string
	GroupSelect                   int
	IgnoreCase, IgnorePunctuation bool
}

// Judge extracts and scores answers.
type Judge struct {
	extraction string
	filters    []filter
	// primary is the filter whose correctness pass@1 averages.
	primary int
}

// filter is one reading of an answer and the metric column it feeds.
type filter struct {
	name, metric string
	extract      func(response string) (string, bool)
	gold         func(target string) string
	match        func(pred, target string) bool
}

// NewJudge checks an extraction.
func NewJudge(s ExtractSpec) (*Judge, error) {
	if err := checkExtraction(s.Extraction); err != nil {
		return nil, err
	}
	if s.Regex != "" && s.Extraction != "regex" {
		return nil, fmt.Errorf("regex is the pattern of extraction \"regex\"; extraction is %q", s.Extraction)
	}
	if (s.IgnoreCase || s.IgnorePunctuation) && s.Extraction != "exact" && s.Extraction != "regex" {
		return nil, fmt.Errorf("ignoreCase and ignorePunctuation apply to extractions \"exact\" and \"regex\"; extraction is %q", s.Extraction)
	}
	if s.GroupSelect != 0 && s.Extraction != "regex" {
		return nil, fmt.Errorf("groupSelect applies to extraction \"regex\"; extraction is %q", s.Extraction)
	}
	opt := answer.MatchOptions{IgnoreCase: s.IgnoreCase, IgnorePunctuation: s.IgnorePunctuation}
	trimmed := func(target string) string { return strings.TrimSpace(target) }
	exact := func(pred, target string) bool { return answer.ExactMatch(pred, strings.TrimSpace(target), opt) }
	j := &Judge{extraction: s.Extraction}
	switch s.Extraction {
	case "gsm8k":
		gold := func(target string) string {
			if g, err := answer.GSM8KGold(target); err == nil {
				return g
			}
			return target
		}
		j.filters = []filter{
			{name: "strict", metric: "exact_match_strict", extract: answer.GSM8KStrict.Apply, gold: gold, match: answer.GSM8KMatch},
			{name: "flexible", metric: "exact_match_flexible", extract: answer.GSM8KFlexible.Apply, gold: gold, match: answer.GSM8KMatch},
		}
		// Reasoning models rarely write lm-eval's "#### N": pass@1 reads
		// the last number, as reasoning evaluations do.
		j.primary = 1
	case "boxed":
		gold := func(target string) string {
			if g, ok := answer.ExtractBoxed(target); ok {
				return g
			}
			return strings.TrimSpace(target)
		}
		j.filters = []filter{{name: "boxed", metric: "accuracy", extract: answer.ExtractBoxed, gold: gold,
			match: func(pred, target string) bool { return answer.Equivalent(pred, gold(target)) }}}
	case "exact":
		j.filters = []filter{{name: "exact", metric: "exact_match", gold: trimmed, match: exact,
			extract: func(r string) (string, bool) { return strings.TrimSpace(r), true }}}
	case "regex":
		if s.Regex == "" {
			return nil, errors.New("extraction \"regex\" needs regex, the pattern that finds the answer")
		}
		re, err := regexp.Compile(s.Regex)
		if err != nil {
			return nil, fmt.Errorf("regex: %w", err)
		}
		f := answer.RegexFilter{Pattern: re, GroupSelect: s.GroupSelect}
		j.filters = []filter{{name: "regex", metric: "exact_match", extract: f.Apply, gold: trimmed, match: exact}}
	}
	return j, nil
}

// Filters are the names of the answer readings, in order ("strict",
// "flexible" for gsm8k; one named after the extraction otherwise).
func (j *Judge) Filters() []string {
	out := make([]string, len(j.filters))
	for i, f := range j.filters {
		out[i] = f.name
	}
	return out
}

// Primary is the filter pass@1 counts.
func (j *Judge) Primary() string { return j.filters[j.primary].name }

// Gold is the target's answer as a reader wants to see it in a sample log
// (the number after "####", the boxed answer); scoring uses the target.
func (j *Judge) Gold(target string) string { return j.filters[0].gold(target) }

// Judgement is one response read by every filter: the extracted answer
// (answer.Invalid when a filter found none, as lm-eval records it) and
// whether it matches the target.
type Judgement struct {
	Answers []string
	Correct []bool
}

// Judge reads one response.
func (j *Judge) Judge(response, target string) Judgement {
	var out Judgement
	for _, f := range j.filters {
		a, ok := f.extract(response)
		if !ok {
			a = answer.Invalid
		}
		// lm-eval compares "[invalid]" with the target as it would any
		// answer; it never matches a real target.
		out.Answers = append(out.Answers, a)
		out.Correct = append(out.Correct, ok && f.match(a, target))
	}
	return out
}

// Outcome is one judged generation with its think trace.
type Outcome struct {
	Correct []bool
	Trace   thinktrace.Trace
}

// Metrics are a task's columns over items, outcomes[i] holding item i's n
// samples in sample order:
//
//   - per filter, its metric ("exact_match_strict", "accuracy", …): the
//     mean over items of the first sample's correctness (lm-eval's
//     take_first), with its standard error as METRIC_stderr;
//   - "pass@1": the mean over items of the fraction of the item's samples
//     the primary filter finds correct, and "pass@1_stderr";
//   - over every sample: "think_tokens_mean", "think_tokens_median",
//     "answer_tokens_mean", "tokens_mean", "think_closed_rate",
//     "truncated_rate" (see thinktrace).
func (j *Judge) Metrics(outcomes [][]Outcome) (map[string]float64, error) {
	if len(outcomes) == 0 {
		return nil, errors.New("no items")
	}
	m := map[string]float64{}
	first := make([][]float64, len(j.filters))
	pass := make([]float64, len(outcomes))
	var traces []thinktrace.Trace
	var answerTokens int
	for i, samples := range outcomes {
		if len(samples) == 0 {
			return nil, fmt.Errorf("item %d has no samples", i)
		}
		for k := range j.filters {
			if len(samples[0].Correct) != len(j.filters) {
				return nil, fmt.Errorf("item %d: %d judgements for %d filters", i, len(samples[0].Correct), len(j.filters))
			}
			first[k] = append(first[k], b2f(samples[0].Correct[k]))
		}
		var right int
		for _, s := range samples {
			if len(s.Correct) != len(j.filters) {
				return nil, fmt.Errorf("item %d: %d judgements for %d filters", i, len(s.Correct), len(j.filters))
			}
			if s.Correct[j.primary] {
				right++
			}
			traces = append(traces, s.Trace)
			answerTokens += s.Trace.After
		}
		pass[i] = float64(right) / float64(len(samples))
	}
	for k, f := range j.filters {
		m[f.metric], m[f.metric+"_stderr"] = mean(first[k])
	}
	m["pass@1"], m["pass@1_stderr"] = mean(pass)
	s := thinktrace.Summarize(traces)
	m["think_tokens_mean"] = s.MeanThink
	m["think_tokens_median"] = s.MedianThink
	m["answer_tokens_mean"] = float64(answerTokens) / float64(len(traces))
	m["tokens_mean"] = s.MeanTokens
	m["think_closed_rate"] = s.ClosedFrac
	m["truncated_rate"] = s.TruncatedFrac
	return m, nil
}

// mean is mceval.Mean with a standard error of 0 for a single value (the
// sample variance is undefined there, and JSON has no NaN).
func mean(xs []float64) (float64, float64) {
	m, se := mceval.Mean(xs)
	if len(xs) < 2 || math.IsNaN(se) {
		se = 0
	}
	return m, se
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
