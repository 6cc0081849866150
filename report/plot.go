package report

import (
	"bytes"
	"fmt"
	"image/color"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Plot is one figure of the report.
type Plot struct {
	Title   string
	Caption string
	SVG     []byte // a standalone SVG document
}

// Point is one point of a series.
type Point struct{ X, Y float64 }

// Series is one line of a plot: a method's runs. Errs, when the metric
// has standard errors, holds each point's (0 where a run has none).
type Series struct {
	Label  string
	Points []Point
	Errs   []float64
}

// Reference is a horizontal line: the dense model's value.
type Reference struct {
	Label string
	Y     float64
}

// Plottable reports whether column col is drawn against the pruning
// ratio: any metric (not the model's shape, a standard error or the
// training loss, which has its own plot) that a pruned run has and that
// differs between runs. A column that never changes would draw a flat
// line and say nothing (token and item counts).
func (t Table) Plottable(col string) bool {
	if slices.Contains(structural, col) || strings.HasSuffix(col, "_stderr") || strings.HasPrefix(col, "recoveryLoss.") {
		return false
	}
	pruned := false
	distinct := map[float64]bool{}
	for _, r := range t.Rows {
		v, ok := r.Values[col]
		if !ok || !r.HasRatio {
			continue
		}
		distinct[v] = true
		pruned = pruned || !r.Dense
	}
	return pruned && len(distinct) > 1
}

// RatioSeries are the points of col against the pruning ratio in percent,
// one series per method (sorted by label, points by ratio then run), and
// the dense values as reference lines (one per distinct value; labelled
// with the recipe when the recipes' dense values differ).
func (t Table) RatioSeries(col string) ([]Series, []Reference) {
	type point struct {
		Point
		err float64
	}
	byMethod := map[string][]point{}
	_, hasErr := t.stderr[col]
	type ref struct {
		recipe string
		y      float64
	}
	var dense []ref
	for _, r := range t.Rows {
		v, ok := r.Values[col]
		if !ok || !r.HasRatio {
			continue
		}
		if r.Dense {
			if !slices.ContainsFunc(dense, func(d ref) bool { return d.y == v }) {
				dense = append(dense, ref{r.Recipe, v})
			}
			continue
		}
		e, _ := t.Stderr(r, col)
		byMethod[r.Method] = append(byMethod[r.Method], point{Point{100 * r.Ratio, v}, e})
	}
	var series []Series
	for label, pts := range byMethod {
		// Rows come in a fixed order, so a stable sort keeps ties (two runs
		// of one method at one ratio) in it.
		sort.SliceStable(pts, func(i, j int) bool { return pts[i].X < pts[j].X })
		s := Series{Label: label}
		for _, pt := range pts {
			s.Points = append(s.Points, pt.Point)
			if hasErr {
				s.Errs = append(s.Errs, pt.err)
			}
		}
		series = append(series, s)
	}
	sort.Slice(series, func(i, j int) bool { return series[i].Label < series[j].Label })
	var refs []Reference
	for _, d := range dense {
		label := "dense"
		if len(dense) > 1 {
			label = "dense (" + d.recipe + ")"
		}
		refs = append(refs, Reference{label, d.y})
	}
	return series, refs
}

// LossCurve is a recovery run's training loss by step (1-based). Full is
// false when its metrics hold only the first and last step's loss.
type LossCurve struct {
	Label  string
	Points []Point
	Full   bool
}

// LossCurves are the training losses of the recovery runs, in row order:
// the whole curve when the metrics carry recoveryLoss.losses, else the
// first and last step (recoveryLoss.first, .last, .steps).
func (t Table) LossCurves() []LossCurve {
	var curves []LossCurve
	for _, r := range t.Rows {
		rl, ok := r.Metrics["recoveryLoss"].(map[string]any)
		if !ok {
			continue
		}
		c := LossCurve{Label: r.Label}
		if l, ok := rl["losses"].([]any); ok && len(l) > 0 {
			c.Full = true
			for i, x := range l {
				if y, ok := x.(float64); ok {
					c.Points = append(c.Points, Point{float64(i + 1), y})
				}
			}
		} else {
			first, ok1 := rl["first"].(float64)
			last, ok2 := rl["last"].(float64)
			steps, ok3 := rl["steps"].(float64)
			if !ok1 || !ok2 || !ok3 {
				continue
			}
			c.Points = []Point{{1, first}}
			if steps > 1 {
				c.Points = append(c.Points, Point{steps, last})
			}
		}
		curves = append(curves, c)
	}
	return curves
}

// BlockScores are the per-block scores a method ranked blocks by, once
// per recipe and prune method (the runs of one method share them), in
// row order.
type BlockScores struct {
	Recipe, Method, Run string
	Scores              []float64
}

func (t Table) BlockScores() []BlockScores {
	var out []BlockScores
	seen := map[string]bool{}
	for _, r := range t.Rows {
		l, ok := r.Metrics["blockScores"].([]any)
		if !ok || len(l) == 0 {
			continue
		}
		method, _, _ := strings.Cut(r.Method, "+")
		if seen[r.Recipe+"\x00"+method] {
			continue
		}
		seen[r.Recipe+"\x00"+method] = true
		b := BlockScores{Recipe: r.Recipe, Method: method, Run: r.Run}
		for _, x := range l {
			f, _ := x.(float64)
			b.Scores = append(b.Scores, f)
		}
		out = append(out, b)
	}
	return out
}

// Plots draws every figure the table supports: each plottable metric
// against the pruning ratio, the block scores of each method, and the
// training loss of recovery runs.
func (t Table) Plots() ([]Plot, error) {
	var plots []Plot
	for _, col := range t.Metrics {
		if !t.Plottable(col) {
			continue
		}
		series, refs := t.RatioSeries(col)
		p, err := ratioPlot(col, series, refs)
		if err != nil {
			return nil, fmt.Errorf("plot %s: %w", col, err)
		}
		plots = append(plots, p)
	}
	multi := false
	for _, r := range t.Rows {
		multi = multi || r.Recipe != t.Rows[0].Recipe
	}
	for _, b := range t.BlockScores() {
		p, err := scoresPlot(b, multi)
		if err != nil {
			return nil, fmt.Errorf("plot %s block scores: %w", b.Method, err)
		}
		plots = append(plots, p)
	}
	if curves := t.LossCurves(); len(curves) > 0 {
		p, err := lossPlot(curves)
		if err != nil {
			return nil, fmt.Errorf("plot training loss: %w", err)
		}
		plots = append(plots, p)
	}
	return plots, nil
}

func ratioPlot(col string, series []Series, refs []Reference) (Plot, error) {
	p := newPlot(col+" vs pruning ratio", "pruning ratio (% of parameters removed)", col)
	xmax := 0.0
	for i, s := range series {
		for _, pt := range s.Points {
			xmax = max(xmax, pt.X)
		}
		if err := addLine(p, s.Label, s.Points, i, true); err != nil {
			return Plot{}, err
		}
		if s.Errs != nil {
			if err := addErrorBars(p, s, i); err != nil {
				return Plot{}, err
			}
		}
	}
	for i, r := range refs {
		l, err := plotter.NewLine(plotter.XYs{{X: 0, Y: r.Y}, {X: xmax, Y: r.Y}})
		if err != nil {
			return Plot{}, err
		}
		l.Color = color.Gray{Y: uint8(64 * i)}
		l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		p.Add(l)
		p.Legend.Add(r.Label, l)
	}
	// Most metrics move away from dense as the ratio grows, so the top
	// left corner is where the lines are least likely to be.
	p.Legend.Left = true
	pad(p)
	caption := fmt.Sprintf("%s of each run against the fraction of the dense model's parameters it removed; one line per method, the dense model dashed.", col)
	for _, s := range series {
		if s.Errs != nil {
			caption += " Bars: ± one standard error."
			break
		}
	}
	return finish(p, caption)
}

func scoresPlot(b BlockScores, multi bool) (Plot, error) {
	title := b.Method + " block scores"
	if multi {
		title += " (" + b.Recipe + ")"
	}
	p := newPlot(title, "block", "score")
	bars, err := plotter.NewBarChart(plotter.Values(b.Scores), vg.Points(24))
	if err != nil {
		return Plot{}, err
	}
	bars.Color = plotutil.Color(0)
	bars.LineStyle.Width = 0
	p.Add(bars)
	names := make([]string, len(b.Scores))
	for i := range names {
		names[i] = strconv.Itoa(i)
	}
	p.NominalX(names...)
	// Whole bars at both ends.
	p.X.Min, p.X.Max = -0.5, float64(len(b.Scores))-0.5
	return finish(p, fmt.Sprintf("The per-block scores %s ranked the blocks by (from run %s); the lowest are removed first.", b.Method, b.Run))
}

func lossPlot(curves []LossCurve) (Plot, error) {
	p := newPlot("training loss of recovery", "step", "loss")
	partial := false
	for i, c := range curves {
		// Two points are not a curve: without the history, no line
		// pretends to know the path between them.
		if err := addLine(p, c.Label, c.Points, i, c.Full); err != nil {
			return Plot{}, err
		}
		partial = partial || !c.Full
	}
	pad(p)
	caption := "Training loss by optimizer step of each recovery run."
	if partial {
		caption += " metrics.json holds only the first and last step's loss (recoveryLoss.first and .last), so only those two points are drawn; the per-step curve is drawn when the metrics carry recoveryLoss.losses."
	}
	return finish(p, caption)
}

// errPoints are a series' points with symmetric errors.
type errPoints struct {
	xys  plotter.XYs
	errs []float64
}

func (e errPoints) Len() int                        { return len(e.xys) }
func (e errPoints) XY(i int) (float64, float64)     { return e.xys[i].X, e.xys[i].Y }
func (e errPoints) YError(i int) (float64, float64) { return e.errs[i], e.errs[i] }

// addErrorBars draws ± one standard error at each point of s.
func addErrorBars(p *plot.Plot, s Series, i int) error {
	e := errPoints{xys: make(plotter.XYs, len(s.Points)), errs: s.Errs}
	for j, pt := range s.Points {
		e.xys[j].X, e.xys[j].Y = pt.X, pt.Y
	}
	bars, err := plotter.NewYErrorBars(e)
	if err != nil {
		return err
	}
	bars.Color = plotutil.Color(i)
	p.Add(bars)
	return nil
}

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	p.Title.Padding = vg.Points(6)
	p.Add(plotter.NewGrid())
	return p
}

