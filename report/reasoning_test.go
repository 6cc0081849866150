package report

import (
	"math"
	"strings"
	"testing"
)

// genRun is a run's metrics with one generation evaluation, gsm8k.
func genRun(params, pass, think, median, tokens, closed, truncated float64) map[string]any {
	return map[string]any{
		"params": params, "blocks": 4.0, "evals": []any{"gsm8k"},
		"tasks": map[string]any{"gsm8k": map[string]any{
			"task": "gsm8k", "params": params, "blocks": 4.0, "items": 8.0, "n": 1.0,
			"exact_match_strict": pass, "exact_match_strict_stderr": 0.1, "exact_match_flexible": pass,
			"pass@1": pass, "pass@1_stderr": 0.1,
			"think_tokens_mean": think, "think_tokens_median": median, "answer_tokens_mean": tokens - think,
			"tokens_mean": tokens, "think_closed_rate": closed, "truncated_rate": truncated,
		}},
	}
}

// The dense-vs-pruned change of reasoning length sits beside accuracy in
// report.md and report.html, and reasoning length is plotted against the
// pruning ratio like every varying metric.
func TestReasoningTable(t *testing.T) {
	dir := t.TempDir()
	writeResults(t, dir, genRun(1000, 0.5, 100, 90, 120, 0.9, 0.1), map[string]map[string]any{
		"cut-1": genRun(750, 0.25, 150, 99, 160, 0.7, 0.3),
		"cut-2": genRun(500, 0, 40, 45, 50, 0.5, 0.5),
	})
	src, err := LoadDir("sweep", dir, map[string]string{"cut-1": "shortgpt", "cut-2": "shortgpt"})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Build([]Source{src})
	if err != nil {
		t.Fatal(err)
	}
	rs := rep.Table.Reasoning()
	if len(rs) != 2 || rs[0].Row.Run != "cut-1" || rs[1].Row.Run != "cut-2" {
		t.Fatalf("reasoning rows %+v", rs)
	}
	c := rs[0].Change
	if !c.Defined || math.Abs(c.MeanThink-0.5) > 1e-12 || math.Abs(c.MedianThink-0.1) > 1e-12 ||
		math.Abs(c.ClosedDelta+0.2) > 1e-12 || math.Abs(c.TruncatedDelta-0.2) > 1e-12 {
		t.Errorf("cut-1 change %+v, want +50%% (median +10%%), closed −0.2, truncated +0.2", c)
	}
	md := string(rep.Markdown())
	for _, want := range []string{
		"## Reasoning length",
		"| gsm8k | cut-1 | 25.0% | 0.2500 | -25.0 pts | 150.0000 | +50.0% (median +10.0%) | -20.0 pts | +20.0 pts | 160.0000 | +33.3% |",
		"| gsm8k | cut-2 | 50.0% | 0.0000 | -50.0 pts | 40.0000 | -60.0% (median -50.0%) | -40.0 pts | +40.0 pts | 50.0000 | -58.3% |",
		"- gsm8k.think_tokens_mean vs pruning ratio",
		"- gsm8k.tokens_mean vs pruning ratio",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	html := string(rep.HTML())
	if !strings.Contains(html, "<h2>Reasoning length</h2>") || !strings.Contains(html, "<td class=\"n\">+50.0% (median +10.0%)</td>") {
		t.Errorf("report.html has no reasoning table")
	}

	// Without a dense baseline there is nothing to compare with.
	dir2 := t.TempDir()
	writeResults(t, dir2, nil, map[string]map[string]any{"cut-1": genRun(750, 0.25, 150, 99, 160, 0.7, 0.3)})
	src2, err := LoadDir("nodense", dir2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rs := BuildTable([]Source{src2}).Reasoning(); len(rs) != 0 {
		t.Errorf("reasoning rows without a dense model: %+v", rs)
	}
}
