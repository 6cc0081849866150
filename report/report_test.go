package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"lrmc/compiler/ir"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// writeResults writes an applied recipe's output directory as apply does:
// results.json and every run's metrics.json.
func writeResults(t *testing.T, dir string, dense map[string]any, runs map[string]map[string]any) {
	t.Helper()
	write := func(path string, v any) {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res := map[string]any{"runs": runs}
	if dense != nil {
		res["dense"] = dense
		write(filepath.Join(dir, "dense", "metrics.json"), dense)
	}
	for name, m := range runs {
		write(filepath.Join(dir, name, "metrics.json"), m)
	}
	write(filepath.Join(dir, "results.json"), res)
}

// evals is a run's "tasks": a perplexity evaluation and PIQA, as named
// evaluations write them.
func evals(params, blocks, ppl, acc, accNorm float64) map[string]any {
	return map[string]any{
		"perplexity": map[string]any{"task": "perplexity", "perplexity": ppl, "meanNLL": math.Log(ppl), "tokens": 4096, "windows": 16, "params": params, "blocks": blocks},
		"piqa":       map[string]any{"task": "piqa", "acc": acc, "acc_norm": accNorm, "acc_stderr": 0.049, "items": 100, "params": params, "blocks": blocks},
	}
}

// handBuilt is a depth sweep with a recovery run: dense, ShortGPT removing
// one and two of four blocks, and LoRA after the second.
func handBuilt(t *testing.T, dir string) map[string]string {
	t.Helper()
	scores := []any{0.5, 0.125, 0.25, 0.375}
	dense := map[string]any{"params": 1000, "blocks": 4, "perplexity": 10.0, "evals": []any{"perplexity", "piqa"}, "tasks": evals(1000, 4, 10, 0.6, 0.625)}
	runs := map[string]map[string]any{
		"shortgpt-1": {"params": 800, "blocks": 3, "removed": []any{1}, "perplexity": 12.3456789, "blockScores": scores,
			"tasks": evals(800, 3, 12.3456789, 0.58, 0.6)},
		"shortgpt-2": {"params": 600, "blocks": 2, "removed": []any{1, 2}, "perplexity": 41.5, "blockScores": scores,
			"tasks": evals(600, 2, 41.5, 0.52, 0.51)},
		"shortgpt-2-lora": {"params": 600, "blocks": 2, "removed": []any{1, 2}, "perplexity": 15.25, "blockScores": scores,
			"recoveryLoss": map[string]any{"first": 3.5, "last": 2.25, "steps": 10},
			"tasks":        evals(600, 2, 15.25, 0.55, 0.56)},
	}
	writeResults(t, dir, dense, runs)
	return map[string]string{"shortgpt-1": "shortgpt", "shortgpt-2": "shortgpt", "shortgpt-2-lora": "shortgpt+lora"}
}

func buildHandBuilt(t *testing.T) *Report {
	t.Helper()
	dir := t.TempDir()
	src, err := LoadDir("depth", dir, handBuilt(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Build([]Source{src})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./report -update to accept):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestMarkdownGolden(t *testing.T) {
	golden(t, "depth.md", buildHandBuilt(t).Markdown())
}

func TestReportIsDeterministic(t *testing.T) {
	// Each build loads the files afresh: map order differs between them.
	for i := 0; i < 3; i++ {
		a, b := buildHandBuilt(t).Files(), buildHandBuilt(t).Files()
		for name := range a {
			if !bytes.Equal(a[name], b[name]) {
				t.Fatalf("%s differs between two builds of the same results", name)
			}
		}
	}
}

func TestHTMLIsSelfContained(t *testing.T) {
	r := buildHandBuilt(t)
	page := string(r.HTML())
	if n := strings.Count(page, "<svg"); n != len(r.Plots) || n < 4 {
		t.Fatalf("report.html has %d <svg elements for %d plots (want at least 4: perplexity, meanNLL, piqa, scores, loss)", n, len(r.Plots))
	}
	for _, ref := range []string{"src=", "href=", "url(", "@import", "<link", "<script"} {
		if strings.Contains(page, ref) {
			t.Errorf("report.html refers to something outside itself: %q", ref)
		}
	}
	// The only http:// strings are the SVG namespace names, which no
	// browser fetches.
	ns := regexp.MustCompile(`xmlns(:xlink)?="http://www\.w3\.org/(2000/svg|1999/xlink)"`)
	if rest := ns.ReplaceAllString(page, ""); strings.Contains(rest, "http://") || strings.Contains(rest, "https://") {
		t.Error("report.html holds a URL")
	}
	for i, svg := range regexp.MustCompile(`(?s)<svg.*?</svg>`).FindAllString(page, -1) {
		d := xml.NewDecoder(strings.NewReader(svg))
		for {
			_, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("plot %d is not XML: %v", i, err)
			}
		}
	}
	for _, title := range []string{"perplexity vs pruning ratio", "piqa.acc vs pruning ratio", "shortgpt block scores", "training loss of recovery"} {
		if !strings.Contains(page, title) {
			t.Errorf("report.html lacks the plot %q", title)
		}
	}
	for _, title := range []string{"perplexity.tokens vs", "piqa.acc_stderr vs", "params vs", "recoveryLoss.first vs"} {
		if strings.Contains(page, title) {
			t.Errorf("report.html plots %q (constant, a standard error, the shape, or the loss)", title)
		}
	}
}

func TestRatio(t *testing.T) {
	// stories260K: 260032 parameters dense, 169152 after ShortGPT-2.
	if got, want := Ratio(169152, 260032), 0.34949544; math.Abs(got-want) > 1e-8 {
		t.Errorf("Ratio = %.8f, want %.8f", got, want)
	}
	tab := buildHandBuilt(t).Table
	want := map[string]float64{"dense": 0, "shortgpt-1": 0.2, "shortgpt-2": 0.4, "shortgpt-2-lora": 0.4}
	for _, r := range tab.Rows {
		if !r.HasRatio || math.Abs(r.Ratio-want[r.Run]) > 1e-12 {
			t.Errorf("%s: ratio %v (%v), want %v", r.Run, r.Ratio, r.HasRatio, want[r.Run])
		}
	}
}

func TestRatioSeriesGroupsByMethod(t *testing.T) {
	tab := buildHandBuilt(t).Table
	series, refs := tab.RatioSeries("piqa.acc")
	want := []Series{
		{"shortgpt", []Point{{20, 0.58}, {40, 0.52}}, []float64{0.049, 0.049}},
		{"shortgpt+lora", []Point{{40, 0.55}}, []float64{0.049}},
	}
	if len(series) != len(want) {
		t.Fatalf("series %+v, want %+v", series, want)
	}
	for i := range want {
		if series[i].Label != want[i].Label || len(series[i].Points) != len(want[i].Points) || !slices.Equal(series[i].Errs, want[i].Errs) {
			t.Fatalf("series %d = %+v, want %+v", i, series[i], want[i])
		}
		for j, p := range want[i].Points {
			if got := series[i].Points[j]; math.Abs(got.X-p.X) > 1e-9 || got.Y != p.Y {
				t.Errorf("series %s point %d = %+v, want %+v", want[i].Label, j, got, p)
			}
		}
	}
	if len(refs) != 1 || refs[0] != (Reference{"dense", 0.6}) {
		t.Errorf("dense references %+v, want one at 0.6", refs)
	}
	for col, want := range map[string]bool{"perplexity": true, "piqa.acc": true, "piqa.items": false, "piqa.acc_stderr": false, "recoveryLoss.last": false, "params": false} {
		if got := tab.Plottable(col); got != want {
			t.Errorf("Plottable(%s) = %v, want %v", col, got, want)
		}
	}
}

func TestLossCurves(t *testing.T) {
	tab := buildHandBuilt(t).Table
	curves := tab.LossCurves()
	if len(curves) != 1 || curves[0].Label != "shortgpt-2-lora" || curves[0].Full ||
		len(curves[0].Points) != 2 || curves[0].Points[0] != (Point{1, 3.5}) || curves[0].Points[1] != (Point{10, 2.25}) {
		t.Errorf("loss curves from first/last: %+v", curves)
	}
	// With the per-step history, every step is a point.
	tab.Rows[3].Metrics["recoveryLoss"].(map[string]any)["losses"] = []any{3.5, 3.0, 2.25}
	curves = tab.LossCurves()
	if len(curves) != 1 || !curves[0].Full || len(curves[0].Points) != 3 || curves[0].Points[1] != (Point{2, 3.0}) {
		t.Errorf("loss curves from the history: %+v", curves)
	}
}

func TestSeveralRecipes(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeResults(t, a, map[string]any{"params": 1000, "blocks": 4, "perplexity": 10.0},
		map[string]map[string]any{"sleb-1": {"params": 750, "blocks": 3, "perplexity": 14.0, "removed": []any{2}}})
	writeResults(t, b, map[string]any{"params": 2000, "blocks": 8, "perplexity": 8.0},
		map[string]map[string]any{"sleb-4": {"params": 1000, "blocks": 4, "perplexity": 30.0, "removed": []any{1, 2, 3, 5}}})
	sa, err := LoadDir("small", a, map[string]string{"sleb-1": "sleb"})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := LoadDir("big", b, map[string]string{"sleb-4": "sleb"})
	if err != nil {
		t.Fatal(err)
	}
	tab := BuildTable([]Source{sa, sb})
	var labels []string
	for _, r := range tab.Rows {
		labels = append(labels, r.Label)
	}
	if got := strings.Join(labels, " "); got != "small/dense small/sleb-1 big/dense big/sleb-4" {
		t.Errorf("rows %s", got)
	}
	// Each run's ratio is against its own recipe's dense model.
	series, refs := tab.RatioSeries("perplexity")
	if len(series) != 1 || len(series[0].Points) != 2 || series[0].Points[0] != (Point{25, 14}) || series[0].Points[1] != (Point{50, 30}) {
		t.Errorf("series %+v", series)
	}
	if len(refs) != 2 || refs[0] != (Reference{"dense (small)", 10}) || refs[1] != (Reference{"dense (big)", 8}) {
		t.Errorf("references %+v", refs)
	}
}

func TestNotAppliedYet(t *testing.T) {
	dir := t.TempDir()
	_, err := LoadDir("depth", dir, nil)
	if err == nil || !strings.Contains(err.Error(), "recipe depth has not been applied yet") || !strings.Contains(err.Error(), filepath.Join(dir, "results.json")) {
		t.Errorf("error %v, want one naming results.json and saying the recipe was not applied", err)
	}
	handBuilt(t, dir)
	if err := os.Remove(filepath.Join(dir, "shortgpt-2", "metrics.json")); err != nil {
		t.Fatal(err)
	}
	_, err = LoadDir("depth", dir, nil)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "shortgpt-2", "metrics.json")) {
		t.Errorf("error %v, want one naming the missing metrics.json", err)
	}
}

