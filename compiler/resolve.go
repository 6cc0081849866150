package compiler

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue"

	"lrmc/compiler/ir"
	"lrmc/digest"
	"lrmc/kernels/hfdataset"
	"lrmc/kernels/mceval"
	"lrmc/kernels/modelref"
	"lrmc/methods/spec"
)

// runName keeps run names usable as directory names.
var runName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// resolve builds the IR from the validated recipe, merging the top level
// into each run, and reports what the schema could not check.
func (c *compiler) resolve() *ir.Recipe {
	rec := &ir.Recipe{File: c.file, Dir: c.dir, Positions: c.positions}
	c.recordWritten(c.user, "")
	c.resolveTasks()
	top := &resolver{c: c, layers: []layer{
		{user: c.user, full: c.full, root: ir.Pos{File: c.file}},
		{full: c.defaults, isDefault: true},
	}}

	denseHit, _ := top.get("dense")
	dense, denseOK := top.bool(denseHit)
	rec.Dense = dense
	if dense {
		rec.DenseModel = top.model()
		top.tok = tokenizerOf(rec.DenseModel)
		rec.DenseEval = top.evals()
		c.checkChat("", rec.DenseModel, rec.DenseEval)
		if len(rec.DenseEval) == 0 && !c.cueErrorRelated("eval") {
			c.errs.add(orPos(denseHit.pos, ir.Pos{File: c.file}), "dense",
				"the dense baseline needs eval at the top level; add eval or set dense: false")
		}
	}

	if runs := c.user.LookupPath(fieldPath("runs")); runs.Exists() {
		if it, err := runs.Fields(); err == nil {
			for it.Next() {
				rec.Runs = append(rec.Runs, c.resolveRun(it.Selector().Unquoted(), it.Value(), top))
			}
		}
	}
	slices.SortFunc(rec.Runs, func(a, b ir.Run) int { return strings.Compare(a.Name, b.Name) })
	if len(rec.Runs) == 0 && !dense && denseOK {
		c.errs.add(orPos(denseHit.pos, ir.Pos{File: c.file}), "runs", "nothing to do: no runs, and dense is false")
	}

	rec.Output = top.output()
	if top.has("speed") {
		rec.Speed = top.speed()
	}
	rec.Cluster = top.cluster()
	c.checkModelForms(rec)
	return rec
}

// speed resolves how models' speed is measured, #Defaults filling what
// the recipe leaves out.
func (r *resolver) speed() *ir.Speed {
	s := &ir.Speed{}
	for _, f := range []struct {
		name string
		dst  *int
	}{{"prefill", &s.Prefill}, {"decode", &s.Decode}, {"reps", &s.Reps}, {"threads", &s.Threads}} {
		if h, ok := r.get("speed." + f.name); ok {
			*f.dst, _ = r.int(h)
		}
	}
	return s
}

// cluster resolves the recipe's Slurm request; the schema checked each
// field's syntax.
func (r *resolver) cluster() ir.Cluster {
	var c ir.Cluster
	for _, f := range []struct {
		name string
		dst  *string
	}{{"partition", &c.Partition}, {"account", &c.Account}, {"mem", &c.Mem}, {"time", &c.Time}} {
		if h, ok := r.get("cluster." + f.name); ok {
			*f.dst, _ = r.str(h)
		}
	}
	if h, ok := r.get("cluster.cpus"); ok {
		c.CPUs, _ = r.int(h)
	}
	return c
}

// resolveRun merges the top level (and then #Defaults) under the run's own
// fields.
func (c *compiler) resolveRun(name string, user cue.Value, top *resolver) ir.Run {
	if !runName.MatchString(name) {
		c.errs.add(c.labelPos(user), runPath(name), "run name must match %s (it names the run's output directory)", runName)
	}
	// Plan-time errors about a run's defaults are reported at the run.
	c.positions[runPath(name)] = c.labelPos(user)
	r := &resolver{c: c, run: name, owner: name, layers: []layer{
		{
			user: user, full: c.full.LookupPath(cue.MakePath(cue.Str("runs"), cue.Str(name))),
			run: name, root: c.valuePos(user),
		},
		top.layers[0],
		top.layers[1],
	}}
	run := ir.Run{Name: name, Model: r.model()}
	r.tok = tokenizerOf(run.Model)
	var needsCalibration bool
	run.Prune, needsCalibration = r.prune()
	r.checkShape(run.Model, run.Prune)
	switch {
	case needsCalibration && !r.has("calibration"):
		r.missing("calibration", "field is required but not present: %s/%s measures the model on calibration data",
			run.Prune.Paradigm, run.Prune.Method)
	case r.has("calibration"):
		s, _ := spec.Lookup(run.Prune.Paradigm, run.Prune.Method)
		run.Calibration = r.calibration(s.DefaultSamples, s.DefaultSeqLen)
	}
	run.Recovery = r.recovery(run.Calibration, r.has("calibration"))
	run.Eval = r.evals()
	r.checkOverlap(run)
	c.checkChat(name, run.Model, run.Eval)
	return run
}

