package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"lrmc/digest"
)

// An applied run's metrics.json says how the run was made, and its
// provenance.json names the recipe by digest and holds the effective
// configuration; both are the same on a cached rerun.
func TestMetricsAndProvenanceFilesCarryTheConfiguration(t *testing.T) {
	dir := t.TempDir()
	cacheDir := filepath.Join(dir, "cache")
	recipe := writeRecipe(t, dir, 1)
	src, err := os.ReadFile(recipe)
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string, v any) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, "out", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return b
	}
	var files [2][2][]byte
	for i := range 2 {
		if code, _, errs := lrmc(t, "--cache", cacheDir, "apply", "--progress=plain", recipe); code != 0 {
			t.Fatalf("apply %d: exit %d: %s", i, code, errs)
		}
		var m struct {
			Config json.RawMessage `json:"config"`
		}
		files[i][0] = read("shortgpt-1/metrics.json", &m)
		var got bytes.Buffer
		json.Compact(&got, m.Config)
		// The method's options with their defaults, as the compiler resolved them.
		if want := `{"method":"shortgpt","options":{"finalNorm":false},"paradigm":"depth","remove":1}`; got.String() != want {
			t.Errorf("metrics.json config %s, want %s", got.String(), want)
		}
		var pv struct {
			Recipe       string
			RecipeDigest string
			Run          string
			Config       struct {
				Name  string
				Prune struct {
					Paradigm, Method string
					Remove           int
				}
				Calibration struct {
					Samples, SeqLen int
					Seed            int64
					Data            struct{ Path, Format string }
				}
			}
		}
		files[i][1] = read("shortgpt-1/provenance.json", &pv)
		if pv.Recipe != recipe || pv.RecipeDigest != digest.Of(src).String() || pv.Run != "shortgpt-1" {
			t.Errorf("provenance names recipe %q digest %q run %q; want %q %s shortgpt-1", pv.Recipe, pv.RecipeDigest, pv.Run, recipe, digest.Of(src))
		}
		c := pv.Config
		if c.Name != "shortgpt-1" || c.Prune.Paradigm != "depth" || c.Prune.Method != "shortgpt" || c.Prune.Remove != 1 ||
			c.Calibration.Samples != 8 || c.Calibration.SeqLen != 64 || c.Calibration.Seed != 3 || c.Calibration.Data.Format != "text" ||
			filepath.Base(c.Calibration.Data.Path) != "tinystories_val.txt" {
			t.Errorf("provenance config %+v", c)
		}
	}
	if string(files[0][0]) != string(files[1][0]) || string(files[0][1]) != string(files[1][1]) {
		t.Error("a cached rerun wrote different metrics.json or provenance.json")
	}
	// results.json carries each run's metrics, configuration included.
	var res struct {
		Runs map[string]struct {
			Config map[string]any `json:"config"`
		} `json:"runs"`
	}
	read("results.json", &res)
	if got := res.Runs["shortgpt-1"].Config["remove"]; got != 1.0 {
		t.Errorf("results.json shortgpt-1 config.remove = %v", got)
	}
}