func TestMethodOf(t *testing.T) {
	depth := ir.Prune{Paradigm: "depth", Method: "shortgpt", Remove: 2}
	for _, c := range []struct {
		run  ir.Run
		want string
	}{
		{ir.Run{Prune: depth}, "shortgpt"},
		{ir.Run{Prune: depth, Recovery: ir.Recovery{Method: "none"}}, "shortgpt"},
		{ir.Run{Prune: depth, Recovery: ir.Recovery{Method: "lora", Loss: "lm"}}, "shortgpt+lora"},
		{ir.Run{Prune: depth, Recovery: ir.Recovery{Method: "lora", Loss: "kd"}}, "shortgpt+lora-kd"},
		{ir.Run{Prune: ir.Prune{Paradigm: "none"}, Recovery: ir.Recovery{Method: "full", Loss: "lm"}}, "none+full"},
	} {
		if got := MethodOf(c.run); got != c.want {
			t.Errorf("MethodOf(%+v) = %q, want %q", c.run, got, c.want)
		}
	}
}

func TestFormatNumber(t *testing.T) {
	for v, want := range map[float64]string{6.047712: "6.0477", 10: "10.0000", 0.5: "0.5000", 1e-5: "1e-05", 0: "0.0000", 12345678.9: "1.23457e+07"} {
		if got := formatNumber(v, false); got != want {
			t.Errorf("formatNumber(%v) = %q, want %q", v, got, want)
		}
	}
	for v, want := range map[float64]string{260032: "260032", 0: "0", 1e14: "100000000000000"} {
		if got := formatNumber(v, true); got != want {
			t.Errorf("formatNumber(%v) = %q, want %q", v, got, want)
		}
	}
}
