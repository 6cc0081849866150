package planner

import (
	"fmt"
	"io"
	"strings"
)

// Summary counts statuses the way the plan's last line reports them.
type Summary struct {
	Cached, Run, Skip, Read int
}

// Summarize counts the statuses of g's nodes.
func (g *Graph) Summarize(st map[*Node]Status) Summary {
	var s Summary
	for _, n := range g.Nodes {
		switch st[n] {
		case Cached:
			s.Cached++
		case Run:
			s.Run++
		case Skip:
			s.Skip++
		case Read:
			s.Read++
		}
	}
	return s
}

func (s Summary) String() string {
	line := fmt.Sprintf("Plan: %d cached, %d to run", s.Cached, s.Run)
	if s.Skip > 0 {
		line += fmt.Sprintf(" (%d not needed)", s.Skip)
	}
	return line
}

var marks = map[Status]string{Run: "+", Cached: "=", Skip: " ", Read: "<"}

// RenderPlan writes one line per node, in execution order, with a mark
// (+ to run, = cached, < file read, blank not needed), the short key, the op,
// its label and the runs that use it; then the summary line.
func (g *Graph) RenderPlan(w io.Writer, st map[*Node]Status) {
	width := 0
	for _, n := range g.Nodes {
		width = max(width, len(n.Op))
	}
	for _, n := range g.Nodes {
		s := st[n]
		note := ""
		switch s {
		case Cached:
			note = " (cached)"
		case Skip:
			note = " (not needed)"
		}
		runs := ""
		if len(n.Runs) > 0 && n.Runs[0] != "" {
			runs = "  [" + strings.Join(n.Runs, " ") + "]"
		}
		fmt.Fprintf(w, "  %s %s  %-*s  %s%s%s\n", marks[s], n.Key.Short(), width, n.Op, n.Label, note, runs)
	}
	fmt.Fprintf(w, "\n%s\n", g.Summarize(st))
}

// RenderDOT writes the graph in Graphviz DOT, nodes coloured by status
// (nil statuses leave them plain).
func (g *Graph) RenderDOT(w io.Writer, st map[*Node]Status) {
	fill := map[Status]string{Run: "#fde2a7", Cached: "#c9e7c1", Skip: "#eeeeee", Read: "#d5e3f5"}
	fmt.Fprintln(w, "digraph lrmc {")
	fmt.Fprintln(w, "  rankdir=LR;")
	fmt.Fprintln(w, `  node [shape=box, style="rounded,filled", fontname="monospace", fillcolor="#ffffff"];`)
	for _, n := range g.Nodes {
		attrs := fmt.Sprintf("label=%q", n.Op+"\n"+n.Label+"\n"+n.Key.Short())
		if st != nil {
			attrs += fmt.Sprintf(", fillcolor=%q, tooltip=%q", fill[st[n]], st[n].String())
		}
		fmt.Fprintf(w, "  %q [%s];\n", n.Key.Short(), attrs)
	}
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			fmt.Fprintf(w, "  %q -> %q;\n", in.Key.Short(), n.Key.Short())
		}
	}
	fmt.Fprintln(w, "}")
}