// file resolves a path field against the recipe's directory and checks that
// it exists, reporting where it was written.
func (r *resolver) file(h hit, wantFile bool) (string, bool) {
	s, ok := r.str(h)
	if !ok {
		return "", false
	}
	if s == "" {
		r.c.errs.add(h.pos, h.path, "empty path")
		return "", false
	}
	p := s
	if !filepath.IsAbs(p) {
		p = filepath.Join(r.c.dir, p)
	}
	p = filepath.Clean(p)
	st, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r.c.errs.add(h.pos, h.path, "no such file: %s", p)
	case err != nil:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		r.c.errs.add(h.pos, h.path, "cannot read %s: %v", p, err)
	case !st.IsDir() && !st.Mode().IsRegular():
		// Reading a named pipe or a device would block or never end.
		r.c.errs.add(h.pos, h.path, "%v", digest.CheckRegular(p, st.Mode()))
	case wantFile && st.IsDir():
		r.c.errs.add(h.pos, h.path, "%s is a directory, not a file", p)
	}
	return p, true
}

// oneOf decodes a string that must be one of a fixed set of values (kind
// and plural name them in the message).
func (r *resolver) oneOf(h hit, kind, plural string, values []string) (string, bool) {
	s, ok := r.str(h)
	if !ok {
		return "", false
	}
	if !slices.Contains(values, s) {
		r.c.errs.add(h.pos, h.path, "unknown %s %q; %s: %s", kind, s, plural, strings.Join(values, ", "))
		return "", false
	}
	return s, true
}

// name decodes a name and checks it against a registry.
func (r *resolver) name(h hit, reg registry) string {
	if s, ok := r.str(h); ok && r.check(h, reg.check(s)) {
		return s
	}
	return ""
}

// modelSources are the fields that say where a model's weights come from.
// They merge as one group, like the depth amounts: a run's synthetic
// replaces a top-level path and a run's path a top-level synthetic.
var modelSources = []string{"model.path", "model.synthetic"}

func (r *resolver) model() ir.Model {
	var m ir.Model
	m.DType = "float32"
	if h, ok := r.get("model.dtype"); ok {
		m.DType, _ = r.oneOf(h, "dtype", "dtypes", dtypes)
	}
	// Compute stays "" for f32, written or not, so a plan's keys do not
	// depend on spelling out the default.
	if h, ok := r.get("model.compute"); ok {
		if c, ok := r.oneOf(h, "compute", "computes", computes); ok && c == "bf16" {
			m.Compute = c
			if m.DType != "bfloat16" {
				r.c.errs.add(h.pos, h.path, "compute \"bf16\" needs model.dtype \"bfloat16\" (the weights are %s)", m.DType)
			}
		}
	}
	i := r.layerOf(true, modelSources...)
	if i < 0 {
		// A misspelt "pth" is reported by the schema; this would repeat it.
		if !r.c.cueErrorUnder(r.msgPath("model"), "model") && !r.misspeltAs(modelSources...) {
			r.missing("model.path", "field is required but not present: a model is a checkpoint (path) or random weights (synthetic)")
		}
		return m
	}
	ph, hasPath := r.from(i, "model.path")
	sh, hasSynthetic := r.from(i, "model.synthetic")
	if hasPath && hasSynthetic {
		r.c.errs.add(sh.pos, sh.path, "synthetic conflicts with path: a model is a checkpoint or random weights, not both")
	}
	tok, hasTok := r.get("model.tokenizer")
	if hasTok {
		m.Tokenizer, _ = r.file(tok, false)
	}
	if hasPath {
		var kind modelref.Kind
		var detect error
		m.Path, kind, detect = r.modelPath(ph)
		if h, ok := r.get("model.format"); ok {
			m.Format = r.name(h, modelFormats)
			r.checkFormat(ph, h, m.Format, m.Path, kind, detect)
		}
		return m
	}

	// format says how path is read. One written beside the synthetic model,
	// or in a run over it, is a mistake; one under it belongs to the path
	// the synthetic model replaces.
	format := fieldPath("model.format")
	for _, l := range r.layers[:i+1] {
		if l.sets(format) {
			r.c.errs.add(r.c.valuePos(l.user.LookupPath(format)), ir.FieldPath(l.run, join(l.prefix, "model.format")),
				"format says how a checkpoint is read; a synthetic model has none")
		}
	}
	// Layers above i set no synthetic field, so the synthetic fields of
	// every layer merge leaf by leaf, as data does.
	m.Synthetic = r.synthetic()
	switch {
	case !hasTok:
		r.missing("model.tokenizer", "field is required but not present: a synthetic model has no tokenizer of its own; name a directory with tokenizer.json")
	case m.Tokenizer != "":
		st, err := os.Stat(m.Tokenizer)
		switch {
		case err != nil, !st.IsDir() && !st.Mode().IsRegular():
			// file has reported it.
		case !st.IsDir():
			r.c.errs.add(tok.pos, tok.path, "%s is a file; a synthetic model needs a directory with tokenizer.json", m.Tokenizer)
		default:
			if _, err := os.Stat(filepath.Join(m.Tokenizer, "tokenizer.json")); err != nil {
				r.c.errs.add(tok.pos, tok.path, "%s has no tokenizer.json, which a synthetic model needs", m.Tokenizer)
			}
		}
	}
	return m
}

