// Package report turns applied recipes' results into documents: report.md
// (the results table) and a self-contained report.html (the table and SVG
// plots drawn with gonum/plot). It reads only what apply wrote —
// results.json and each run's metrics.json — and the compiled recipe, so
// it needs neither the cache nor the kernels.
package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"lrmc/compiler/ir"
	"lrmc/planner"
)

// Run is one row of a report: a run's metrics and where it belongs.
type Run struct {
	Recipe string // the recipe's name (its file name without .cue)
	Name   string // the run's name; planner.DenseRun for the baseline
	// Method labels the run's series in plots: the prune method, with the
	// recovery after a "+" ("shortgpt", "shortgpt+lora", "shortgpt+lora-kd").
	Method  string
	Dense   bool
	Metrics map[string]any // metrics.json as read
}

// Source is one applied recipe: its dense baseline (nil when the recipe
// has none) and its runs, sorted by name.
type Source struct {
	Recipe string
	Dense  *Run
	Runs   []Run
}

// RecipeName is how a recipe is named in reports: its file name without
// the .cue extension.
func RecipeName(r *ir.Recipe) string {
	return strings.TrimSuffix(filepath.Base(r.File), ".cue")
}

// MethodOf is a run's series label from its IR: the prune method ("none"
// when it prunes nothing), then "+" and the recovery method, with "-kd"
// for distillation, so a recovered run is its own series beside the run
// it recovers.
func MethodOf(r ir.Run) string {
	m := r.Prune.Method
	if m == "" || r.Prune.Paradigm == "none" || r.Prune.Paradigm == "" {
		m = "none"
	}
	if rec := r.Recovery.Method; rec != "" && rec != "none" {
		m += "+" + rec
		if r.Recovery.Loss == "kd" {
			m += "-kd"
		}
	}
	return m
}

// Load reads the results of an applied recipe from its output directory.
func Load(r *ir.Recipe) (Source, error) {
	methods := make(map[string]string, len(r.Runs))
	for _, run := range r.Runs {
		methods[run.Name] = MethodOf(run)
	}
	return LoadDir(RecipeName(r), r.Output.Dir, methods)
}

// LoadDir reads results.json under dir and every run's metrics.json.
// methods gives each run's series label where its metrics carry no
// "method" string.
func LoadDir(recipe, dir string, methods map[string]string) (Source, error) {
	path := filepath.Join(dir, "results.json")
	var res struct {
		Dense map[string]any            `json:"dense"`
		Runs  map[string]map[string]any `json:"runs"`
	}
	if err := readJSON(path, &res); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Source{}, fmt.Errorf("recipe %s has not been applied yet (no %s): run lrmc apply first", recipe, path)
		}
		return Source{}, err
	}
	src := Source{Recipe: recipe}
	// A run's own metrics.json is what its directory says about it; read
	// it rather than trust results.json's copy, so a report never shows a
	// run directory that is gone.
	load := func(name string) (Run, error) {
		run := Run{Recipe: recipe, Name: name, Dense: name == planner.DenseRun}
		p := filepath.Join(dir, name, "metrics.json")
		if err := readJSON(p, &run.Metrics); err != nil {
			return run, fmt.Errorf("run %s of recipe %s: %w", name, recipe, err)
		}
		switch m, ok := run.Metrics["method"].(string); {
		case ok && m != "":
			run.Method = m
		case run.Dense:
			run.Method = planner.DenseRun
		default:
			run.Method = methods[name]
		}
		if run.Method == "" {
			run.Method = "unknown"
		}
		return run, nil
	}
	if res.Dense != nil {
		d, err := load(planner.DenseRun)
		if err != nil {
			return Source{}, err
		}
		src.Dense = &d
	}
	names := make([]string, 0, len(res.Runs))
	for n := range res.Runs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r, err := load(n)
		if err != nil {
			return Source{}, err
		}
		src.Runs = append(src.Runs, r)
	}
	return src, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
