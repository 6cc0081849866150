package planner

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode"

	"lrmc/compiler/ir"
	"lrmc/digest"
	"lrmc/internal/version"
)

// Provenance is a run's provenance.json: what made its artifacts, so that
// anyone holding them can tell which recipe, inputs and computations they
// came from (and reproduce them: the same keys mean the same work).
type Provenance struct {
	LRMC   string `json:"lrmc"`
	Recipe string `json:"recipe"`
	// RecipeDigest is the BLAKE3 of the recipe file's bytes; absent when
	// the file cannot be read (an IR built without one, by tests or tools:
	// the compiler has just read a real recipe).
	RecipeDigest string `json:"recipeDigest,omitempty"`
	Run          string `json:"run"`
	// Config is the run's effective configuration: the normalized IR the
	// compiler produced (every default filled in, paths absolute), with
	// the recipe's camelCase field names. ConfigDigest is the BLAKE3 of its
	// canonical JSON (keys sorted, no spaces), so two runs' settings can be
	// compared by one string even when their recipe files differ.
	Config       map[string]any    `json:"config"`
	ConfigDigest string            `json:"configDigest"`
	Model        string            `json:"model"` // key of the model the artifacts hold
	Inputs       []ProvenanceInput `json:"inputs"`
	Nodes        []ProvenanceNode  `json:"nodes"`
}

// ProvenanceInput is a file the run read, by content.
type ProvenanceInput struct {
	Path   string `json:"path"`
	Digest string `json:"blake3"`
}

// ProvenanceNode is one computation behind the artifacts.
type ProvenanceNode struct {
	Key     string `json:"key"`
	Op      string `json:"op"`
	Version int    `json:"version"`
	Label   string `json:"label"`
}

// provenance describes everything model depends on, in execution order,
// and the run's configuration.
func (p *planning) provenance(run string, model *Node) []byte {
	r := p.r
	pv := Provenance{LRMC: version.Version, Recipe: r.File, Run: run, Model: model.Key.String()}
	if sum, err := p.env.FileDigest(r.File); err == nil && r.File != "" {
		pv.RecipeDigest = sum.String()
	}
	for _, rr := range r.Runs {
		if rr.Name == run {
			pv.Config = EffectiveConfig(rr)
			break
		}
	}
	canon, _ := json.Marshal(pv.Config) // maps marshal with sorted keys
	pv.ConfigDigest = digest.Of(canon).String()

	seen := map[*Node]bool{}
	var order []*Node
	var visit func(n *Node)
	visit = func(n *Node) {
		if seen[n] {
			return
		}
		seen[n] = true
		for _, in := range n.Inputs {
			visit(in)
		}
		order = append(order, n)
	}
	visit(model)
	for _, n := range order {
		if n.IsSource() {
			var sp SourceParams
			json.Unmarshal(n.Params, &sp)
			pv.Inputs = append(pv.Inputs, ProvenanceInput{Path: n.Source, Digest: sp.Digest})
			continue
		}
		pv.Nodes = append(pv.Nodes, ProvenanceNode{Key: n.Key.String(), Op: n.Op, Version: n.Version, Label: n.Label})
	}
	sort.SliceStable(pv.Inputs, func(i, j int) bool { return pv.Inputs[i].Path < pv.Inputs[j].Path })
	b, _ := json.MarshalIndent(pv, "", "  ")
	return append(b, '\n')
}

// EffectiveConfig is a run's normalized IR as JSON values with the recipe's
// field names (SeqLen → seqLen, LR → lr, DType → dtype). The IR carries no
// JSON tags (it is no file format), so the names are derived here rather
// than kept twice.
func EffectiveConfig(run ir.Run) map[string]any {
	b, err := json.Marshal(run)
	if err != nil {
		// The IR holds only JSON-encodable values; this is a bug.
		panic(fmt.Sprintf("planner: encode run %s: %v", run.Name, err))
	}
	var v map[string]any
	json.Unmarshal(b, &v)
	return recase(v, false).(map[string]any)
}

// recase renames the keys of struct-derived objects to camelCase. Options
// hold a method's own fields by their recipe names, which stay as written.
func recase(v any, verbatim bool) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			name := k
			if !verbatim {
				name = camel(k)
			}
			out[name] = recase(x, name == "options")
		}
		return out
	case []any:
		for i, x := range v {
			v[i] = recase(x, false)
		}
	}
	return v
}

// camel lowers a Go field name's leading capitals: an initialism ends one
// letter before a lower-case letter (KVHeads → kvHeads, LR → lr).
func camel(k string) string {
	if k == "DType" {
		return "dtype" // the schema's spelling
	}
	r := []rune(k)
	n := 0
	for n < len(r) && unicode.IsUpper(r[n]) {
		n++
	}
	if n > 1 && n < len(r) {
		n-- // the last capital starts the next word
	}
	return strings.ToLower(string(r[:n])) + string(r[n:])
}

// RunConfig is what metrics.json says about how its run was made: the
// method and its parameters and the recovery's settings, so a results file
// read on its own says what it measured. (provenance.json has the whole
// configuration.)
type RunConfig struct {
	Paradigm string         `json:"paradigm"`
	Method   string         `json:"method,omitempty"`
	Remove   int            `json:"remove,omitempty"`
	Ratio    float64        `json:"ratio,omitempty"`
	Layers   []int          `json:"layers,omitempty"`
	Options  map[string]any `json:"options,omitempty"`
	// Recovery is absent when the run recovers nothing; it holds the
	// settings the recovery node is keyed by.
	Recovery *RecoverParams `json:"recovery,omitempty"`
}

// recoverParams are a recovery's settings as the recovery node is keyed
// by them (LoRA fields only for LoRA, the distillation fields only for kd).
func recoverParams(rc ir.Recovery) RecoverParams {
	p := RecoverParams{
		Method: rc.Method, Steps: rc.Steps, Batch: rc.Batch, SeqLen: rc.SeqLen, Accumulation: max(1, rc.Accumulation),
		LR: rc.LR, Warmup: rc.Warmup, Schedule: rc.Schedule, WeightDecay: rc.WeightDecay, MaxGradNorm: rc.MaxGradNorm,
		Loss: rc.Loss, Seed: rc.Seed, CheckpointEvery: rc.CheckpointEvery,
	}
	if rc.Method == "lora" {
		p.Rank, p.Alpha, p.Dropout, p.Targets = rc.Rank, rc.Alpha, rc.Dropout, slices.Clone(rc.Targets)
	}
	if rc.Loss == "kd" {
		p.Temperature, p.TopK = rc.Temperature, rc.TopK
	}
	return p
}

// runConfig summarizes run for its metrics.
func runConfig(run ir.Run) *RunConfig {
	pr := run.Prune
	c := &RunConfig{Paradigm: pr.Paradigm}
	if c.Paradigm == "" {
		c.Paradigm = "none"
	}
	if c.Paradigm != "none" {
		c.Method, c.Remove, c.Ratio, c.Layers = pr.Method, pr.Remove, pr.Ratio, pr.Layers
		if len(pr.Options) > 0 {
			c.Options = pr.Options
		}
	}
	if rc := run.Recovery; rc.Method != "" && rc.Method != "none" {
		p := recoverParams(rc)
		c.Recovery = &p
	}
	return c
}