// modelPath resolves a model path: an "hf:ORG/NAME[@REVISION]" reference
// to its snapshot in the local hub cache, anything else as a file or
// directory beside the recipe. It also returns the format modelref detects
// (zero when the path is missing) and why it could not detect one.
func (r *resolver) modelPath(h hit) (string, modelref.Kind, error) {
	s, ok := r.str(h)
	if !ok {
		return "", 0, nil
	}
	if strings.HasPrefix(s, modelref.HubPrefix) {
		res, err := modelref.Resolve(s)
		if err != nil {
			r.c.errs.add(h.pos, h.path, "%v", err)
			return "", 0, nil
		}
		// The hub cache may be named relatively; the IR's paths are absolute.
		p, err := filepath.Abs(res.Path)
		if err != nil {
			r.c.errs.add(h.pos, h.path, "%v", err)
		}
		return p, res.Kind, nil
	}
	// A Hugging Face model is a directory, so no wantFile.
	p, ok := r.file(h, false)
	if st, err := os.Stat(p); !ok || err != nil || !st.IsDir() && !st.Mode().IsRegular() {
		return p, 0, nil // reported by file
	}
	res, err := modelref.Resolve(p)
	return p, res.Kind, err
}

// checkFormat reports a format that cannot read path: auto needs a path
// whose format modelref can tell, llama2c and gguf checkpoints are files,
// a Hugging Face checkpoint is a directory.
func (r *resolver) checkFormat(ph, fh hit, format, path string, kind modelref.Kind, detect error) {
	if path == "" || (kind == 0 && detect == nil) {
		return // a path that is missing or did not decode, reported
	}
	dir := kind == modelref.HFDir
	if detect != nil {
		st, err := os.Stat(path)
		dir = err == nil && st.IsDir()
	}
	switch {
	case format == "auto" && detect != nil:
		r.c.errs.add(ph.pos, ph.path, "cannot detect the model's format (set format): %v", detect)
	case format == "hf" && dir && detect != nil:
		r.c.errs.add(ph.pos, ph.path, "%v", detect)
	case format == "hf" && !dir:
		r.c.errs.add(fh.pos, fh.path, "format \"hf\" reads a directory (config.json and safetensors); %s is a file", path)
	case (format == "llama2c" || format == "gguf") && dir:
		r.c.errs.add(fh.pos, fh.path, "format %q reads a file; %s is a directory", format, path)
	}
}

// synthetic resolves the shape of a random-weight model and checks that its
// heads divide as attention needs.
func (r *resolver) synthetic() *ir.Synthetic {
	s := &ir.Synthetic{}
	if h, ok := r.need("model.synthetic.arch"); ok {
		s.Arch = r.name(h, archs)
	}
	hits := map[string]hit{}
	for _, f := range []struct {
		name     string
		dst      *int
		required bool
	}{
		{"layers", &s.Layers, true},
		{"dim", &s.Dim, true},
		{"heads", &s.Heads, true},
		{"kvHeads", &s.KVHeads, true},
		{"headDim", &s.HeadDim, false},
		{"ffn", &s.FFN, true},
		{"vocab", &s.Vocab, false},
		{"seqLen", &s.SeqLen, true},
	} {
		field := "model.synthetic." + f.name
		get := r.get
		if f.required {
			get = r.need
		}
		if h, ok := get(field); ok {
			*f.dst, _ = r.int(h)
			hits[f.name] = h
		}
	}
	if h, ok := r.get("model.synthetic.tie"); ok {
		s.Tie, _ = r.bool(h)
	}
	if h, ok := r.get("model.synthetic.seed"); ok {
		seed, err := h.v.Int64()
		if r.decoded(h, err) {
			s.Seed = seed
		}
	}
	// Zero is a value that did not decode (the schema asks for >= 1).
	if s.Heads > 0 && s.KVHeads > 0 && s.Heads%s.KVHeads != 0 {
		h := hits["kvHeads"]
		r.c.errs.add(h.pos, h.path, "heads %d is not a multiple of kvHeads %d: each key/value head serves a whole group of query heads", s.Heads, s.KVHeads)
	}
	if _, set := hits["headDim"]; !set && s.Dim > 0 && s.Heads > 0 && s.Dim%s.Heads != 0 {
		h := hits["heads"]
		r.c.errs.add(h.pos, h.path, "dim %d is not a multiple of heads %d; set headDim to give each head its own size", s.Dim, s.Heads)
	}
	return s
}

