package compiler

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"cuelang.org/go/cue"

	"lrmc/compiler/ir"
	"lrmc/kernels/chattemplate"
	"lrmc/kernels/geneval"
	"lrmc/kernels/gguf"
)

// Generation tasks (schema #GenTask): decoded beside the multiple-choice
// tasks of resolveTasks, and their settings merged into each eval.

// genDef is a generation task with where its fields were written (empty
// for the built-in tasks), so an eval's error about a value it inherits
// from the task points at the task.
type genDef struct {
	task ir.GenTask
	seed *int64
	pos  map[string]ir.Pos
	at   ir.Pos // the task itself
	path string // "tasks.NAME", or "#Tasks.NAME" for a built-in task
}

// chatAt is where an evaluation turned chat on, and its path in messages.
type chatAt struct {
	pos  ir.Pos
	path string
}

// Task kinds (#Task's kind).
const (
	kindMC  = "multiple_choice"
	kindGen = "generation"
)

// mcOnly and genOnly are the #Task fields of one kind only.
var (
	mcOnly = []string{"choices", "choicesField", "gold", "preprocess"}
	// target is both: a generation's answer, or the one continuation a
	// multiple-choice task's choices share (WinoGrande).
	genOnly = []string{"stop", "extraction", "regex", "groupSelect", "ignoreCase", "ignorePunctuation",
		"maxNewTokens", "chat", "thinking", "n", "temperature", "topP", "seed"}
	// genSettings are the fields an eval may set over its task's.
	genSettings = []string{"maxNewTokens", "chat", "thinking", "n", "temperature", "topP"}
)

// taskKind reads a task's kind; ok is false (reported) for an unknown one.
func (c *compiler) taskKind(v, w cue.Value, path string, at ir.Pos) (string, bool) {
	k := v.LookupPath(fieldPath("kind"))
	if !k.Exists() {
		return kindMC, true
	}
	s, err := k.String()
	if err != nil {
		return "", false // the schema reports it
	}
	if s != kindMC && s != kindGen {
		c.errs.add(c.fieldPos(w, "kind", at), join(path, "kind"), "unknown task kind %q; kinds: %s, %s", s, kindMC, kindGen)
		return "", false
	}
	return s, true
}

// fieldPos is where field of a task was written, else at.
func (c *compiler) fieldPos(w cue.Value, field string, at ir.Pos) ir.Pos {
	if w.Exists() {
		if f := w.LookupPath(fieldPath(field)); f.Exists() {
			return c.valuePos(f)
		}
	}
	return at
}

// foreignFields reports the fields of the other kind a task sets.
func (c *compiler) foreignFields(v, w cue.Value, path string, at ir.Pos, kind string, fields []string) bool {
	ok := true
	for _, f := range fields {
		if v.LookupPath(fieldPath(f)).Exists() {
			what := "generation tasks (kind: \"generation\")"
			if kind == kindGen {
				what = "multiple-choice tasks"
			}
			c.errs.add(c.fieldPos(w, f, at), join(path, f), "%s applies to %s; this task's kind is %q", f, what, kind)
			ok = false
		}
	}
	return ok
}

