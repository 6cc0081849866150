package planner

import (
	"fmt"
	"io"
)

// Summary counts statuses; its String is the plan's last line.
type Summary struct {
	Cached, Run, Skip, Read int
}

func (s Summary) String() string {
	line := fmt.Sprintf("Plan: %d cached, %d to run", s.Cached, s.Run)
	if s.Skip > 0 {
		line += fmt.Sprintf(" (%d not needed)", s.Skip)
	}
	return line
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