// amounts are the depth-pruning fields of which exactly one is set. They
// merge as one: a run that sets ratio replaces a top-level remove.
var amounts = []string{"prune.remove", "prune.ratio", "prune.layers"}

// prune resolves the method and its parameters, and says whether the
// method needs calibration data. The layer that sets paradigm chooses the
// method: prune fields of less specific layers belong to another choice and
// are not inherited, so a run may switch to paradigm "none" or "width"
// without taking the top level's depth parameters along.
func (r *resolver) prune() (ir.Prune, bool) {
	var p ir.Prune
	ph, ok := r.need("prune.paradigm")
	if !ok {
		return p, false
	}
	r = &resolver{c: r.c, run: r.run, prefix: r.prefix, owner: r.owner, layers: r.layers[:r.layerOf(true, "prune.paradigm")+1]}
	if p.Paradigm, ok = r.str(ph); !ok {
		return p, false
	}
	if _, ok := r.oneOf(ph, "paradigm", "paradigms", paradigms()); !ok {
		return p, false
	}
	if p.Paradigm == "none" {
		for _, f := range append([]string{"prune.method"}, amounts...) {
			if h, ok := r.get(f); ok {
				r.c.errs.add(h.pos, h.path, "paradigm none prunes nothing and takes no %s", strings.TrimPrefix(f, "prune."))
			}
		}
		return p, false
	}
	if mh, ok := r.need("prune.method"); ok {
		if s, ok := r.str(mh); ok && r.check(mh, checkMethod(p.Paradigm, s)) {
			p.Method = s
		}
	}
	if p.Paradigm == "depth" {
		r.depthAmount(&p)
	}
	if s, ok := spec.Lookup(p.Paradigm, p.Method); ok && !s.Planned {
		if p.Paradigm != "depth" {
			r.foreignAmounts(s)
		}
		p.Options = r.methodOptions(s)
		return p, s.Calibration
	}
	return p, true
}

// foreignAmounts reports depth's amounts (remove, ratio, layers) written
// for a method of another paradigm that does not declare them as its own
// fields: nothing would read them.
func (r *resolver) foreignAmounts(s spec.Spec) {
	for _, f := range spec.Base {
		if slices.ContainsFunc(s.Fields, func(g spec.Field) bool { return g.Name == f }) {
			continue
		}
		if h, ok := r.get("prune." + f); ok && !h.def {
			r.c.errs.add(h.pos, h.path, "%s is depth pruning's; %s does not take it", f, s.Key())
		}
	}
}

// methodOptions resolves the method's own fields (its spec's), filling
// in their defaults, and reports fields written for other methods: every
// method's fields are in #Prune, so the schema alone lets them through.
func (r *resolver) methodOptions(s spec.Spec) ir.Options {
	fields, owners := spec.Fields()
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	slices.Sort(names)
	own := map[string]bool{}
	for _, f := range s.Fields {
		own[f.Name] = true
	}
	for _, n := range names {
		if h, ok := r.get("prune." + n); ok && !own[n] && !h.def && !slices.Contains(spec.Base, n) {
			r.c.errs.add(h.pos, h.path, "%s is a field of %s; method is %s", n, strings.Join(owners[n], ", "), s.Key())
		}
	}
	if len(s.Fields) == 0 {
		return nil
	}
	o := ir.Options{}
	written := map[string]hit{}
	for _, f := range s.Fields {
		h, ok := r.get("prune." + f.Name)
		if !ok {
			if f.Default != nil {
				o[f.Name] = f.Default
			}
			continue
		}
		written[f.Name] = h
		if v, ok := r.option(h, "prune."+f.Name, f.KindOf()); ok {
			o[f.Name] = v
		}
	}
	if s.Check != nil {
		s.Check(o, func(field, format string, args ...any) {
			h, ok := written[field]
			if !ok {
				r.missing("prune."+field, format, args...)
				return
			}
			r.c.errs.add(h.pos, h.path, format, args...)
		})
	}
	return o
}

// option decodes a method field of the given kind (spec.Field.KindOf).
func (r *resolver) option(h hit, field, kind string) (any, bool) {
	switch kind {
	case "int":
		return r.int(h)
	case "float":
		return r.float(h)
	case "bool":
		return r.bool(h)
	case "string":
		return r.str(h)
	case "[]int":
		items, written, ok := r.list(h)
		if !ok {
			return nil, false
		}
		out := []int{}
		for j, v := range items {
			n, ok := r.int(r.item(h, field, j, v, written[j]))
			if !ok {
				return nil, false
			}
			out = append(out, n)
		}
		return out, true
	}
	return nil, false
}