// genTask decodes and checks a generation task; ok is false when it was
// reported.
func (c *compiler) genTask(name string, v, w cue.Value, path string, at ir.Pos) (genDef, bool) {
	d := genDef{pos: map[string]ir.Pos{}, at: at, path: path}
	ok := c.foreignFields(v, w, path, at, kindGen, mcOnly)
	g := &d.task
	lookup := func(field string) (cue.Value, bool) {
		f := v.LookupPath(fieldPath(field))
		if f.Exists() {
			d.pos[field] = c.fieldPos(w, field, at)
		}
		return f, f.Exists()
	}
	str := func(field string, dst *string) {
		if f, found := lookup(field); found {
			*dst, _ = f.String()
		}
	}
	boolean := func(field string, dst *bool) {
		if f, found := lookup(field); found {
			*dst, _ = f.Bool()
		}
	}
	str("text", &g.Text)
	str("target", &g.Target)
	str("delimiter", &g.Delimiter)
	str("fewshotDelimiter", &g.FewshotDelimiter)
	str("extraction", &g.Extraction)
	str("regex", &g.Regex)
	boolean("ignoreCase", &g.IgnoreCase)
	boolean("ignorePunctuation", &g.IgnorePunctuation)
	boolean("chat", &g.Chat)
	if f, found := lookup("groupSelect"); found {
		n, _ := f.Int64()
		g.GroupSelect = int(n)
	}
	if f, found := lookup("stop"); found {
		if err := f.Decode(&g.Stop); err != nil {
			return d, false // the schema reports it
		}
		for i, s := range g.Stop {
			if s == "" {
				c.errs.add(c.fieldPos(w, fmt.Sprintf("stop[%d]", i), d.pos["stop"]), fmt.Sprintf("%s[%d]", join(path, "stop"), i), "empty stop sequence")
				ok = false
			}
		}
	}
	if f, found := lookup("thinking"); found {
		b, _ := f.Bool()
		g.Thinking = &b
	}
	if f, found := lookup("seed"); found {
		s, _ := f.Int64()
		d.seed = &s
	}
	g.MaxNewTokens, g.N, g.TopP = 256, 1, 1
	if f, found := lookup("maxNewTokens"); found {
		n, _ := f.Int64()
		g.MaxNewTokens = int(n)
	}
	if f, found := lookup("n"); found {
		n, _ := f.Int64()
		g.N = int(n)
	}
	if f, found := lookup("temperature"); found {
		g.Temperature, _ = f.Float64()
	}
	if f, found := lookup("topP"); found {
		g.TopP, _ = f.Float64()
	}
	if g.Extraction == "" {
		g.Extraction = "exact"
	}
	for _, f := range []string{"text", "target"} {
		if _, found := lookup(f); !found {
			c.errs.add(at, join(path, f), "field is required but not present: a generation task needs text (the prompt) and target (the answer)")
			ok = false
		}
	}
	if !ok {
		return d, false
	}
	if _, err := geneval.NewPrompts(name, geneval.PromptSpec{Text: g.Text, Target: g.Target}); err != nil {
		field, _, _ := strings.Cut(err.Error(), ":")
		c.errs.add(orPos(d.pos[field], at), join(path, field), "%v", err)
		return d, false
	}
	if _, err := geneval.NewJudge(extractSpec(*g)); err != nil {
		field := "extraction"
		if g.Extraction == "regex" && strings.HasPrefix(err.Error(), "regex") {
			field = "regex"
		}
		for _, f := range []string{"regex", "groupSelect", "ignoreCase", "ignorePunctuation"} {
			if strings.HasPrefix(err.Error(), f) {
				field = f
			}
		}
		c.errs.add(orPos(d.pos[field], at), join(path, field), "%v", err)
		return d, false
	}
	return d, c.checkSettings(*g, d.pos, path, path)
}

// extractSpec is a task's extraction as geneval takes it.
func extractSpec(g ir.GenTask) geneval.ExtractSpec {
	return geneval.ExtractSpec{Extraction: g.Extraction, Regex: g.Regex, GroupSelect: g.GroupSelect,
		IgnoreCase: g.IgnoreCase, IgnorePunctuation: g.IgnorePunctuation}
}

// checkSettings checks the settings that constrain one another; pos says
// where each was written, paths (task's or eval's) name them.
func (c *compiler) checkSettings(g ir.GenTask, pos map[string]ir.Pos, taskPath, evalPath string) bool {
	ok := true
	where := func(field string) (ir.Pos, string) {
		if p, found := pos["eval:"+field]; found {
			return p, join(evalPath, field)
		}
		return pos[field], join(taskPath, field)
	}
	if g.Thinking != nil && !g.Chat {
		p, path := where("thinking")
		c.errs.add(p, path, "thinking is passed to the model's chat template; chat is false")
		ok = false
	}
	if g.N > 1 && g.Temperature == 0 {
		// At whichever of the two the eval wrote: that edit made them
		// disagree.
		field := "n"
		if _, evalN := pos["eval:n"]; !evalN {
			if _, evalT := pos["eval:temperature"]; evalT {
				field = "temperature"
			}
		}
		p, path := where(field)
		c.errs.add(p, path, "n %d samples at temperature 0 repeat one greedy generation; set temperature above 0 or n to 1", g.N)
		ok = false
	}
	return ok
}

