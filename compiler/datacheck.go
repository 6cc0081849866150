package compiler

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"lrmc/compiler/ir"
)

// Checks of data against the files and the model named beside it: what
// apply would otherwise find only while it reads the data, without the
// recipe's position.

// maxRecordLine bounds the first record vet reads of a JSON-lines file.
const maxRecordLine = 16 << 20

// checkRecords reads the first record of jsonl data and reports a field
// that holds no text there (field defaults to "text", which a file of
// other records does not have). Data that does not parse is reported at
// its path.
func (r *resolver) checkRecords(d ir.Data, field string) {
	if d.Format != "jsonl" || d.Path == "" || d.Dataset != nil || d.Field == "" {
		return
	}
	if st, err := os.Stat(d.Path); err != nil || !st.Mode().IsRegular() {
		return // reported where the path is checked (a pipe would block)
	}
	line, n, err := firstLine(d.Path)
	if err != nil || line == nil {
		return // unreadable files are reported where the path is checked; an empty one by apply
	}
	ph, _ := r.get(field + ".path")
	if line[0] != '{' || !json.Valid(line) {
		r.c.errs.add(ph.pos, ph.path, "%s:%d: format \"jsonl\" wants one JSON object per line; this line is not one", d.Path, n)
		return
	}
	var rec map[string]json.RawMessage
	if err := json.Unmarshal(line, &rec); err != nil {
		r.c.errs.add(ph.pos, ph.path, "%s:%d: %v", d.Path, n, err)
		return
	}
	at, ok := r.get(field + ".field")
	if !ok || at.def {
		at, _ = r.get(field + ".format")
	}
	raw, ok := rec[d.Field]
	if !ok {
		var strs []string
		for k, v := range rec {
			if len(v) > 0 && v[0] == '"' {
				strs = append(strs, k)
			}
		}
		slices.Sort(strs)
		hint := "it has no string field"
		if len(strs) > 0 {
			hint = "its string fields: " + strings.Join(strs, ", ")
		}
		r.c.errs.add(at.pos, at.path, "%s:%d: the record has no field %q (%s); set field to the one holding the text", d.Path, n, d.Field, hint)
		return
	}
	if raw[0] != '"' {
		r.c.errs.add(at.pos, at.path, "%s:%d: field %q is not a string; set field to the one holding the text", d.Path, n, d.Field)
	}
}

// firstLine returns the first non-blank line of the file at path and its
// number; nil at the end of the file.
func firstLine(path string) ([]byte, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(io.LimitReader(f, maxRecordLine), 1<<16)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if t := bytes.TrimSpace(line); len(t) > 0 {
			return t, n, nil
		}
		if errors.Is(err, io.EOF) {
			return nil, n, nil
		}
		if err != nil {
			return nil, n, err
		}
	}
}

// tokenizerOf is the path holding a model's tokenizer: the one named, else
// the checkpoint's own.
func tokenizerOf(m ir.Model) string {
	if m.Tokenizer != "" {
		return m.Tokenizer
	}
	return m.Path
}

// checkTemplate reports data rendered with the model's chat template
// (chat and instruction data) when the tokenizer has none, where the
// format (or the template) was written.
func (r *resolver) checkTemplate(d ir.Data, field string) {
	if d.Template != "model" || r.tok == "" {
		return
	}
	why := noTemplate(r.tok)
	if why == "" {
		return
	}
	at, ok := r.get(field + ".template")
	if !ok || at.def {
		at, _ = r.get(field + ".format")
	}
	r.c.errs.add(at.pos, at.path, "%s data is rendered with the model's chat template, and %s", d.Format, why)
}

// checkOverlap reports perplexity evaluations that read documents the run
// calibrates on (the same file, overlapping splits): held-out text must be
// disjoint. The plan repeats the check by content, for two copies of one
// file; it finds the position recorded here under data.split.
func (r *resolver) checkOverlap(run ir.Run) {
	cal := run.Calibration.Data
	for _, e := range run.Eval {
		if e.Task != "perplexity" {
			continue
		}
		key := e.Field + ".data.split"
		pos, path := r.c.whereWritten(run.Name, key+".from", key+".to", "calibration.data.split.from",
			"calibration.data.split.to", e.Field+".data.path", e.Field)
		if _, ok := r.c.positions[ir.FieldPath(run.Name, key)]; !ok && pos.Line > 0 {
			r.c.positions[ir.FieldPath(run.Name, key)] = pos
		}
		if run.Prune.Paradigm == "" || run.Prune.Paradigm == "none" || !sameFile(cal.Path, e.Data.Path) {
			continue
		}
		a, b := cal.Split, e.Data.Split
		if a.From < b.To && b.From < a.To {
			r.c.errs.add(pos, path, "evaluation documents [%g, %g) overlap the calibration documents [%g, %g) of the same file; held-out text must be disjoint",
				b.From, b.To, a.From, a.To)
		}
	}
}

// whereWritten is the position and path of the first of a run's fields
// (compiler field paths) that the recipe wrote: in the run, or at the top
// level when the run inherits it.
func (c *compiler) whereWritten(run string, fields ...string) (ir.Pos, string) {
	for _, f := range fields {
		p, ok := c.positions[ir.FieldPath(run, f)]
		if !ok {
			continue
		}
		if top, ok := c.positions[f]; ok && top == p {
			return p, f
		}
		return p, ir.FieldPath(run, f)
	}
	return ir.Pos{File: c.file}, ir.FieldPath(run, fields[len(fields)-1])
}

func sameFile(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	if a == b {
		return true
	}
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// noTemplateForData is the message for chat or instruction data with
// template "none".
func noTemplateForData(format string) string {
	return fmt.Sprintf("template \"none\" reads plain text, and %s data is conversations, which lrmc renders only with "+
		"the model's chat template; leave template out (it is \"model\" for %s data), or read a field of each record "+
		"as plain text with format \"jsonl\" and field", format, format)
}
