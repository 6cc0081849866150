package compiler

import (
	"fmt"
	"strings"

	"cuelang.org/go/cue"

	"lrmc/compiler/ir"
)

// Fields of #Recovery that belong to one value of a tag: the LoRA settings
// to method "lora", the distillation settings to loss "kd". lr belongs to
// every method, because its default is the method's.
var (
	loraFields = []string{"rank", "alpha", "dropout", "targets"}
	kdFields   = []string{"temperature", "topK"}
)

// recovery resolves the training that follows pruning. The top level's
// recovery merges into the run field by field, as calibration does, except
// where method and loss act as tags:
//
//   - method "none" trains nothing: the layer that sets it takes nothing
//     from less specific layers, and any other field written with it (or
//     over it) is a mistake;
//   - fields that belong to a method (lr, the LoRA settings) or to a loss
//     (the distillation settings) are inherited only from layers that do
//     not write another method or loss, so a run that switches the top
//     level's "lora" to "full" takes neither its rank nor its lr along.
//
// Defaults come from #Defaults.recovery, and for the chosen method and loss
// from #Defaults.recoveryMethod and #Defaults.recoveryLoss; fields of
// another method or loss stay zero.
//
// The data default to the run's calibration data, and data written
// without a split to the calibration's split (cal, when hasCal).
func (r *resolver) recovery(cal ir.Calibration, hasCal bool) ir.Recovery {
	mh, _ := r.get("recovery.method") // #Defaults sets it
	method := r.name(mh, recoveryMethods)
	switch method {
	case "":
		return ir.Recovery{} // reported
	case "none":
		r.noRecovery(mh)
		return ir.Recovery{Method: "none"}
	}
	rec := ir.Recovery{Method: method}

	switch {
	case r.has("recovery.data"):
		rec.Data = r.data("recovery.data")
		r.multipleChoiceOnly(rec.Data, "recovery.data", "recovery")
		if hasCal && !r.has("recovery.data.split.from") && !r.has("recovery.data.split.to") {
			rec.Data.Split = cal.Data.Split
		}
		r.checkRecords(rec.Data, "recovery.data")
	case hasCal:
		rec.Data = cal.Data
	default:
		r.missing("recovery.data", "field is required but not present: method %s trains on data, "+
			"the calibration data when not set, and this run has no calibration", method)
	}
	if h, ok := r.get("recovery.steps"); ok {
		rec.Steps, _ = r.int(h)
	} else {
		r.missing("recovery.steps", "field is required but not present: method %s trains for this many optimizer steps", method)
	}
	for _, f := range []struct {
		name string
		dst  *int
	}{
		{"batch", &rec.Batch},
		{"accumulation", &rec.Accumulation},
		{"seqLen", &rec.SeqLen},
		{"checkpointEvery", &rec.CheckpointEvery},
	} {
		if h, ok := r.get("recovery." + f.name); ok {
			*f.dst, _ = r.int(h)
		}
	}
	for _, f := range []struct {
		name string
		dst  *float64
	}{
		{"warmup", &rec.Warmup},
		{"weightDecay", &rec.WeightDecay},
		{"maxGradNorm", &rec.MaxGradNorm},
	} {
		if h, ok := r.get("recovery." + f.name); ok {
			*f.dst, _ = r.float(h)
		}
	}
	if h, ok := r.get("recovery.schedule"); ok {
		rec.Schedule = r.name(h, schedules)
	}
	if h, ok := r.get("recovery.seed"); ok {
		seed, err := h.v.Int64()
		if r.decoded(h, err) {
			rec.Seed = seed
		}
	}

	m := r.tagged("method", method, "recoveryMethod")
	if h, ok := m.get("recovery.lr"); ok {
		rec.LR, _ = m.float(h)
	}
	m.lora(&rec, mh)

	lh, _ := r.get("recovery.loss") // #Defaults sets it
	if rec.Loss = r.name(lh, losses); rec.Loss != "" {
		r.tagged("loss", rec.Loss, "recoveryLoss").kd(&rec, lh)
	}
	return rec
}

