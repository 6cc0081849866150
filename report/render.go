package report

import (
	"bytes"
	"fmt"
	"html"
	"strings"
)

// Files of a report, written into its directory.
const (
	MarkdownFile = "report.md"
	HTMLFile     = "report.html"
)

// Report is the table and plots of one or more applied recipes.
type Report struct {
	Recipes []string
	Table   Table
	Plots   []Plot
}

// Build lays out the sources and draws the plots.
func Build(srcs []Source) (*Report, error) {
	r := &Report{Table: BuildTable(srcs)}
	for _, s := range srcs {
		r.Recipes = append(r.Recipes, s.Recipe)
	}
	plots, err := r.Table.Plots()
	if err != nil {
		return nil, err
	}
	r.Plots = plots
	return r, nil
}

// Files renders report.md and report.html, by file name. The same results
// give the same bytes: nothing depends on time, paths or map order.
func (r *Report) Files() map[string][]byte {
	return map[string][]byte{MarkdownFile: r.Markdown(), HTMLFile: r.HTML()}
}

// legend explains the table's derived texts.
func (r *Report) legend() string {
	s := "ratio = 1 − params / dense params."
	if len(r.Table.stderr) > 0 {
		s += " v ± s: the metric and its standard error."
	}
	return s
}

// notes are what a reader should know about what is not shown.
func (r *Report) notes() []string {
	var n []string
	if !r.Table.Dense {
		n = append(n, "A recipe has no dense baseline (dense: false), so its runs have no pruning ratio and are not plotted against it.")
	}
	for _, c := range r.Table.LossCurves() {
		if !c.Full {
			n = append(n, "Recovery loss: metrics.json holds only the first and last step's training loss, so the loss plot shows those two points, not the curve between them.")
			break
		}
	}
	return n
}

// Markdown is report.md: the results table, the plots' titles (the plots
// themselves are in report.html) and notes.
func (r *Report) Markdown() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# lrmc report: %s\n\n", strings.Join(r.Recipes, ", "))
	b.WriteString("## Results\n\n")
	header := r.Table.Header()
	b.WriteString("| " + strings.Join(mdEscape(header), " | ") + " |\n")
	b.WriteString("|")
	for i := range header {
		if i < 2 {
			b.WriteString("---|")
		} else {
			b.WriteString("---:|")
		}
	}
	b.WriteString("\n")
	for _, row := range r.Table.Rows {
		b.WriteString("| " + strings.Join(mdEscape(r.Table.Cells(row)), " | ") + " |\n")
	}
	b.WriteString("\n" + r.legend() + "\n")
	if rs := r.Table.Reasoning(); len(rs) > 0 {
		b.WriteString("\n## Reasoning length\n\n")
		b.WriteString("| " + strings.Join(mdEscape(reasoningHeader), " | ") + " |\n|---|---|")
		for range reasoningHeader[2:] {
			b.WriteString("---:|")
		}
		b.WriteString("\n")
		for _, x := range rs {
			b.WriteString("| " + strings.Join(mdEscape(r.Table.reasoningCells(x)), " | ") + " |\n")
		}
		b.WriteString("\n" + reasoningLegend + "\n")
	}
	if len(r.Plots) > 0 {
		fmt.Fprintf(&b, "\n## Plots\n\nIn %s:\n\n", HTMLFile)
		for _, p := range r.Plots {
			fmt.Fprintf(&b, "- %s\n", p.Title)
		}
	}
	if n := r.notes(); len(n) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, s := range n {
			fmt.Fprintf(&b, "- %s\n", s)
		}
	}
	return b.Bytes()
}

func mdEscape(cells []string) []string {
	out := make([]string, len(cells))
	for i, c := range cells {
		out[i] = strings.ReplaceAll(c, "|", `\|`)
	}
	return out
}

const style = `body{font-family:sans-serif;margin:2em;max-width:75em}
table{border-collapse:collapse;font-size:90%}
th,td{border:1px solid #bbb;padding:.2em .6em}
td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{display:inline-block;margin:1em}
figcaption{max-width:36em;font-size:90%;color:#444}`

// HTML is report.html: one self-contained page, the table and every plot
// inlined as SVG (nothing is fetched).
func (r *Report) HTML() []byte {
	var b bytes.Buffer
	title := "lrmc report: " + strings.Join(r.Recipes, ", ")
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>%s</title>\n<style>\n%s\n</style>\n</head>\n<body>\n", html.EscapeString(title), style)
	fmt.Fprintf(&b, "<h1>%s</h1>\n<h2>Results</h2>\n<table>\n<thead><tr>", html.EscapeString(title))
	for _, h := range r.Table.Header() {
		fmt.Fprintf(&b, "<th>%s</th>", html.EscapeString(h))
	}
	b.WriteString("</tr></thead>\n<tbody>\n")
	for _, row := range r.Table.Rows {
		b.WriteString("<tr>")
		for i, c := range r.Table.Cells(row) {
			if i < 2 {
				fmt.Fprintf(&b, "<td>%s</td>", html.EscapeString(c))
			} else {
				fmt.Fprintf(&b, "<td class=\"n\">%s</td>", html.EscapeString(c))
			}
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</tbody>\n</table>\n<p>" + html.EscapeString(r.legend()) + "</p>\n")
	if rs := r.Table.Reasoning(); len(rs) > 0 {
		b.WriteString("<h2>Reasoning length</h2>\n<table>\n<thead><tr>")
		for _, h := range reasoningHeader {
			fmt.Fprintf(&b, "<th>%s</th>", html.EscapeString(h))
		}
		b.WriteString("</tr></thead>\n<tbody>\n")
		for _, x := range rs {
			b.WriteString("<tr>")
			for i, c := range r.Table.reasoningCells(x) {
				if i < 2 {
					fmt.Fprintf(&b, "<td>%s</td>", html.EscapeString(c))
				} else {
					fmt.Fprintf(&b, "<td class=\"n\">%s</td>", html.EscapeString(c))
				}
			}
			b.WriteString("</tr>\n")
		}
		b.WriteString("</tbody>\n</table>\n<p>" + html.EscapeString(reasoningLegend) + "</p>\n")
	}
	if len(r.Plots) > 0 {
		b.WriteString("<h2>Plots</h2>\n")
		for _, p := range r.Plots {
			fmt.Fprintf(&b, "<figure>\n%s<figcaption>%s</figcaption>\n</figure>\n", inlineSVG(p.SVG), html.EscapeString(p.Caption))
		}
	}
	if n := r.notes(); len(n) > 0 {
		b.WriteString("<h2>Notes</h2>\n<ul>\n")
		for _, s := range n {
			fmt.Fprintf(&b, "<li>%s</li>\n", html.EscapeString(s))
		}
		b.WriteString("</ul>\n")
	}
	b.WriteString("</body>\n</html>\n")
	return b.Bytes()
}

// inlineSVG is an SVG document as an element of an HTML page: from its
// <svg> tag on, without the XML declaration and comment before it.
func inlineSVG(doc []byte) []byte {
	if i := bytes.Index(doc, []byte("<svg")); i >= 0 {
		return doc[i:]
	}
	return doc
}
