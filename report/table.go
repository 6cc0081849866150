package report

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Structural columns describe the model, not its quality; they come first.
var structural = []string{"params", "blocks", "removed"}

// Row is one run as the report shows it.
type Row struct {
	Label  string // the run's name, prefixed by its recipe's when several are reported
	Recipe string
	Run    string
	Method string
	Dense  bool
	// Ratio is the fraction of the dense model's parameters removed (0 for
	// dense); HasRatio is false when the recipe has no dense baseline or
	// either parameter count is missing.
	Ratio    float64
	HasRatio bool
	// Values are the run's numeric scalar metrics by column name.
	Values  map[string]float64
	Removed string // the removed block indices, "1,3"
	Metrics map[string]any
}

// Table is the report's rows and metric columns.
type Table struct {
	Rows []Row
	// Metrics are the metric columns after the structural ones, sorted.
	Metrics []string
	// Dense reports whether every recipe had a dense baseline (the ratio).
	Dense bool
	// integral columns hold only whole numbers and are written as such;
	// the others have every value with the same decimals.
	integral map[string]bool
	// stderr maps a metric to its standard error's column ("piqa.acc" to
	// "piqa.acc_stderr"), written in the metric's cell as "v ± s"
	// rather than as a column of its own.
	stderr map[string]string
}

// Ratio is the pruning ratio of a model with params parameters against
// the dense model's denseParams: 1 − params/denseParams.
func Ratio(params, denseParams float64) float64 {
	return 1 - params/denseParams
}

// BuildTable lays out the sources' runs: per recipe, dense first, then its
// runs by name.
func BuildTable(srcs []Source) Table {
	t := Table{Dense: true}
	prefix := len(srcs) > 1
	cols := map[string]bool{}
	for _, s := range srcs {
		var denseParams float64
		hasDense := false
		if s.Dense != nil {
			denseParams, hasDense = s.Dense.Metrics["params"].(float64)
			hasDense = hasDense && denseParams > 0
		}
		if !hasDense {
			t.Dense = false
		}
		runs := s.Runs
		if s.Dense != nil {
			runs = append([]Run{*s.Dense}, runs...)
		}
		for _, r := range runs {
			row := Row{Label: r.Name, Recipe: r.Recipe, Run: r.Name, Method: r.Method, Dense: r.Dense,
				Values: scalars(r.Metrics), Removed: indices(r.Metrics["removed"]), Metrics: r.Metrics}
			if prefix {
				row.Label = r.Recipe + "/" + r.Name
			}
			if p, ok := row.Values["params"]; ok && hasDense {
				row.Ratio, row.HasRatio = Ratio(p, denseParams), true
			}
			for c := range row.Values {
				cols[c] = true
			}
			t.Rows = append(t.Rows, row)
		}
	}
	t.integral = map[string]bool{}
	for c := range cols {
		t.integral[c] = true
		for _, r := range t.Rows {
			if v, ok := r.Values[c]; ok && (v != math.Trunc(v) || math.Abs(v) >= 1e15) {
				t.integral[c] = false
			}
		}
	}
	for _, c := range structural {
		delete(cols, c)
	}
	t.stderr = map[string]string{}
	for c := range cols {
		if base, ok := strings.CutSuffix(c, "_stderr"); ok && cols[base] {
			t.stderr[base] = c
			continue
		}
		if t.duplicate(c) {
			continue
		}
		t.Metrics = append(t.Metrics, c)
	}
	sort.Strings(t.Metrics)
	return t
}

// Stderr is the standard error of column col in row r, if the row has one.
func (t Table) Stderr(r Row, col string) (float64, bool) {
	c, ok := t.stderr[col]
	if !ok {
		return 0, false
	}
	v, ok := r.Values[c]
	return v, ok
}

// duplicate reports whether column "EVAL.M" repeats the headline column
// "M" in every row that has it: metrics.json keeps the first perplexity
// evaluation's perplexity at the top and again under its evaluation's name.
func (t Table) duplicate(col string) bool {
	i := strings.LastIndexByte(col, '.')
	if i < 0 {
		return false
	}
	head := col[i+1:]
	seen := false
	for _, r := range t.Rows {
		v, ok := r.Values[col]
		if !ok {
			continue
		}
		h, ok := r.Values[head]
		if !ok || h != v {
			return false
		}
		seen = true
	}
	return seen
}

// scalars flattens a run's metrics into numeric columns: a top-level
// number is its own column, a nested object's numbers are "KEY.FIELD";
// evaluations (under "tasks", by name) become "NAME.METRIC" ("piqa.acc"),
// less the model's params and blocks they repeat. Lists (per-block
// scores, removal orders, loss curves) and strings are left out, and so
// is "config": the run's settings (ratio, learning rate) are no metrics.
func scalars(m map[string]any) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if k == "config" {
			continue
		}
		if k != "tasks" {
			flatten(out, k, v)
			continue
		}
		tasks, _ := v.(map[string]any)
		for name, e := range tasks {
			entry, _ := e.(map[string]any)
			for mk, mv := range entry {
				if mk == "params" || mk == "blocks" {
					continue
				}
				flatten(out, name+"."+mk, mv)
			}
		}
	}
	return out
}

func flatten(out map[string]float64, name string, v any) {
	switch v := v.(type) {
	case float64:
		out[name] = v
	case map[string]any:
		for k, x := range v {
			flatten(out, name+"."+k, x)
		}
	}
}

// indices formats a list of block indices ("1,3"), "" for anything else.
func indices(v any) string {
	l, ok := v.([]any)
	if !ok {
		return ""
	}
	parts := make([]string, 0, len(l))
	for _, x := range l {
		f, ok := x.(float64)
		if !ok {
			return ""
		}
		parts = append(parts, formatNumber(f, true))
	}
	return strings.Join(parts, ",")
}

// formatNumber writes a metric deterministically: a column of whole
// numbers (counts) in full, other values with four decimals (six
// significant digits outside [0.001, 1e6), where four decimals would hide
// or swamp them).
func formatNumber(v float64, integral bool) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return strconv.FormatFloat(v, 'g', -1, 64)
	case integral:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v == 0 || math.Abs(v) >= 1e-3 && math.Abs(v) < 1e6:
		return strconv.FormatFloat(v, 'f', 4, 64)
	default:
		return strconv.FormatFloat(v, 'g', 6, 64)
	}
}

// Cells are a row's texts, in the order of Header.
func (t Table) Cells(r Row) []string {
	cells := []string{r.Label, r.Method, "-"}
	if r.HasRatio {
		cells[2] = fmt.Sprintf("%.1f%%", 100*r.Ratio)
	}
	for _, c := range structural {
		switch {
		case c == "removed" && r.Removed != "":
			cells = append(cells, r.Removed)
		default:
			cells = append(cells, t.cell(r.Values, c))
		}
	}
	for _, c := range t.Metrics {
		text := t.cell(r.Values, c)
		if e, ok := t.Stderr(r, c); ok && text != "-" {
			text += " ± " + formatNumber(e, false)
		}
		cells = append(cells, text)
	}
	return cells
}

// Header names the table's columns.
func (t Table) Header() []string {
	h := []string{"run", "method", "ratio"}
	h = append(h, structural...)
	return append(h, t.Metrics...)
}

func (t Table) cell(values map[string]float64, col string) string {
	if v, ok := values[col]; ok {
		return formatNumber(v, t.integral[col])
	}
	return "-"
}
