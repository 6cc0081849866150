package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"lrmc/executor/ops"
	kdyn "lrmc/kernels/dynamic"
)

// printResults prints one row for the dense baseline and each run: the
// model's shape, the headline perplexity (the first perplexity
// evaluation's) against dense, then one column per metric of every other
// named evaluation ("piqa.acc", "piqa.acc_norm", "wiki.perplexity").
func printResults(w io.Writer, r ops.Results) {
	names := make([]string, 0, len(r.Runs))
	for n := range r.Runs {
		names = append(names, n)
	}
	sort.Strings(names)
	rows := names
	if r.Dense != nil {
		rows = append([]string{"dense"}, names...)
	}
	metrics := func(name string) ops.Metrics {
		if name == "dense" && r.Dense != nil {
			return r.Dense
		}
		return r.Runs[name]
	}
	var cols []column
	for _, name := range rows {
		for _, c := range evalColumns(metrics(name)) {
			if !slices.Contains(cols, c) {
				cols = append(cols, c)
			}
		}
	}

	// Speed columns appear when the recipe measured speed.
	var speeds []string
	for _, name := range rows {
		if s := speedOf(metrics(name)); s != nil {
			d, _ := metrics(name)["measuredOn"].(string)
			if !slices.Contains(speeds, d) {
				speeds = append(speeds, d)
			}
		}
	}

	// Dynamic-pruning columns appear when a run has routers.
	dynamic := false
	for _, name := range rows {
		dynamic = dynamic || dynamicOf(metrics(name)) != nil
	}

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := "run\tblocks kept\tremoved\tparams\tperplexity\tvs dense"
	if dynamic {
		header += "\trouters\tskip ratio\tskipped\tMACs saved"
	}
	for _, c := range cols {
		header += "\t" + c.eval + "." + c.metric
	}
	if speeds != nil {
		header += "\tprefill tok/s*\tdecode tok/s*"
	}
	fmt.Fprintln(tw, header)
	dense, hasDense := r.Dense["perplexity"].(float64)
	for _, name := range rows {
		m := metrics(name)
		ppl, _ := m["perplexity"].(float64)
		rel := "-"
		if hasDense && name != "dense" && dense > 0 {
			rel = fmt.Sprintf("%+.1f%%", 100*(ppl/dense-1))
		}
		removed := "-"
		if v, ok := m["removed"]; ok {
			removed = fmt.Sprint(v)
		}
		var b strings.Builder
		if dynamic {
			b.WriteString(dynamicCells(m))
		}
		for _, c := range cols {
			b.WriteString("\t")
			if v, ok := taskEntry(m, c.eval)[c.metric].(float64); ok {
				fmt.Fprintf(&b, "%.4f", v)
			} else {
				b.WriteString("-")
			}
		}
		if speeds != nil {
			var dense map[string]any
			if name != "dense" {
				dense = speedOf(metrics("dense"))
			}
			b.WriteString(speedCells(speedOf(m), dense))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.4f\t%s%s\n", name, count(m["blocks"]), removed, count(m["params"]), ppl, rel, b.String())
	}
	tw.Flush()
	for _, d := range speeds {
		fmt.Fprintf(w, "* measured on this machine, not estimated: %s\n", d)
	}
	if dynamic {
		// Routed models' exports hold the dense weights and, beside them,
		// routers only lrmc runs.
		fmt.Fprintf(w, "routers: %s\n", kdyn.Note)
	}
}

// dynamicOf is a run's dynamic-pruning summary (metrics "dynamic": the
// method and target ratio its routers were trained for), or nil.
func dynamicOf(m ops.Metrics) map[string]any {
	d, _ := m["dynamic"].(map[string]any)
	return d
}

// dynamicCells are a routed run's method, target skip ratio, the skip
// ratio realised on its headline perplexity evaluation and the fraction
// of the forward pass's multiply-adds saved there; dashes for others.
func dynamicCells(m ops.Metrics) string {
	d := dynamicOf(m)
	if d == nil {
		return "\t-\t-\t-\t-"
	}
	cells := fmt.Sprintf("\t%v\t%v", d["method"], d["ratio"])
	var e map[string]any
	for _, name := range evalNames(m) {
		if t := taskEntry(m, name); t["task"] == "perplexity" {
			e, _ = t["dynamic"].(map[string]any)
			break
		}
	}
	for _, k := range []string{"skip", "flopSaving"} {
		if v, ok := e[k].(float64); ok {
			cells += fmt.Sprintf("\t%.1f%%", 100*v)
		} else {
			cells += "\t-"
		}
	}
	return cells
}

// count prints a count (blocks, params) as an integer. A fresh result
// holds it as an int; one read back from the cache or a results.json holds
// it as JSON's float64, which %v prints as 2.0201472e+07.
func count(v any) string {
	switch n := v.(type) {
	case nil:
		return "-"
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
			return strconv.FormatInt(int64(n), 10)
		}
	}
	return fmt.Sprint(v)
}

