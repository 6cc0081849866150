package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/dustin/go-humanize"

	"lrmc/executor"
	"lrmc/methods/stats/capture"
	"lrmc/planner"
)

// planSchema names the layout of `lrmc plan --json`; it changes only with
// a new name. The layout (every field always present unless marked):
//
//	schema   "lrmc.plan/v1"
//	recipe   the recipe path as given;  outDir  the absolute output directory
//	summary  {cached, run, read, skip}: node counts by status
//	cache    {hits, lookups}: needed results found in the cache, of those
//	         the cache could hold (ephemeral ops are never looked up)
//	work     {tokenBlocks, dataDependent, cacheBytes, sourceBytes}:
//	         tokens × blocks the nodes to run push through the model (an
//	         estimate: forward passes; training counts 3 per token), how
//	         many nodes to run depend on the data's size instead
//	         (multiple-choice scoring, generation), the bytes of cached
//	         results and of source files that will be read
//	groups   [{runs, summary, work, nodes}]: nodes grouped by the runs
//	         that use them, in graph order of each group's first node;
//	         runs is ["dense"], ["a"], ["a","b"] (shared) or [""] (the
//	         recipe-wide results)
//	  nodes  [{key, op, version, label, status, reason?, tokenBlocks?,
//	         dataDependent?, bytes?}]: status is run, cached, read or
//	         skip; reason (run nodes, and read sources whose file changed)
//	         is {kind, detail?} with kind one of new-run, new,
//	         version-bumped, params-changed, input-changed, not-cached,
//	         never-cached, file-changed; bytes is a cached result's size
//	         or a source's file size
//	stale    [{run, path, action, reason?}]: output directories of runs
//	         no longer in the recipe; action "remove" (apply removes it)
//	         or "keep" (with the reason)
const planSchema = "lrmc.plan/v1"

type planDoc struct {
	Schema  string       `json:"schema"`
	Recipe  string       `json:"recipe"`
	OutDir  string       `json:"outDir"`
	Summary planSummary  `json:"summary"`
	Cache   planCache    `json:"cache"`
	Work    planWork     `json:"work"`
	Groups  []*planGroup `json:"groups"`
	Stale   []planStale  `json:"stale"`
}

type planSummary struct {
	Cached int `json:"cached"`
	Run    int `json:"run"`
	Read   int `json:"read"`
	Skip   int `json:"skip"`
}

type planCache struct {
	Hits    int `json:"hits"`
	Lookups int `json:"lookups"`
}

type planWork struct {
	TokenBlocks   int64 `json:"tokenBlocks"`
	DataDependent int   `json:"dataDependent"`
	CacheBytes    int64 `json:"cacheBytes"`
	SourceBytes   int64 `json:"sourceBytes"`
}

type planGroup struct {
	Runs    []string    `json:"runs"`
	Summary planSummary `json:"summary"`
	Work    planWork    `json:"work"`
	Nodes   []planNode  `json:"nodes"`
}

type planNode struct {
	Key           string           `json:"key"`
	Op            string           `json:"op"`
	Version       int              `json:"version"`
	Label         string           `json:"label"`
	Status        string           `json:"status"`
	Reason        *executor.Reason `json:"reason,omitempty"`
	TokenBlocks   int64            `json:"tokenBlocks,omitempty"`
	DataDependent bool             `json:"dataDependent,omitempty"`
	Bytes         int64            `json:"bytes,omitempty"`
}

type planStale struct {
	Run    string `json:"run"`
	Path   string `json:"path"`
	Action string `json:"action"`
	Reason string `json:"reason,omitempty"`
}

// planInputs is what the plan view needs beyond the graph: everything
// that asks the outside world (cache, files, model headers) comes in here,
// so the view itself is a function of its arguments.
type planInputs struct {
	recipe string
	status map[*planner.Node]planner.Status
	state  *executor.State
	stale  []executor.StaleDir
	// blocks returns the number of blocks of the model a run uses.
	blocks func(run string) int
	// size returns a cached result's size, or a source's file size.
	size func(n *planner.Node) int64
}

func (s planSummary) add(st planner.Status) planSummary {
	switch st {
	case planner.Cached:
		s.Cached++
	case planner.Run:
		s.Run++
	case planner.Read:
		s.Read++
	default:
		s.Skip++
	}
	return s
}

