package planner

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"lrmc/compiler/ir"
	"lrmc/digest"
)

// Env answers the planner's questions about the outside world.
type Env interface {
	// FileDigest returns the digest of a file's bytes.
	FileDigest(path string) (digest.Digest, error)
	// Model inspects a checkpoint cheaply (its header, not its weights).
	Model(m ir.Model) (ModelInfo, error)
}

// ModelInfo is what planning needs to know about a model.
type ModelInfo struct {
	Format          string // detected format, e.g. "llama2c"
	Tokenizer       string // resolved tokenizer path
	TokenizerFormat string
	Blocks          int
	Dim             int
	Vocab           int
	SeqLen          int // the context length the model was trained for
}

// DenseRun is the name of the unpruned baseline in results.
const DenseRun = "dense"

// Plan compiles a recipe into a graph. Every error found is reported, each
// as "file:line:col: path: message".
func Plan(r *ir.Recipe, env Env) (*Graph, error) {
	p := &planning{r: r, env: env, b: newBuilder(), models: map[string]modelNodes{}, reported: map[string]bool{}}
	var metrics []*Node
	var names []string
	if r.Dense {
		run := ir.Run{Name: DenseRun, Model: r.DenseModel, Eval: r.DenseEval, Prune: ir.Prune{Paradigm: "none"}}
		if m := p.run(run, ""); m != nil {
			metrics = append(metrics, m)
			names = append(names, DenseRun)
		}
	}
	for _, run := range r.Runs {
		if m := p.run(run, run.Name); m != nil {
			metrics = append(metrics, m)
			names = append(names, run.Name)
		}
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	g := p.b.g
	if len(metrics) > 0 {
		g.Results = p.b.add("", OpResults, ResultsParams{Runs: names}, "results", metrics...)
		g.Targets = append(g.Targets, g.Results)
		g.Outputs = append(g.Outputs, Output{Node: g.Results, Path: "results.json"})
	}
	g.OutDir = r.Output.Dir
	return g, nil
}

type planning struct {
	r      *ir.Recipe
	env    Env
	b      *builder
	models map[string]modelNodes
	errs   []error
	// reported holds messages about top-level fields already reported.
	reported map[string]bool
}

// modelNodes caches, per model reference, the inspection and its nodes.
type modelNodes struct {
	info      ModelInfo
	model     *Node
	tokenizer *Node
	source    *Node // nil for a synthetic model
}

func (p *planning) errorf(run, field, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s: %s", p.r.Where(ir.FieldPath(run, field)), fmt.Sprintf(format, args...)))
}

// run plans one run and returns its metrics node (nil on error). posRun is
// the run name used for error positions ("" for the top-level fields the
// dense baseline uses).
func (p *planning) run(run ir.Run, posRun string) *Node {
	name := run.Name
	before := len(p.errs)
	m, ok := p.model(name, posRun, run.Model)
	if !ok {
		return nil
	}
	model := m.model

	pruned := model
	var decision *Node
	var own map[string]Export
	var files []Export
	if pa := run.Prune.Paradigm; pa != "" && pa != "none" {
		if pr := p.method(name, posRun, run, m); pr != nil {
			pruned, decision, own, files = pr.Model, pr.Decision, pr.Exports, pr.Files
		} else if len(p.errs) == before {
			p.errorf(posRun, "prune.method", "method %s/%s planned nothing", pa, run.Prune.Method)
		}
	}
	base := pruned
	var recovered *Node
	if rc := run.Recovery; rc.Method != "" && rc.Method != "none" {
		if recovered = p.recovery(name, posRun, rc, pruned, model, m); recovered != nil {
			pruned = p.b.add(name, OpModelRecovered, struct{}{}, "apply recovery", base, recovered)
		}
	}

	var evals []*Node
	var tasks, names []string
	for _, e := range run.Eval {
		field := e.Field
		if e.Name == "" {
			// An IR built by hand (tests, tools) may leave names out.
			e.Name = e.Task
		}
		if e.Generation() {
			if g := p.generation(name, posRun, e, pruned, m); g != nil {
				evals = append(evals, g)
				tasks, names = append(tasks, e.Task), append(names, e.Name)
			}
			continue
		}
		if e.MultipleChoice() {
			if acc := p.multipleChoice(name, posRun, e, pruned, m); acc != nil {
				evals = append(evals, acc)
				tasks, names = append(tasks, e.Task), append(names, e.Name)
			}
			continue
		}
		if e.SeqLen > m.info.SeqLen {
			p.errorf(posRun, field+".seqLen", "seqLen %d exceeds the model's context of %d tokens", e.SeqLen, m.info.SeqLen)
			continue
		}
		if p.overlaps(run.Calibration.Data, e.Data) && run.Prune.Paradigm != "none" && run.Prune.Paradigm != "" {
			p.errorf(posRun, field+".data.split", "evaluation documents [%g, %g) overlap the calibration documents [%g, %g) of the same file; held-out text must be disjoint",
				e.Data.Split.From, e.Data.Split.To, run.Calibration.Data.Split.From, run.Calibration.Data.Split.To)
			continue
		}
		stream := p.tokens(name, posRun, field+".data", e.Data, m)
		if stream == nil {
			continue
		}
		switch e.Task {
		case "perplexity":
			w := p.b.add(name, OpEvalWindows, EvalWindowsParams{Samples: e.Samples, SeqLen: e.SeqLen},
				fmt.Sprintf("eval windows %d×%d", e.Samples, e.SeqLen), stream)
			evals = append(evals, p.b.add(name, OpPerplexity, PerplexityParams{SeqLen: e.SeqLen}, "perplexity", pruned, w))
			tasks, names = append(tasks, e.Task), append(names, e.Name)
		default:
			p.errorf(posRun, field+".task", "task %q has no planner", e.Task)
		}
	}
	var speed *Node
	if sp := p.r.Speed; sp != nil {
		speed = p.speed(name, *sp, pruned, m)
	}
	if len(p.errs) > before {
		return nil
	}
	mp := MetricsParams{Tasks: tasks, Names: names, Config: runConfig(run)}
	if decision != nil {
		mp.Depth = true
		evals = append(evals, decision)
	}
	if recovered != nil {
		mp.Recovery = true
		evals = append(evals, recovered)
	}
	if speed != nil {
		mp.Speed = true
		evals = append(evals, speed)
	}
	metrics := p.b.add(name, OpMetrics, mp, "metrics", evals...)
	p.b.g.Targets = append(p.b.g.Targets, metrics)
	p.b.g.Outputs = append(p.b.g.Outputs, Output{Node: metrics, Path: filepath.Join(name, "metrics.json")})
	if name != DenseRun {
		p.exports(name, pruned, m, own, files)
		// A width-pruned base may differ in width per block, which no
		// Hugging Face directory (PEFT's base) can hold: such runs export
		// the merged model through output.formats only.
		if recovered != nil && run.Recovery.Method == "lora" && run.Prune.Paradigm != "width" {
			p.adapter(name, base, recovered, m, peftBase(run))
		}
	}
	return metrics
}

func (p *planning) model(name, posRun string, ref ir.Model) (modelNodes, bool) {
	id := modelID(ref)
	if m, ok := p.models[id]; ok {
		m.model.addRun(name)
		m.tokenizer.addRun(name)
		if m.source != nil {
			m.source.addRun(name)
		}
		return m, true
	}
	info, err := p.env.Model(ref)
	if err != nil {
		field := "model.path"
		if ref.Synthetic != nil {
			field = "model.synthetic"
		}
		p.errorf(posRun, field, "%v", err)
		return modelNodes{}, false
	}
	tsum, err := p.env.FileDigest(info.Tokenizer)
	if err != nil {
		p.errorf(posRun, "model.tokenizer", "%v", err)
		return modelNodes{}, false
	}
	tsrc := p.b.source(name, info.Tokenizer, tsum, filepath.Base(info.Tokenizer))
	params := ModelLoadParams{Format: info.Format, TokenizerFormat: info.TokenizerFormat}
	if ref.DType != "" && ref.DType != "float32" {
		params.DType = ref.DType
	}
	if ref.Compute == "bf16" {
		params.Compute = ref.Compute
	}
	var model, msrc *Node
	if s := ref.Synthetic; s != nil {
		params.Synthetic = &SyntheticParams{
			Arch: s.Arch, Layers: s.Layers, Dim: s.Dim, Heads: s.Heads, KVHeads: s.KVHeads, HeadDim: s.HeadDim,
			FFN: s.FFN, Vocab: info.Vocab, SeqLen: s.SeqLen, Tie: s.Tie, Seed: s.Seed,
		}
		model = p.b.add(name, OpModelLoad, params, fmt.Sprintf("synthesize %s %d×%d seed %d", s.Arch, s.Layers, s.Dim, s.Seed), tsrc)
	} else {
		msum, err := p.env.FileDigest(ref.Path)
		if err != nil {
			p.errorf(posRun, "model.path", "%v", err)
			return modelNodes{}, false
		}
		msrc = p.b.source(name, ref.Path, msum, filepath.Base(ref.Path))
		model = p.b.add(name, OpModelLoad, params, "load "+filepath.Base(ref.Path), msrc, tsrc)
	}
	m := modelNodes{info: info, model: model, tokenizer: tsrc, source: msrc}
	p.models[id] = m
	return m, true
}

// recovery plans training the pruned model: the training stream, the
// training node (checkpointed), and nil on error.
func (p *planning) recovery(name, posRun string, rc ir.Recovery, pruned, dense *Node, m modelNodes) *Node {
	if rc.SeqLen > m.info.SeqLen {
		p.errorf(posRun, "recovery.seqLen", "seqLen %d exceeds the model's context of %d tokens", rc.SeqLen, m.info.SeqLen)
		return nil
	}
	d := rc.Data
	sum, err := p.env.FileDigest(d.Path)
	if err != nil {
		p.errorf(posRun, "recovery.data.path", "%v", err)
		return nil
	}
	src := p.b.source(name, d.Path, sum, filepath.Base(d.Path))
	field := ""
	if d.Format == "jsonl" {
		field = d.Field
	}
	template := ""
	if d.Template == "model" {
		template = "model"
	}
	stream := p.b.add(name, OpSFT, TokensParams{
		TokenizerFormat: m.info.TokenizerFormat, Vocab: m.info.Vocab,
		Format: d.Format, Field: field, From: d.Split.From, To: d.Split.To, Template: template, Thinking: d.Thinking,
	}, fmt.Sprintf("training data %s [%g, %g)", filepath.Base(d.Path), d.Split.From, d.Split.To), src, m.tokenizer)
	params := recoverParams(rc)
	inputs := []*Node{pruned, stream}
	if rc.Loss == "kd" {
		inputs = append(inputs, dense)
	}
	return p.b.add(name, OpRecover, params, fmt.Sprintf("recover %s %d steps (%s)", rc.Method, rc.Steps, rc.Loss), inputs...)
}

// adapter plans a LoRA run's adapter in PEFT's layout beside the pruned,
// unrecovered base it applies to (as a Hugging Face directory).
func (p *planning) adapter(name string, base, recovered *Node, m modelNodes, peftBase string) {
	g := p.b.g
	dtype := p.r.Output.DType
	if dtype == "" {
		dtype = "float32"
	}
	bx := p.b.add(name, OpExportHF, ExportParams{DType: dtype, TokenizerFormat: m.info.TokenizerFormat}, "export base hf "+dtype, base, m.tokenizer)
	ax := p.b.add(name, OpExportPEFT, PEFTParams{Base: peftBase}, "export peft adapter", recovered)
	g.Targets = append(g.Targets, bx, ax)
	g.Outputs = append(g.Outputs,
		Output{Node: bx, Path: filepath.Join(name, "base"), Dir: true},
		Output{Node: ax, Path: filepath.Join(name, "adapter"), Dir: true})
}

// peftBase is what a LoRA run's adapter names as its base: the hub
// repository ("ORG/NAME", which PEFT fetches) when the run fine-tunes an
// unpruned model named hf:ORG/NAME without a revision, else the exported
// base beside the adapter ("../base", relative to the adapter directory).
func peftBase(run ir.Run) string {
	repo, ok := strings.CutPrefix(run.Model.Path, "hf:")
	if ok && (run.Prune.Paradigm == "" || run.Prune.Paradigm == "none") && !strings.Contains(repo, "@") {
		return repo
	}
	return "../base"
}

// multipleChoice plans a multiple-choice evaluation: the items (shared
// by every model with this tokenizer), their scores under the run's model
// (also written as samples/<name>.jsonl) and the accuracy computed from
// them; nil on error.
func (p *planning) multipleChoice(name, posRun string, e ir.Eval, model *Node, m modelNodes) *Node {
	if e.Def == nil {
		p.errorf(posRun, e.Field+".task", "task %q has no definition", e.Task)
		return nil
	}
	srcs, format, what := p.mcSources(name, posRun, e)
	if srcs == nil {
		return nil
	}
	d := e.Def
	def := MCTaskParams{Text: d.Text, Choices: d.Choices, ChoicesField: d.ChoicesField, Gold: d.Gold,
		Preprocess: d.Preprocess, Delimiter: d.Delimiter, FewshotDelimiter: d.FewshotDelimiter,
		GoldLabels: d.GoldLabels, GoldLabelsField: d.GoldLabelsField, Target: d.Target}
	inputs := append([]*Node{srcs[0], m.tokenizer}, srcs[1:]...)
	items := p.b.add(name, OpMCItems, MCItemsParams{
		Task: e.Task, Format: format, Def: def, From: e.Data.Split.From, To: e.Data.Split.To, Samples: e.Samples, Fewshot: e.Fewshot, Seed: e.Seed,
		TokenizerFormat: m.info.TokenizerFormat, Vocab: m.info.Vocab,
	}, fmt.Sprintf("%s items %s (%d-shot)", e.Task, what, e.Fewshot), inputs...)
	score := p.b.add(name, OpMCScore, MCScoreParams{Task: e.Task}, e.Task+" log-likelihoods", model, items)
	p.b.g.Targets = append(p.b.g.Targets, score)
	p.b.g.Outputs = append(p.b.g.Outputs, Output{Node: score, Path: filepath.Join(name, "samples", e.Name+".jsonl")})
	return p.b.add(name, OpMCAccuracy, MCAccuracyParams{Task: e.Task, Metrics: d.Metrics}, e.Task+" accuracy", score, model)
}

// mcSources plans the source nodes of a multiple-choice evaluation's
// documents: its jsonl file, or each parquet file of a Hugging Face
// dataset's split, keyed by its bytes as a file is. It returns them, the
// items' format and the data's name for labels; nil on error.
func (p *planning) mcSources(name, posRun string, e ir.Eval) ([]*Node, string, string) {
	files, format, what := []string{e.Data.Path}, "", filepath.Base(e.Data.Path)
	if ds := e.Data.Dataset; ds != nil {
		files, format, what = ds.Files, "parquet", fmt.Sprintf("%s %s/%s", e.Data.Path, ds.Config, ds.Split)
	}
	var srcs []*Node
	for _, f := range files {
		sum, err := p.env.FileDigest(f)
		if err != nil {
			p.errorf(posRun, e.Field+".data.path", "%v", err)
			return nil, "", ""
		}
		srcs = append(srcs, p.b.source(name, f, sum, filepath.Base(f)))
	}
	if len(srcs) == 0 {
		p.errorf(posRun, e.Field+".data.path", "%s has no files", e.Data.Path)
		return nil, "", ""
	}
	return srcs, format, what
}

// speed plans measuring a model's speed; nil on error. The recipe's speed
// is top-level, so a length the model cannot hold is reported once.
func (p *planning) speed(name string, sp ir.Speed, model *Node, m modelNodes) *Node {
	for _, c := range []struct {
		field string
		n     int
	}{{"speed.prefill", sp.Prefill}, {"speed.decode", sp.Decode}} {
		if c.n > m.info.SeqLen {
			msg := fmt.Sprintf("%s %d exceeds the model's context of %d tokens", strings.TrimPrefix(c.field, "speed."), c.n, m.info.SeqLen)
			if !p.reported[c.field+msg] {
				p.reported[c.field+msg] = true
				p.errorf("", c.field, "%s", msg)
			}
			return nil
		}
	}
	return p.b.add(name, OpSpeed, SpeedParams(sp), fmt.Sprintf("measure speed (prefill %d, decode %d)", sp.Prefill, sp.Decode), model)
}

// modelID identifies a model reference within one plan.
func modelID(ref ir.Model) string {
	if s := ref.Synthetic; s != nil {
		return fmt.Sprintf("synthetic:%+v\x00%s\x00%s\x00%s", *s, ref.Tokenizer, ref.DType, ref.Compute)
	}
	return ref.Path + "\x00" + ref.Tokenizer + "\x00" + ref.Format + "\x00" + ref.DType + "\x00" + ref.Compute
}

// exports plans a run's artifacts in every requested format, and its
// provenance. own are the method's exports of its own model form, used
// for the formats they name; files are the method's artifacts beside them.
func (p *planning) exports(name string, pruned *Node, m modelNodes, own map[string]Export, files []Export) {
	g := p.b.g
	dtype := p.r.Output.DType
	if dtype == "" {
		dtype = "float32"
	}
	for _, f := range p.r.Output.Formats {
		if ex, ok := own[f]; ok {
			g.Targets = append(g.Targets, ex.Node)
			g.Outputs = append(g.Outputs, Output{Node: ex.Node, Path: filepath.Join(name, ex.Path), Dir: ex.Dir})
			continue
		}
		switch f {
		case "llama2c":
			ex := p.b.add(name, OpExportLlama2c, ExportParams{}, "export llama2c", pruned)
			g.Targets = append(g.Targets, ex)
			g.Outputs = append(g.Outputs, Output{Node: ex, Path: filepath.Join(name, "model.bin")})
			if m.info.TokenizerFormat == "llama2c" {
				g.Outputs = append(g.Outputs, Output{Node: m.tokenizer, Path: filepath.Join(name, filepath.Base(m.tokenizer.Source))})
			}
		case "hf":
			ex := p.b.add(name, OpExportHF, ExportParams{DType: dtype, TokenizerFormat: m.info.TokenizerFormat}, "export hf "+dtype, pruned, m.tokenizer)
			g.Targets = append(g.Targets, ex)
			g.Outputs = append(g.Outputs, Output{Node: ex, Path: filepath.Join(name, "hf"), Dir: true})
		case "gguf":
			ex := p.b.add(name, OpExportGGUF, ExportParams{DType: dtype, TokenizerFormat: m.info.TokenizerFormat}, "export gguf "+dtype, pruned, m.tokenizer)
			g.Targets = append(g.Targets, ex)
			g.Outputs = append(g.Outputs, Output{Node: ex, Path: filepath.Join(name, "model.gguf")})
		default:
			p.errorf("", "output.formats", "output format %q has no planner", f)
		}
	}
	if len(p.r.Output.Formats) > 0 {
		for _, f := range files {
			g.Targets = append(g.Targets, f.Node)
			g.Outputs = append(g.Outputs, Output{Node: f.Node, Path: filepath.Join(name, f.Path), Dir: f.Dir})
		}
	}
	g.Outputs = append(g.Outputs, Output{Path: filepath.Join(name, "provenance.json"), Data: p.provenance(name, pruned)})
}

// tokens plans reading and tokenizing a split of a dataset.
func (p *planning) tokens(name, posRun, field string, d ir.Data, m modelNodes) *Node {
	sum, err := p.env.FileDigest(d.Path)
	if err != nil {
		p.errorf(posRun, field+".path", "%v", err)
		return nil
	}
	src := p.b.source(name, d.Path, sum, filepath.Base(d.Path))
	field2 := ""
	if d.Format == "jsonl" {
		field2 = d.Field
	}
	template := ""
	if d.Template == "model" {
		template = "model"
	}
	return p.b.add(name, OpTokens, TokensParams{
		TokenizerFormat: m.info.TokenizerFormat, Vocab: m.info.Vocab,
		Format: d.Format, Field: field2, From: d.Split.From, To: d.Split.To,
		Template: template, Thinking: d.Thinking,
	}, fmt.Sprintf("tokenize %s [%g, %g)", filepath.Base(d.Path), d.Split.From, d.Split.To), src, m.tokenizer)
}

// overlaps reports whether two data references share documents.
func (p *planning) overlaps(a, b ir.Data) bool {
	if a.Path == "" || b.Path == "" {
		return false
	}
	da, err1 := p.env.FileDigest(a.Path)
	db, err2 := p.env.FileDigest(b.Path)
	if err1 != nil || err2 != nil || da != db {
		return false
	}
	return a.Split.From < b.Split.To && b.Split.From < a.Split.To
}