// speedOf is a run's measured speed (metrics "measuredSpeed"), or nil.
func speedOf(m ops.Metrics) map[string]any {
	s, _ := m["measuredSpeed"].(map[string]any)
	return s
}

// speedCells are a run's prefill and decode tokens/s, each with its ratio
// to dense's when dense is given. A routed model's ratio is the one
// measured against its dense base in the same interleaved repetitions
// ("prefillSpeedup", "decodeSpeedup"), which a busy machine skews less.
func speedCells(s, dense map[string]any) string {
	var b strings.Builder
	for _, k := range []string{"prefill", "decode"} {
		v, ok := s[k+"TokensPerS"].(float64)
		if !ok {
			b.WriteString("\t-")
			continue
		}
		fmt.Fprintf(&b, "\t%.1f", v)
		if r, ok := s[k+"Speedup"].(float64); ok {
			fmt.Fprintf(&b, " (%.2f×)", r)
		} else if d, ok := dense[k+"TokensPerS"].(float64); ok && d > 0 {
			fmt.Fprintf(&b, " (%.2f×)", v/d)
		}
	}
	return b.String()
}

// column is one metric of one named evaluation.
type column struct{ eval, metric string }

// evalColumns lists a run's evaluation columns in the order written, less
// the first perplexity evaluation (the headline column).
func evalColumns(m ops.Metrics) []column {
	var cols []column
	headline := false
	for _, name := range evalNames(m) {
		e := taskEntry(m, name)
		switch {
		case e["pass@1"] != nil:
			// A generation evaluation: its answer metrics, then the
			// length of its reasoning and answers.
			for _, k := range genColumns {
				if e[k] != nil {
					cols = append(cols, column{name, k})
				}
			}
		case e["acc"] != nil:
			cols = append(cols, column{name, "acc"}, column{name, "acc_norm"})
		case e["task"] == "perplexity" && !headline:
			headline = true
		case e["perplexity"] != nil:
			cols = append(cols, column{name, "perplexity"})
		}
	}
	return cols
}

// genColumns are the columns a generation evaluation shows, those it has
// (the answer metrics depend on its extraction).
var genColumns = []string{"exact_match_strict", "exact_match_flexible", "exact_match", "accuracy", "pass@1",
	"think_tokens_mean", "answer_tokens_mean"}

// evalNames are the run's evaluation names in the order written (a fresh
// result holds them as []string, one read from the cache as []any).
func evalNames(m ops.Metrics) []string {
	switch v := m["evals"].(type) {
	case []string:
		return v
	case []any:
		out := make([]string, 0, len(v))
		for _, s := range v {
			if s, ok := s.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func taskEntry(m ops.Metrics, name string) map[string]any {
	tasks, _ := m["tasks"].(map[string]any)
	e, _ := tasks[name].(map[string]any)
	return e
}