// depthAmount resolves the one of remove, ratio, layers that is set, taking
// the whole group from the most specific layer that sets any of it.
func (r *resolver) depthAmount(p *ir.Prune) {
	i := r.layerOf(true, amounts...)
	if i < 0 {
		// A misspelt "remov" is reported by the schema; this would repeat it.
		if !r.c.cueErrorUnder(r.msgPath("prune"), "prune") && !r.misspeltAs(amounts...) {
			r.c.errs.add(r.missingPos("prune.remove"), r.msgPath("prune"),
				"depth pruning needs one of remove (blocks), ratio (fraction of blocks) or layers (block indices)")
		}
		return
	}
	var first string
	for _, f := range amounts {
		h, ok := r.from(i, f)
		if !ok {
			continue
		}
		name := strings.TrimPrefix(f, "prune.")
		if first != "" {
			r.c.errs.add(h.pos, h.path, "%s conflicts with %s: depth pruning takes exactly one of remove, ratio, layers", name, first)
			continue
		}
		first = name
		switch name {
		case "remove":
			p.Remove, _ = r.int(h)
		case "ratio":
			p.Ratio, _ = r.float(h)
		case "layers":
			items, written, _ := r.list(h)
			for j, v := range items {
				if n, ok := r.int(r.item(h, f, j, v, written[j])); ok {
					p.Layers = append(p.Layers, n)
				}
			}
		}
	}
}

// calibration resolves the calibration windows. samples and seqLen are
// required unless the method has defaults for them (defSamples,
// defSeqLen not 0): then an absent samples takes defSamples and an absent
// seqLen stays 0, which the method's plan reads as its default capped at
// the model's context.
func (r *resolver) calibration(defSamples, defSeqLen int) ir.Calibration {
	var cal ir.Calibration
	cal.Data = r.data("calibration.data")
	r.multipleChoiceOnly(cal.Data, "calibration.data", "calibration")
	r.checkRecords(cal.Data, "calibration.data")
	count := func(field string, def int) int {
		h, ok := r.get(field)
		if !ok && def == 0 {
			h, ok = r.need(field)
		}
		if !ok {
			return 0
		}
		n, _ := r.int(h)
		return n
	}
	if cal.Samples = count("calibration.samples", defSamples); cal.Samples == 0 {
		cal.Samples = defSamples
	}
	cal.SeqLen = count("calibration.seqLen", defSeqLen)
	if h, ok := r.get("calibration.seed"); ok {
		seed, err := h.v.Int64()
		if r.decoded(h, err) {
			cal.Seed = seed
		}
	}
	return cal
}

func (r *resolver) data(field string) ir.Data {
	var d ir.Data
	hub := false
	if h, ok := r.need(field + ".path"); ok {
		if s, err := h.v.String(); err == nil && strings.HasPrefix(s, hfdataset.Prefix) {
			d.Path, d.Dataset, hub = s, r.dataset(h, field), true
		} else {
			d.Path, _ = r.file(h, true)
		}
	}
	if !hub {
		for _, f := range []string{"config", "hfSplit"} {
			if h, ok := r.get(field + "." + f); ok && !h.def {
				r.c.errs.add(h.pos, h.path, "%s chooses part of a Hugging Face dataset; path is not %sORG/NAME", f, hfdataset.Prefix)
			}
		}
	}
	if h, ok := r.get(field + ".format"); ok {
		d.Format = r.name(h, dataFormats)
	}
	// field only means something for jsonl; for text it stays empty, so
	// equal data reads as equal.
	if fh, ok := r.get(field + ".field"); ok {
		switch {
		case d.Format == "jsonl":
			d.Field, _ = r.str(fh)
		case d.Format != "" && !fh.def:
			r.c.errs.add(fh.pos, fh.path, "field names the JSON field of jsonl data; format is %q", d.Format)
		}
	}
	d.Template, d.Thinking = r.template(field, d.Format)
	r.checkTemplate(d, field)
	fh, fok := r.get(field + ".split.from")
	th, tok := r.get(field + ".split.to")
	if !fok || !tok {
		return d
	}
	from, fok := r.float(fh)
	to, tok := r.float(th)
	if !fok || !tok {
		return d
	}
	d.Split = ir.Split{From: from, To: to}
	if from >= to {
		// Report at the bound written closer to the run: that is the edit
		// that made the split empty.
		at := th
		if th.def || (!fh.def && r.layerOf(true, field+".split.from") < r.layerOf(true, field+".split.to")) {
			at = fh
		}
		r.c.errs.add(at.pos, at.path, "empty split: from %v is not below to %v", from, to)
	}
	return d
}

// dataset resolves an hf-dataset: path with its config and hfSplit to the
// split's parquet files in the local hub cache; nil when it cannot.
func (r *resolver) dataset(h hit, field string) *ir.Dataset {
	var config, split string
	if ch, ok := r.get(field + ".config"); ok {
		config, _ = r.str(ch)
	}
	sh, ok := r.get(field + ".hfSplit")
	if !ok {
		r.c.errs.add(h.pos, h.path, "a Hugging Face dataset needs hfSplit, the split to read (train, validation, test)")
		return nil
	}
	if split, ok = r.str(sh); !ok {
		return nil
	}
	ref, _ := r.str(h)
	res, err := hfdataset.Resolve(ref, config, split)
	if err != nil {
		r.c.errs.add(h.pos, h.path, "%v", err)
		return nil
	}
	files := make([]string, len(res.Files))
	for i, f := range res.Files {
		// The hub cache may be named relatively; the IR's paths are absolute.
		if files[i], err = filepath.Abs(f); err != nil {
			r.c.errs.add(h.pos, h.path, "%v", err)
			return nil
		}
	}
	return &ir.Dataset{Config: res.Config, Split: res.Split, Commit: res.Commit, Files: files}
}

