package compiler

import (
	"lrmc/compiler/ir"
	"lrmc/methods/spec"
)

// checkModelForms rejects what a run's pruned model cannot go through:
// a method whose spec names a ModelForm (width/slicegpt's sliced model,
// with shortcut matrices between blocks) makes a model that only
// perplexity evaluates and only the output format of that name writes;
// multiple-choice tasks, recovery and the Llama output formats need a
// Llama model. Conversely, a model form's output format cannot write the
// other runs' models. A method's RunCheck rejects what else its model
// cannot go through.
func (c *compiler) checkModelForms(rec *ir.Recipe) {
	for _, run := range rec.Runs {
		s, _ := spec.Lookup(run.Prune.Paradigm, run.Prune.Method)
		if s.RunCheck != nil {
			s.RunCheck(run, func(field, format string, args ...any) {
				c.errs.add(c.posOf(run.Name, field), ir.FieldPath(run.Name, field), format, args...)
			})
		}
		form := s.ModelForm
		if form == "" {
			for _, f := range rec.Output.Formats {
				if isModelForm(f) {
					c.errs.add(c.posOf("", "output.formats"), "output.formats",
						"output format %q writes %s models only; run %q is %s", f, formOwners(f), run.Name, methodName(run))
				}
			}
			continue
		}
		for _, e := range run.Eval {
			if e.MultipleChoice() {
				c.errs.add(c.posOf(run.Name, e.Field+".task"), ir.FieldPath(run.Name, e.Field+".task"),
					"task %q scores a Llama model; %s makes a %s model, which lrmc evaluates by perplexity only",
					e.Task, s.Key(), form)
			}
		}
		if m := run.Recovery.Method; m != "" && m != "none" {
			c.errs.add(c.posOf(run.Name, "recovery.method"), ir.FieldPath(run.Name, "recovery.method"),
				"recovery %q trains a Llama model; %s makes a %s model, which lrmc cannot train", m, s.Key(), form)
		}
		for _, f := range rec.Output.Formats {
			if f != form {
				c.errs.add(c.posOf("", "output.formats"), "output.formats",
					"output format %q cannot hold run %q's %s model (shortcut matrices between blocks, widths that "+
						"differ from block to block); write formats: [%q], lrmc's own layout, which transformers and "+
						"llama.cpp cannot load", f, run.Name, form, form)
			}
		}
	}
}

// posOf is where a run's field was written: in the run, else at the top
// level, else the recipe file.
func (c *compiler) posOf(run, field string) ir.Pos {
	if p, ok := c.positions[ir.FieldPath(run, field)]; ok {
		return p
	}
	if p, ok := c.positions[field]; ok {
		return p
	}
	return ir.Pos{File: c.file}
}

func isModelForm(format string) bool { return formOwners(format) != "" }

// formOwners names the methods whose model form is format.
func formOwners(format string) string {
	for _, s := range spec.All() {
		if s.ModelForm == format {
			return s.Key()
		}
	}
	return ""
}

func methodName(run ir.Run) string {
	if run.Prune.Paradigm == "" || run.Prune.Paradigm == "none" {
		return "not pruned"
	}
	return run.Prune.Paradigm + "/" + run.Prune.Method
}
