package planner_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"lrmc/compiler/ir"
	"lrmc/digest"
	. "lrmc/planner"
)

// provenanceOf returns the provenance.json planned for run.
func provenanceOf(t *testing.T, g *Graph, run string) (Provenance, map[string]any) {
	t.Helper()
	for _, o := range g.Outputs {
		if o.Path == run+"/provenance.json" {
			var pv Provenance
			var raw map[string]any
			if err := json.Unmarshal(o.Data, &pv); err != nil {
				t.Fatal(err)
			}
			json.Unmarshal(o.Data, &raw)
			return pv, raw
		}
	}
	t.Fatalf("no provenance for %s", run)
	return Provenance{}, nil
}

func metricsParams(t *testing.T, g *Graph, run string) map[string]any {
	t.Helper()
	for _, n := range g.Nodes {
		if n.Op == OpMetrics && len(n.Runs) == 1 && n.Runs[0] == run {
			var p map[string]any
			if err := json.Unmarshal(n.Params, &p); err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
	t.Fatalf("no metrics node for %s", run)
	return nil
}

// A run's metrics carry its method, ratio and recovery settings, and its
// provenance the recipe file's digest and the run's whole normalized IR.
func TestMetricsAndProvenanceCarryTheRunsConfiguration(t *testing.T) {
	e := env()
	e.files["r.cue"] = "the recipe's bytes"
	lora := shortgpt("lora", 0)
	lora.Prune.Ratio = 0.25
	lora.Prune.Options = ir.Options{"finalNorm": true}
	lora.Recovery = ir.Recovery{Method: "lora", Data: ir.Data{Path: "/d/text.txt", Format: "text", Split: ir.Split{From: 0, To: 0.9}},
		Steps: 10, Batch: 2, SeqLen: 64, Accumulation: 1, LR: 2e-4, Warmup: 0.1, Schedule: "cosine", MaxGradNorm: 1,
		Rank: 8, Alpha: 16, Targets: []string{"q", "v"}, Loss: "lm", Temperature: 2, Seed: 7}
	g, err := Plan(recipe(shortgpt("plain", 2), lora), e)
	if err != nil {
		t.Fatal(err)
	}

	for run, want := range map[string]string{
		"dense": `{"paradigm":"none"}`,
		"plain": `{"paradigm":"depth","method":"shortgpt","remove":2}`,
		// kd-only fields (temperature) are left out of an lm recovery.
		"lora": `{"paradigm":"depth","method":"shortgpt","ratio":0.25,"options":{"finalNorm":true},` +
			`"recovery":{"method":"lora","loss":"lm","steps":10,"batch":2,"seqLen":64,"accumulation":1,"lr":0.0002,"warmup":0.1,` +
			`"schedule":"cosine","weightDecay":0,"maxGradNorm":1,"seed":7,"checkpointEvery":0,"rank":8,"alpha":16,"targets":["q","v"]}}`,
	} {
		got, _ := json.Marshal(metricsParams(t, g, run)["config"])
		var w any
		json.Unmarshal([]byte(want), &w)
		wb, _ := json.Marshal(w)
		if string(got) != string(wb) {
			t.Errorf("%s: metrics config\n got %s\nwant %s", run, got, wb)
		}
	}

	pv, raw := provenanceOf(t, g, "lora")
	if want := digest.Of([]byte("the recipe's bytes")).String(); pv.RecipeDigest != want {
		t.Errorf("recipeDigest %q, want %q", pv.RecipeDigest, want)
	}
	canon, _ := json.Marshal(raw["config"])
	if pv.ConfigDigest != digest.Of(canon).String() {
		t.Errorf("configDigest %s is not the BLAKE3 of the config's canonical JSON %s", pv.ConfigDigest, canon)
	}
	cfg := raw["config"].(map[string]any)
	for path, want := range map[string]any{
		"name":                      "lora",
		"model.path":                "/m/model.bin",
		"model.dtype":               "",
		"calibration.seqLen":        128.0,
		"calibration.data.split.to": 0.9,
		"prune.ratio":               0.25,
		"prune.options.finalNorm":   true,
		"recovery.lr":               2e-4,
		"recovery.maxGradNorm":      1.0,
		"recovery.checkpointEvery":  0.0,
		"recovery.targets":          []any{"q", "v"},
		"eval.0.task":               "perplexity",
		"eval.0.seqLen":             128.0,
	} {
		if got := lookup(cfg, path); !reflect.DeepEqual(got, want) {
			t.Errorf("config.%s = %#v, want %#v", path, got, want)
		}
	}
	// Another run's configuration differs, and so does its digest.
	plain, _ := provenanceOf(t, g, "plain")
	if plain.ConfigDigest == pv.ConfigDigest || plain.Config["name"] != "plain" {
		t.Errorf("plain's config %v (digest %s) vs lora's %s", plain.Config["name"], plain.ConfigDigest, pv.ConfigDigest)
	}

	// Without a readable recipe file (an IR built by hand) the digest is
	// left out rather than made up.
	g, err = Plan(recipe(shortgpt("plain", 2)), env())
	if err != nil {
		t.Fatal(err)
	}
	if _, raw := provenanceOf(t, g, "plain"); raw["recipeDigest"] != nil {
		t.Errorf("recipeDigest %v for a recipe file that cannot be read", raw["recipeDigest"])
	}
}

// lookup follows a dotted path through maps and lists.
func lookup(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			i := int(k[0] - '0')
			if i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}
