package report

import (
	"fmt"
	"sort"
	"strings"

	"lrmc/kernels/thinktrace"
)

// Reasoning is one pruned run's answers and reasoning on one generation
// evaluation beside its recipe's dense model's: how pruning changed
// accuracy (pass@1) and the length of the reasoning.
type Reasoning struct {
	Eval string
	Row  Row
	// Pass and DensePass are pass@1; Think and DenseThink the mean tokens
	// inside the think block; Tokens and DenseTokens the mean generated
	// tokens.
	Pass, DensePass     float64
	Think, DenseThink   float64
	Tokens, DenseTokens float64
	// Change compares the reasoning (thinktrace.Compare).
	Change thinktrace.Change
}

// generationEvals are the evaluations with think metrics, sorted.
func (t Table) generationEvals() []string {
	seen := map[string]bool{}
	for _, r := range t.Rows {
		for c := range r.Values {
			if e, ok := strings.CutSuffix(c, ".think_tokens_mean"); ok {
				seen[e] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for e := range seen {
		out = append(out, e)
	}
	sort.Strings(out)
	return out
}

// Reasoning lists, for every generation evaluation, each pruned run that
// has a dense baseline in its recipe, in table order.
func (t Table) Reasoning() []Reasoning {
	var out []Reasoning
	for _, e := range t.generationEvals() {
		dense := map[string]Row{}
		for _, r := range t.Rows {
			if r.Dense {
				dense[r.Recipe] = r
			}
		}
		summary := func(r Row) thinktrace.Summary {
			v := r.Values
			return thinktrace.Summary{MeanThink: v[e+".think_tokens_mean"], MedianThink: v[e+".think_tokens_median"],
				MeanTokens: v[e+".tokens_mean"], ClosedFrac: v[e+".think_closed_rate"], TruncatedFrac: v[e+".truncated_rate"]}
		}
		for _, r := range t.Rows {
			d, ok := dense[r.Recipe]
			if r.Dense || !ok {
				continue
			}
			if _, ok := r.Values[e+".think_tokens_mean"]; !ok {
				continue
			}
			if _, ok := d.Values[e+".think_tokens_mean"]; !ok {
				continue
			}
			rs, ds := summary(r), summary(d)
			out = append(out, Reasoning{
				Eval: e, Row: r,
				Pass: r.Values[e+".pass@1"], DensePass: d.Values[e+".pass@1"],
				Think: rs.MeanThink, DenseThink: ds.MeanThink,
				Tokens: rs.MeanTokens, DenseTokens: ds.MeanTokens,
				Change: thinktrace.Compare(ds, rs),
			})
		}
	}
	return out
}

// reasoningHeader names the columns of the reasoning table.
var reasoningHeader = []string{"eval", "run", "ratio", "pass@1", "vs dense", "think tokens", "think vs dense",
	"closed vs dense", "truncated vs dense", "tokens", "tokens vs dense"}

// reasoningCells are a reasoning row's texts.
func (t Table) reasoningCells(r Reasoning) []string {
	ratio := "-"
	if r.Row.HasRatio {
		ratio = fmt.Sprintf("%.1f%%", 100*r.Row.Ratio)
	}
	points := func(d float64) string { return fmt.Sprintf("%+.1f pts", 100*d) }
	return []string{
		r.Eval, r.Row.Label, ratio,
		formatNumber(r.Pass, false), points(r.Pass - r.DensePass),
		formatNumber(r.Think, false), r.Change.String(),
		points(r.Change.ClosedDelta), points(r.Change.TruncatedDelta),
		formatNumber(r.Tokens, false), relative(r.DenseTokens, r.Tokens),
	}
}

// relative formats (v−dense)/dense as a percentage, "n/a" when dense is 0.
func relative(dense, v float64) string {
	if dense == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%+.1f%%", 100*thinktrace.RelChange(dense, v))
}

// reasoningLegend explains the reasoning table.
const reasoningLegend = "Generation evaluations: each pruned run beside its dense model. " +
	"pass@1 vs dense in percentage points; think tokens: mean tokens inside <think>…</think>, " +
	"their change vs dense as mean (median), n/a when the dense model did not reason; " +
	"closed and truncated: change in the fraction of think blocks closed and of generations cut by the token limit; " +
	"tokens: mean generated tokens."