// genSettings merges an eval's generation settings over its task's
// definition and checks them.
func (r *resolver) genSettings(d genDef) *ir.GenTask {
	g := d.task
	g.Stop = append([]string(nil), g.Stop...)
	pos := map[string]ir.Pos{}
	for k, v := range d.pos {
		pos[k] = v
	}
	for _, f := range genSettings {
		h, ok := r.get(f)
		if !ok || h.def {
			continue
		}
		pos["eval:"+f] = h.pos
		switch f {
		case "maxNewTokens":
			g.MaxNewTokens, _ = r.int(h)
		case "n":
			g.N, _ = r.int(h)
		case "chat":
			g.Chat, _ = r.bool(h)
		case "thinking":
			b, _ := r.bool(h)
			g.Thinking = &b
		case "temperature":
			g.Temperature, _ = r.float(h)
		case "topP":
			g.TopP, _ = r.float(h)
		}
	}
	if !r.c.checkSettings(g, pos, d.path, r.msgPath("")) {
		return &g
	}
	if g.Chat {
		p := pos["chat"]
		if e, ok := pos["eval:chat"]; ok {
			p = e
		}
		r.c.chatPos[r.key("")] = chatAt{orPos(p, r.layers[0].root), r.msgPath("chat")}
	}
	return &g
}

// checkChat reports a generation evaluation that renders its prompt with
// a chat template when the model's tokenizer has none: a llama2.c
// tokenizer, a Hugging Face tokenizer_config.json without chat_template,
// or a GGUF file without tokenizer.chat_template.
func (c *compiler) checkChat(run string, m ir.Model, evals []ir.Eval) {
	for _, e := range evals {
		if e.Gen == nil || !e.Gen.Chat {
			continue
		}
		tok := m.Tokenizer
		if tok == "" {
			tok = m.Path
		}
		if tok == "" {
			continue // a missing model, reported
		}
		why := noTemplate(tok)
		if why == "" {
			continue
		}
		at, ok := c.chatPos[ir.FieldPath(run, e.Field)]
		if !ok {
			at = chatAt{ir.Pos{File: c.file}, ir.FieldPath(run, e.Field+".chat")}
		}
		c.errs.add(at.pos, at.path,
			"chat renders the prompt with the model's chat template, and %s; set chat: false", why)
	}
}

// noGGUFTemplate says why the GGUF file at path has no chat template, or
// "" when it has one or cannot tell (a file that does not open as GGUF is
// the plan's to report, which reads it as the model).
func noGGUFTemplate(path string, st fs.FileInfo) string {
	if !st.Mode().IsRegular() {
		return "" // reported where the path was checked
	}
	f, err := gguf.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, ok := f.Value("tokenizer.chat_template"); ok {
		return ""
	}
	return fmt.Sprintf("%s has no tokenizer.chat_template", path)
}

// noTemplate says why the tokenizer at path has no chat template, or ""
// when it has one or cannot tell yet.
func noTemplate(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return "" // reported where the path was checked
	}
	if !st.IsDir() {
		if strings.EqualFold(filepath.Ext(path), ".gguf") {
			return noGGUFTemplate(path, st)
		}
		return fmt.Sprintf("%s is a llama2.c model or tokenizer, which has none", path)
	}
	cfg := filepath.Join(path, "tokenizer_config.json")
	_, _, err = chattemplate.FromTokenizerConfig(cfg)
	switch {
	case err == nil:
		return ""
	case errors.Is(err, chattemplate.ErrNoTemplate):
		return fmt.Sprintf("%s has no chat_template", cfg)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("%s has no tokenizer_config.json with a chat_template", path)
	}
	return ""
}
