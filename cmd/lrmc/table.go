package main

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

	"lrmc/executor/ops"
)

// printResults prints one row for the dense baseline and each run.
func printResults(w io.Writer, r ops.Results) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "run\tblocks kept\tremoved\tparams\tperplexity\tvs dense")
	dense, hasDense := r.Dense["perplexity"].(float64)
	row := func(name string, m ops.Metrics) {
		ppl, _ := m["perplexity"].(float64)
		rel := "-"
		if hasDense && name != "dense" && dense > 0 {
			rel = fmt.Sprintf("%+.1f%%", 100*(ppl/dense-1))
		}
		removed := "-"
		if v, ok := m["removed"]; ok {
			removed = fmt.Sprint(v)
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\t%v\t%.4f\t%s\n", name, m["blocks"], removed, m["params"], ppl, rel)
	}
	if r.Dense != nil {
		row("dense", r.Dense)
	}
	names := make([]string, 0, len(r.Runs))
	for n := range r.Runs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		row(n, r.Runs[n])
	}
	tw.Flush()
}