// noRecovery reports the fields written beside method "none", or over it
// in a more specific layer; less specific layers belong to another choice.
// With no method written anywhere, "none" is the default and every
// written field is reported, as a recovery the user forgot to switch on.
func (r *resolver) noRecovery(mh hit) {
	msg := "method none trains nothing and takes no %s"
	if mh.def {
		msg = "method is none by default, which trains nothing and takes no %s; set method \"lora\" or \"full\""
	}
	for _, l := range r.layers[:r.layerOf(false, "recovery.method")+1] {
		if l.isDefault || !l.sets(fieldPath("recovery")) {
			continue
		}
		it, err := l.user.LookupPath(fieldPath("recovery")).Fields()
		if err != nil {
			continue // not a struct: the schema has reported it
		}
		for it.Next() {
			name := it.Selector().Unquoted()
			path := ir.FieldPath(l.run, join(l.prefix, "recovery."+name))
			// A field the schema rejects (misspelt, out of range) is
			// reported once, by the schema.
			if name == "method" || r.c.cueErrorUnder(path) {
				continue
			}
			r.c.errs.add(r.c.valuePos(it.Value()), path, msg, name)
		}
	}
}

// tagged returns a resolver for the fields that belong to value of tag
// ("method" or "loss"): the written layers down to the first that writes
// another value, then the defaults #Defaults.<defaults>.<value>.
func (r *resolver) tagged(tag, value, defaults string) *resolver {
	t := &resolver{c: r.c, run: r.run, prefix: r.prefix, owner: r.owner}
	p := fieldPath("recovery." + tag)
	for _, l := range r.layers {
		if l.isDefault {
			continue
		}
		if l.sets(p) {
			if s, err := l.full.LookupPath(p).String(); err != nil || s != value {
				break
			}
		}
		t.layers = append(t.layers, l)
	}
	d := r.c.defaults.LookupPath(cue.MakePath(cue.Str(defaults), cue.Str(value)))
	t.layers = append(t.layers, layer{
		full:      r.c.ctx.CompileString("{}").FillPath(fieldPath("recovery"), d),
		isDefault: true,
	})
	return t
}

// lora resolves the LoRA settings, or reports those written for a method
// that has none.
func (r *resolver) lora(rec *ir.Recovery, mh hit) {
	for _, name := range loraFields {
		field := "recovery." + name
		h, ok := r.get(field)
		switch {
		case !ok:
			continue
		case rec.Method != "lora":
			r.otherTag(h, name, "method", "lora", mh, rec.Method)
			continue
		}
		switch name {
		case "rank":
			rec.Rank, _ = r.int(h)
		case "alpha":
			rec.Alpha, _ = r.float(h)
		case "dropout":
			rec.Dropout, _ = r.float(h)
		case "targets":
			rec.Targets = r.targets(h, field)
		}
	}
}

// targets decodes the projections LoRA adapts, each named once.
func (r *resolver) targets(h hit, field string) []string {
	items, written, ok := r.list(h)
	if !ok {
		return nil
	}
	var out []string
	first := map[string]int{}
	for j, v := range items {
		ih := r.item(h, field, j, v, written[j])
		s := r.name(ih, loraTargets)
		if s == "" {
			continue
		}
		if k, dup := first[s]; dup {
			r.c.errs.add(ih.pos, ih.path, "target %q is already targets[%d]", s, k)
			continue
		}
		first[s] = j
		out = append(out, s)
	}
	return out
}

// kd resolves the distillation settings, or reports those written for a
// loss that has none.
func (r *resolver) kd(rec *ir.Recovery, lh hit) {
	for _, name := range kdFields {
		h, ok := r.get("recovery." + name)
		switch {
		case !ok:
			continue
		case rec.Loss != "kd":
			r.otherTag(h, name, "loss", "kd", lh, rec.Loss)
			continue
		}
		switch name {
		case "temperature":
			rec.Temperature, _ = r.float(h)
		case "topK":
			rec.TopK, _ = r.int(h)
		}
	}
}

// otherTag reports field name, at h, written for tag value want while the
// run's is got (resolved at th). Where the tag was written elsewhere, the
// message says where, since the field's own layer may not mention it.
func (r *resolver) otherTag(h hit, name, tag, want string, th hit, got string) {
	msg := fmt.Sprintf("%s is a setting of %s %s; %s is %s", name, tag, want, tag, got)
	switch {
	case th.def:
		msg += " by default"
	case strings.TrimSuffix(th.path, tag) != strings.TrimSuffix(h.path, name):
		msg += " at " + th.path
	}
	r.c.errs.add(h.pos, h.path, "%s", msg)
}