func (w *planWork) add(n planNode) {
	w.TokenBlocks += n.TokenBlocks
	if n.DataDependent {
		w.DataDependent++
	}
	switch n.Status {
	case "cached":
		w.CacheBytes += n.Bytes
	case "read":
		w.SourceBytes += n.Bytes
	}
}

// buildPlan lays out g's plan: grouped, explained, estimated.
func buildPlan(g *planner.Graph, in planInputs) *planDoc {
	doc := &planDoc{Schema: planSchema, Recipe: in.recipe, OutDir: g.OutDir, Groups: []*planGroup{}, Stale: []planStale{}}
	reasons := executor.Explain(g, in.status, in.state)
	groups := map[string]*planGroup{}
	for _, n := range g.Nodes {
		st := in.status[n]
		pn := planNode{Key: n.Key.String(), Op: n.Op, Version: n.Version, Label: n.Label, Status: st.String()}
		if r, ok := reasons[n]; ok {
			pn.Reason = &r
		}
		switch st {
		case planner.Run:
			run := ""
			if len(n.Runs) > 0 {
				run = n.Runs[0]
			}
			pn.TokenBlocks, pn.DataDependent = estimate(n, in.blocks(run))
		case planner.Cached, planner.Read:
			pn.Bytes = in.size(n)
		}
		id := strings.Join(n.Runs, "\x00")
		grp, ok := groups[id]
		if !ok {
			grp = &planGroup{Runs: slices.Clone(n.Runs), Nodes: []planNode{}}
			if grp.Runs == nil {
				grp.Runs = []string{}
			}
			groups[id] = grp
			doc.Groups = append(doc.Groups, grp)
		}
		grp.Nodes = append(grp.Nodes, pn)
		grp.Summary = grp.Summary.add(st)
		grp.Work.add(pn)
		doc.Summary = doc.Summary.add(st)
		doc.Work.add(pn)
		if !n.IsSource() && !planner.IsEphemeral(n.Op) && (st == planner.Cached || st == planner.Run) {
			doc.Cache.Lookups++
			if st == planner.Cached {
				doc.Cache.Hits++
			}
		}
	}
	for _, sd := range in.stale {
		ps := planStale{Run: sd.Run, Path: sd.Path, Action: "keep", Reason: sd.Reason}
		if sd.Remove {
			ps.Action, ps.Reason = "remove", ""
		}
		doc.Stale = append(doc.Stale, ps)
	}
	return doc
}

// estimate is the work a node to run does, in tokens × blocks: a forward
// pass of its tokens through the blocks it covers. Nodes that pass
// calibration or evaluation windows through the model carry samples and
// seqLen in their parameters (one block when they also name a layer);
// perplexity takes them from its windows; training does a forward and a
// backward pass (three forwards' work) per token. Multiple-choice scoring
// and generation depend on the documents' lengths: they are counted apart.
func estimate(n *planner.Node, blocks int) (tokenBlocks int64, dataDependent bool) {
	var p struct {
		Samples, SeqLen, Steps, Batch, Accumulation int64
		Layer                                       *int
	}
	if json.Unmarshal(n.Params, &p) != nil {
		return 0, false
	}
	b := int64(blocks)
	switch n.Op {
	case planner.OpCalibWindows, planner.OpEvalWindows, capture.OpEmbed:
		return 0, false // cutting windows, or looking up embeddings, is no block's work
	case planner.OpRecover:
		return 3 * p.Steps * p.Batch * max(1, p.Accumulation) * p.SeqLen * b, false
	case planner.OpPerplexity:
		for _, in := range n.Inputs {
			if in.Op == planner.OpEvalWindows {
				var w planner.EvalWindowsParams
				if json.Unmarshal(in.Params, &w) == nil {
					return int64(w.Samples) * int64(w.SeqLen) * b, false
				}
			}
		}
		return 0, false
	case planner.OpMCScore, planner.OpGenerate:
		return 0, true
	}
	if p.Samples > 0 && p.SeqLen > 0 {
		if p.Layer != nil {
			return p.Samples * p.SeqLen, false
		}
		return p.Samples * p.SeqLen * b, false
	}
	return 0, false
}

var planMarks = map[string]string{"run": "+", "cached": "=", "skip": " ", "read": "<"}