// multipleChoiceOnly reports a Hugging Face dataset where text is read:
// calibration, recovery and perplexity (who) read files.
func (r *resolver) multipleChoiceOnly(d ir.Data, field, who string) {
	if !strings.HasPrefix(d.Path, hfdataset.Prefix) {
		return
	}
	if h, ok := r.get(field + ".path"); ok {
		r.c.errs.add(h.pos, h.path, "a Hugging Face dataset (%s) is read by multiple-choice tasks only; %s reads a file", d.Path, who)
	}
}

// template resolves how data of format is turned into text: chat and
// instruction data default to the model's chat template, text and jsonl
// are text already. thinking reaches the template only, so it needs one.
func (r *resolver) template(field, format string) (string, *bool) {
	if format == "" {
		return "", nil // an unknown format, reported
	}
	tmpl := "none"
	if format == "chat" || format == "instruction" {
		tmpl = "model"
	}
	if h, ok := r.get(field + ".template"); ok {
		s, ok := r.oneOf(h, "template", "templates", templates)
		switch {
		case !ok:
			return "", nil // reported
		case s == "model" && tmpl == "none":
			r.c.errs.add(h.pos, h.path, "template \"model\" renders chat and instruction data; format is %q", format)
			return "", nil
		case s == "none" && tmpl == "model":
			r.c.errs.add(h.pos, h.path, "%s", noTemplateForData(format))
			return "", nil
		}
	}
	h, ok := r.get(field + ".thinking")
	if !ok {
		return tmpl, nil
	}
	thinking, ok := r.bool(h)
	if !ok {
		return tmpl, nil
	}
	if tmpl == "none" {
		r.c.errs.add(h.pos, h.path, "thinking is passed to the model's chat template; template is \"none\" for this %s data", format)
		return tmpl, nil
	}
	return tmpl, &thinking
}

// resolveTasks decodes the multiple-choice tasks an eval may name: the
// built-in #Tasks and the recipe's own tasks, checking each definition as
// mceval will use it.
func (c *compiler) resolveTasks() {
	c.taskDefs = map[string]ir.TaskDef{}
	c.genDefs = map[string]genDef{}
	c.chatPos = map[string]chatAt{}
	c.tasks = evalTasks
	c.tasks.built = slices.Clone(evalTasks.built)
	var names []string
	add := func(name string, v, w cue.Value, path string) {
		pos := c.valuePos(w)
		switch {
		case !w.Exists():
		case slices.Contains(evalTasks.built, name) || slices.Contains(evalTasks.planned, name):
			c.errs.add(pos, path, "task %q is lrmc's own; name yours otherwise", name)
			return
		case slices.Contains(names, name):
			builtin := slices.Sorted(slices.Values(names))
			c.errs.add(pos, path, "task %q is built in; name yours otherwise (built-in tasks: %s)", name, strings.Join(builtin, ", "))
			return
		case !evalName.MatchString(name):
			c.errs.add(pos, path, "task name %q must match %s", name, evalName)
			return
		}
		kind, ok := c.taskKind(v, w, path, pos)
		switch {
		case !ok:
			return
		case kind == kindGen:
			if d, ok := c.genTask(name, v, w, path, pos); ok {
				c.genDefs[name] = d
				names = append(names, name)
			}
			return
		case !c.foreignFields(v, w, path, pos, kind, genOnly):
			return
		}
		var d ir.TaskDef
		str := func(field string, dst *string) {
			if f := v.LookupPath(fieldPath(field)); f.Exists() {
				*dst, _ = f.String()
			}
		}
		str("text", &d.Text)
		str("choicesField", &d.ChoicesField)
		str("gold", &d.Gold)
		str("preprocess", &d.Preprocess)
		str("delimiter", &d.Delimiter)
		str("fewshotDelimiter", &d.FewshotDelimiter)
		str("goldLabelsField", &d.GoldLabelsField)
		str("target", &d.Target)
		for field, dst := range map[string]*[]string{"choices": &d.Choices, "goldLabels": &d.GoldLabels, "metrics": &d.Metrics} {
			if f := v.LookupPath(fieldPath(field)); f.Exists() {
				if err := f.Decode(dst); err != nil {
					return // the schema reports it
				}
			}
		}
		if slices.Equal(d.Metrics, mceval.Metrics) {
			d.Metrics = nil // the default, written out: the same task
		}
		if _, err := mceval.FromSpec(name, specOf(d)); err != nil {
			c.errs.add(pos, path, "%v", err)
			return
		}
		c.taskDefs[name] = d
		names = append(names, name)
	}
	if it, err := c.schema.Tasks.Fields(); err == nil {
		for it.Next() {
			name := it.Selector().Unquoted()
			add(name, it.Value(), cue.Value{}, "#Tasks."+name)
		}
	}
	builtin := len(names)
	if user := c.user.LookupPath(fieldPath("tasks")); user.Exists() {
		if it, err := user.Fields(); err == nil {
			for it.Next() {
				name := it.Selector().Unquoted()
				full := c.full.LookupPath(cue.MakePath(cue.Str("tasks"), it.Selector()))
				add(name, full, it.Value(), "tasks."+name)
			}
		}
	}
	slices.Sort(names[:builtin])
	c.tasks.built = append(c.tasks.built, names...)
}