// pad widens both axes by 5% of their span, so no point sits on a
// border, but not below zero when the data are not (ratios, losses,
// perplexities: a negative tick would only puzzle).
func pad(p *plot.Plot) {
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		d := 0.05 * (a.Max - a.Min)
		if d == 0 {
			d = 0.5
		}
		lo := a.Min - d
		if a.Min >= 0 && lo < 0 {
			lo = 0
		}
		a.Min, a.Max = lo, a.Max+d
	}
}

// addLine draws a series as its points, joined by a line when line is
// set, in the i-th of plotutil's colours and shapes.
func addLine(p *plot.Plot, label string, pts []Point, i int, line bool) error {
	xys := make(plotter.XYs, len(pts))
	for j, pt := range pts {
		xys[j].X, xys[j].Y = pt.X, pt.Y
	}
	l, s, err := plotter.NewLinePoints(xys)
	if err != nil {
		return err
	}
	l.Color = plotutil.Color(i)
	s.Color = plotutil.Color(i)
	s.Shape = plotutil.Shape(i)
	if !line {
		p.Add(s)
		p.Legend.Add(label, s)
		return nil
	}
	p.Add(l, s)
	p.Legend.Add(label, l, s)
	return nil
}

// finish renders the plot to SVG. Fonts are named, not embedded: the
// document stays small and a browser substitutes a sans-serif font.
func finish(p *plot.Plot, caption string) (Plot, error) {
	c := vgsvg.New(6*vg.Inch, 4*vg.Inch)
	p.Draw(draw.New(c))
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return Plot{}, err
	}
	return Plot{Title: p.Title.Text, Caption: caption, SVG: b.Bytes()}, nil
}