// reasonText is a reason as the text plan says it.
func reasonText(r executor.Reason) string {
	phrase := map[executor.ReasonKind]string{
		executor.ReasonNewRun:    "new run",
		executor.ReasonNew:       "new",
		executor.ReasonVersion:   "op version bumped",
		executor.ReasonParams:    "parameters changed",
		executor.ReasonInput:     "input changed",
		executor.ReasonNotCached: "computed before, no longer in the cache",
		executor.ReasonUncached:  "never cached: recomputed when needed",
		executor.ReasonFile:      "file changed",
	}[r.Kind]
	if r.Detail != "" && r.Kind != executor.ReasonFile {
		phrase += ": " + r.Detail
	}
	return phrase
}

// groupTitle names a group's runs.
func groupTitle(runs []string) string {
	switch {
	case len(runs) == 0:
		return "(no run)"
	case len(runs) == 1 && runs[0] == "":
		return "recipe (results.json)"
	case len(runs) == 1:
		return "run " + runs[0]
	}
	return fmt.Sprintf("shared by %d runs: %s", len(runs), strings.Join(runs, ", "))
}

// render writes the text plan: per group a title with its counts, one
// line per node (mark, short key, op, label, why it runs), then stale
// outputs, the work and cache summary, and the summary line.
func (d *planDoc) render(w io.Writer) {
	width := 0
	for _, g := range d.Groups {
		for _, n := range g.Nodes {
			width = max(width, len(n.Op))
		}
	}
	for i, g := range d.Groups {
		if i > 0 {
			fmt.Fprintln(w)
		}
		title := groupTitle(g.Runs)
		var counts []string
		if g.Summary.Run > 0 {
			counts = append(counts, fmt.Sprintf("%d to run", g.Summary.Run))
		}
		if g.Summary.Cached > 0 {
			counts = append(counts, fmt.Sprintf("%d cached", g.Summary.Cached))
		}
		if g.Work.TokenBlocks > 0 {
			counts = append(counts, "≈ "+siCount(g.Work.TokenBlocks)+" tokens×blocks")
		}
		if len(counts) > 0 {
			title += "  (" + strings.Join(counts, ", ") + ")"
		}
		fmt.Fprintln(w, title)
		for _, n := range g.Nodes {
			note := ""
			switch {
			case n.Reason != nil:
				note = "  (" + reasonText(*n.Reason) + ")"
			case n.Status == "cached":
				note = "  (cached)"
			case n.Status == "skip":
				note = "  (not needed)"
			}
			fmt.Fprintf(w, "  %s %s  %-*s  %s%s\n", planMarks[n.Status], n.Key[:12], width, n.Op, n.Label, note)
		}
	}
	if len(d.Stale) > 0 {
		fmt.Fprintln(w, "\nStale outputs (runs no longer in the recipe):")
		for _, s := range d.Stale {
			if s.Action == "remove" {
				fmt.Fprintf(w, "  - %s  will be removed\n", s.Path)
			} else {
				fmt.Fprintf(w, "  ! %s  stays: %s\n", s.Path, s.Reason)
			}
		}
	}
	fmt.Fprintln(w)
	work := fmt.Sprintf("Work: ≈ %s tokens×blocks to compute", siCount(d.Work.TokenBlocks))
	if d.Work.DataDependent > 0 {
		work += fmt.Sprintf(" and %d node(s) sized by their data", d.Work.DataDependent)
	}
	fmt.Fprintf(w, "%s; reads %s from the cache and %s of files\n", work, humanize.IBytes(uint64(d.Work.CacheBytes)), humanize.IBytes(uint64(d.Work.SourceBytes)))
	pct := 100.0
	if d.Cache.Lookups > 0 {
		pct = 100 * float64(d.Cache.Hits) / float64(d.Cache.Lookups)
	}
	fmt.Fprintf(w, "Cache: %d of %d results cached (%.0f%%)\n", d.Cache.Hits, d.Cache.Lookups, pct)
	fmt.Fprintln(w, planner.Summary{Cached: d.Summary.Cached, Run: d.Summary.Run, Skip: d.Summary.Skip, Read: d.Summary.Read})
}

// siCount writes a large count with an SI prefix ("3.4 M").
func siCount(n int64) string { return strings.TrimSpace(humanize.SIWithDigits(float64(n), 2, "")) }