// specOf is a task definition as mceval takes it.
func specOf(d ir.TaskDef) mceval.Spec {
	return mceval.Spec{Text: d.Text, Choices: d.Choices, ChoicesField: d.ChoicesField, Gold: d.Gold,
		GoldLabels: d.GoldLabels, GoldLabelsField: d.GoldLabelsField, Target: d.Target, Metrics: d.Metrics,
		Preprocess: d.Preprocess, Delimiter: d.Delimiter, FewshotDelimiter: d.FewshotDelimiter}
}

// evalName keeps evaluation names usable as file names and field paths.
var evalName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)

// evals resolves the evaluations, taken whole from the first layer that
// writes them: a map by name or a list; each item's unset fields come from
// #Defaults.eval. Names are unique: two evaluations of one task need two
// names.
func (r *resolver) evals() []ir.Eval {
	i := r.layerOf(true, "eval")
	if i < 0 {
		return nil
	}
	h, _ := r.from(i, "eval")
	l := r.layers[i]
	var out []ir.Eval
	first := map[string]string{}
	add := func(field string, full, written cue.Value, name string, named bool) {
		item := &resolver{c: r.c, run: r.run, owner: l.run, prefix: join(r.prefix, field), tok: r.tok, layers: []layer{
			{user: written, full: full, run: l.run, prefix: join(l.prefix, field), root: r.c.valuePos(written)},
			{full: r.c.defaults.LookupPath(fieldPath("eval")), isDefault: true},
		}}
		e := item.eval()
		e.Field = field
		if !named {
			name = e.Task
			if nh, ok := item.get("name"); ok {
				name, _ = item.str(nh)
				named = true
			}
		}
		at := ir.FieldPath(l.run, join(l.prefix, field))
		pos := r.c.valuePos(written)
		if nh, ok := item.get("name"); ok && field != "" && !strings.HasPrefix(field, "eval[") {
			r.c.errs.add(nh.pos, nh.path, "a map's key names its evaluation; name is for list items")
		}
		switch {
		case name == "":
			// The task is missing or bad, reported.
		case !evalName.MatchString(name):
			r.c.errs.add(pos, at, "evaluation name %q must match %s (it names a results column and samples/%s.jsonl)", name, evalName, name)
		case first[name] != "":
			how := "give one another name"
			if !named {
				how = "name them with name, or write eval as a map by name"
			}
			r.c.errs.add(pos, at, "evaluation name %q is already %s; %s", name, first[name], how)
		default:
			first[name] = field
		}
		e.Name = name
		out = append(out, e)
	}
	if h.v.IncompleteKind() == cue.StructKind {
		it, err := h.v.Fields()
		if !r.decoded(h, err) {
			return nil
		}
		for it.Next() {
			name := it.Selector().Unquoted()
			label := name
			if !evalName.MatchString(name) {
				label = strconv.Quote(name) // reported below
			}
			add("eval."+label, it.Value(), h.w.LookupPath(cue.MakePath(cue.Str(name))), name, true)
		}
		return out
	}
	items, written, ok := r.list(h)
	if !ok {
		return nil
	}
	for j := range items {
		add(fmt.Sprintf("eval[%d]", j), items[j], written[j], "", false)
	}
	return out
}

func (r *resolver) eval() ir.Eval {
	var e ir.Eval
	// An unknown task is reported once; the other checks go by what was
	// written, so a misspelt multiple-choice task is not asked for seqLen.
	written := "perplexity"
	if h, ok := r.need("task"); ok {
		e.Task = r.name(h, r.c.tasks)
		if s, ok := r.str(h); ok {
			written = s
		}
	}
	e.Data = r.data("data")
	if h, ok := r.get("samples"); ok {
		e.Samples, _ = r.int(h)
	}
	gen, isGen := r.c.genDefs[e.Task]
	if !isGen {
		for _, f := range genSettings {
			if h, ok := r.get(f); ok && !h.def {
				r.c.errs.add(h.pos, h.path, "%s applies to generation tasks; task is %q", f, written)
			}
		}
	}
	if written == "perplexity" {
		r.multipleChoiceOnly(e.Data, "data", "perplexity")
		r.checkRecords(e.Data, "data")
		if h, ok := r.need("seqLen"); ok {
			e.SeqLen, _ = r.int(h)
		}
		for _, f := range []string{"fewshot", "seed"} {
			if h, ok := r.get(f); ok {
				r.c.errs.add(h.pos, h.path, "%s applies to multiple-choice tasks; task is %q", f, e.Task)
			}
		}
		return e
	}
	// A multiple-choice task reads its jsonl file whole unless told
	// otherwise: the held-out default split is perplexity's.
	if h, ok := r.get("seqLen"); ok && !h.def {
		r.c.errs.add(h.pos, h.path, "seqLen is perplexity's window length; task %q scores each item whole", written)
	}
	switch h, ok := r.get("data.format"); {
	case !ok || h.def:
	case strings.HasPrefix(e.Data.Path, hfdataset.Prefix):
		r.c.errs.add(h.pos, h.path, "a Hugging Face dataset is read from its parquet files; format applies to files")
	case e.Data.Format != "jsonl":
		r.c.errs.add(h.pos, h.path, "task %q reads jsonl (one item per line); format is %q", written, e.Data.Format)
	}
	e.Data.Format, e.Data.Field, e.Data.Template, e.Data.Thinking = "jsonl", "", "", nil
	if e.Data.Dataset != nil {
		e.Data.Format = "parquet"
	}
	if fh, ok := r.get("data.split.from"); ok && fh.def {
		if th, ok := r.get("data.split.to"); ok && th.def {
			e.Data.Split = ir.Split{From: 0, To: 1}
		}
	}
	if def, ok := r.c.taskDefs[e.Task]; ok {
		e.Def = &def
	}
	if isGen {
		e.Gen = r.genSettings(gen)
		if gen.seed != nil {
			e.Seed = *gen.seed
		}
	}
	if h, ok := r.get("fewshot"); ok {
		e.Fewshot, _ = r.int(h)
	}
	if h, ok := r.get("seed"); ok {
		seed, err := h.v.Int64()
		if r.decoded(h, err) {
			e.Seed = seed
		}
	}
	return e
}

func (r *resolver) output() ir.Output {
	var o ir.Output
	if h, ok := r.get("output.dir"); ok {
		if s, ok := r.str(h); ok {
			if !filepath.IsAbs(s) {
				// lrmc replaces run directories whole, so a relative path
				// that climbs out of the recipe's directory would let a
				// recipe copied elsewhere overwrite someone else's tree.
				// Writing outside is allowed, but only said plainly.
				if rel := filepath.Clean(s); rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
					r.c.errs.add(h.pos, h.path, "%q leaves the recipe's directory; a relative output.dir must stay inside it (write an absolute path to put outputs elsewhere)", s)
				}
				s = filepath.Join(r.c.dir, s)
			}
			o.Dir = filepath.Clean(s)
		}
	}
	if h, ok := r.get("output.formats"); ok {
		items, written, ok := r.list(h)
		if !ok {
			return o
		}
		o.Formats = []string{}
		first := map[string]int{}
		for j, v := range items {
			ih := r.item(h, "output.formats", j, v, written[j])
			s := r.name(ih, outputFormats)
			if s == "" {
				continue
			}
			if k, dup := first[s]; dup {
				r.c.errs.add(ih.pos, ih.path, "format %q is already formats[%d]", s, k)
				continue
			}
			first[s] = j
			o.Formats = append(o.Formats, s)
		}
	}
	if h, ok := r.get("output.dtype"); ok {
		o.DType, _ = r.oneOf(h, "dtype", "dtypes", dtypes)
		// llama2.c files are float32 whatever dtype says; a dtype written
		// for them alone would be silently ignored.
		if o.DType != "" && o.DType != "float32" && !h.def && o.Formats != nil &&
			!slices.Contains(o.Formats, "hf") && !slices.Contains(o.Formats, "gguf") && !slices.Contains(o.Formats, "slicegpt") {
			r.c.errs.add(h.pos, h.path, "dtype %q applies to hf, gguf and slicegpt exports, and formats has none of them", o.DType)
		}
	}
	return o
}

// recordWritten records the position of every field written at the top
// level (runs record their resolved fields as they are merged).
func (c *compiler) recordWritten(v cue.Value, path string) {
	switch v.IncompleteKind() {
	case cue.StructKind:
		it, err := v.Fields()
		if err != nil {
			return
		}
		for it.Next() {
			name := it.Selector().Unquoted()
			if path == "" && name == "runs" {
				continue
			}
			p := join(path, name)
			c.positions[p] = c.valuePos(it.Value())
			c.recordWritten(it.Value(), p)
		}
	case cue.ListKind:
		it, err := v.List()
		if err != nil {
			return
		}
		for i := 0; it.Next(); i++ {
			p := fmt.Sprintf("%s[%d]", path, i)
			c.positions[p] = c.valuePos(it.Value())
			c.recordWritten(it.Value(), p)
		}
	}
}
