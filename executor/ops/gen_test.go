package ops_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"lrmc/compiler/ir"
	"lrmc/executor"
	"lrmc/executor/ops"
	"lrmc/internal/shareddata"
	"lrmc/kernels/generate"
	"lrmc/kernels/geneval"
	"lrmc/kernels/hf"
	"lrmc/kernels/synth"
	"lrmc/methods/depth"
	"lrmc/planner"
)

// gsm8kEval is the built-in gsm8k task (schema #Tasks) on the first
// samples items of the shared test file, greedy.
func gsm8kEval(t *testing.T, samples, maxNew int) ir.Eval {
	return ir.Eval{Name: "gsm8k", Task: "gsm8k", Samples: samples,
		Data: ir.Data{Path: shareddata.Path(t, "text", "gsm8k", "test.jsonl"), Format: "jsonl", Split: ir.Split{From: 0, To: 1}},
		Gen: &ir.GenTask{Text: "Question: {{question}}\nAnswer:", Target: "{{answer}}",
			Stop: []string{"Question:", "</s>", "<|im_end|>"}, MaxNewTokens: maxNew, Extraction: "gsm8k", N: 1, TopP: 1}}
}

// storyEval is a task of the test's own: continue a story opening, scored
// by its first word, sampled n times at temperature 1 so that samples
// differ and pass@1 is a fraction.
func storyEval(t *testing.T, n int) ir.Eval {
	path := filepath.Join(t.TempDir(), "openings.jsonl")
	var b strings.Builder
	for _, d := range []struct{ q, a string }{
		{"Once upon a time, there was a little", "girl"},
		{"One day, a little girl named", "Lily"},
		{"Tom and his mom went to the", "park"},
		{"The cat saw a big", "dog"},
	} {
		line, _ := json.Marshal(map[string]string{"q": d.q, "a": d.a})
		b.Write(append(line, '\n'))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return ir.Eval{Name: "story", Task: "story", Seed: 11,
		Data: ir.Data{Path: path, Format: "jsonl", Split: ir.Split{From: 0, To: 1}},
		Gen: &ir.GenTask{Text: "{{q}}", Target: "{{a}}", Stop: []string{"."}, MaxNewTokens: 12, Extraction: "regex",
			Regex: `^\s*(\w+)`, IgnoreCase: true, N: n, Temperature: 1, TopP: 1}}
}

func readGenSamples(t *testing.T, path string) []ops.GenSample {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []ops.GenSample
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var s ops.GenSample
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func genMetrics(t *testing.T, res ops.Results, run, eval string) map[string]any {
	t.Helper()
	m := res.Dense
	if run != "dense" {
		m = res.Runs[run]
	}
	e, _ := m["tasks"].(map[string]any)[eval].(map[string]any)
	if e == nil {
		t.Fatalf("%s has no evaluation %s: %v", run, eval, m)
	}
	return e
}

// A generation evaluation of stories260K gives, sample for sample, what
// generate.Generate gives when called directly on the same prompt with
// the same options and seeds; pass@1 over three seeded samples equals an
// independent recount; a rerun runs nothing and adding gsm8k runs only
// its nodes.
func TestGenerationEval(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	story := storyEval(t, 3)
	rec := &recorder{}
	if err := apply(t, context.Background(), dir, withEvals(stories(t, out, 1), story), rec); err != nil {
		t.Fatal(err)
	}
	for op, want := range map[string]int{planner.OpGenItems: 1, planner.OpGenerate: 2, planner.OpGenScore: 2, planner.OpGenMetrics: 2} {
		if n := rec.started(op); n != want {
			t.Errorf("first apply ran %s %d times, want %d", op, n, want)
		}
	}
	var res ops.Results
	if err := json.Unmarshal(readResults(t, out), &res); err != nil {
		t.Fatal(err)
	}

	// The dense model, loaded as `lrmc generate` loads it.
	gm, err := generate.Load(shareddata.Path(t, "models", "stories260K", "stories260K.bin"), "", "")
	if err != nil {
		t.Fatal(err)
	}
	first := regexp.MustCompile(`^\s*(\w+)`)
	samples := readGenSamples(t, filepath.Join(out, "dense", "samples", "story.jsonl"))
	if len(samples) != 4 {
		t.Fatalf("%d samples, want 4", len(samples))
	}
	var pass float64
	distinct := map[string]bool{}
	for i, s := range samples {
		if len(s.Samples) != 3 || s.Doc != i {
			t.Fatalf("item %d: doc %d, %d samples", i, s.Doc, len(s.Samples))
		}
		ids := gm.Tok.EncodePrompt(s.Prompt)
		right := 0
		for k, o := range s.Samples {
			want, err := generate.Generate(context.Background(), gm.LM, gm.Tok, ids, generate.Options{
				MaxNew: 12, Temperature: 1, TopP: 1, Seed: geneval.SampleSeed(11, i, k), Stop: []string{"."}, EOS: gm.EOS})
			if err != nil {
				t.Fatal(err)
			}
			if o.Text != want.Text || o.Stop != string(want.Reason) || o.Tokens != len(want.IDs) {
				t.Errorf("item %d sample %d: %q (%s, %d tokens), generate gives %q (%s, %d)", i, k, o.Text, o.Stop, o.Tokens, want.Text, want.Reason, len(want.IDs))
			}
			distinct[o.Text] = true
			// The recount: the first word, case folded, against the target.
			m := first.FindStringSubmatch(want.Text)
			ok := m != nil && strings.EqualFold(m[1], s.Target)
			if ok != o.Correct["regex"] {
				t.Errorf("item %d sample %d: %q judged %v against %q", i, k, want.Text, o.Correct["regex"], s.Target)
			}
			if ok {
				right++
			}
			if o.AnswerTokens != o.Tokens || o.ThinkTokens != 0 || o.Truncated != (want.Reason == generate.StopMaxTokens) {
				t.Errorf("item %d sample %d: trace %+v for %d tokens, %s", i, k, o.Trace, o.Tokens, want.Reason)
			}
		}
		pass += float64(right) / 3
	}
	pass /= 4
	if len(distinct) < 6 {
		t.Errorf("only %d distinct texts among 12 samples at temperature 1", len(distinct))
	}
	e := genMetrics(t, res, "dense", "story")
	if got, _ := e["pass@1"].(float64); math.Abs(got-pass) > 1e-12 || e["items"] != 4.0 || e["n"] != 3.0 {
		t.Errorf("pass@1 %v over %v items × %v, recount %v", e["pass@1"], e["items"], e["n"], pass)
	}
	// Seeded, so always the same: 5 of the 12 samples start with the
	// target word, a fraction that a wrong average would miss.
	if math.Abs(pass-5.0/12) > 1e-12 {
		t.Errorf("pass@1 recount %v, want 5/12 as recorded when the test was written", pass)
	}

	// A rerun runs nothing and changes nothing.
	before := readResults(t, out)
	rec = &recorder{}
	if err := apply(t, context.Background(), dir, withEvals(stories(t, out, 1), story), rec); err != nil {
		t.Fatal(err)
	}
	if n := rec.started(""); n != 0 {
		t.Errorf("rerun ran %d ops, want 0", n)
	}
	if !bytes.Equal(before, readResults(t, out)) {
		t.Error("rerun changed results.json")
	}

	// Adding GSM8K runs its nodes and the reports, nothing else.
	rec = &recorder{}
	if err := apply(t, context.Background(), dir, withEvals(stories(t, out, 1), story, gsm8kEval(t, 4, 24)), rec); err != nil {
		t.Fatal(err)
	}
	for _, ev := range rec.events {
		if ev.Event != executor.EventStarted {
			continue
		}
		switch ev.Op {
		case planner.OpGenItems, planner.OpGenerate, planner.OpGenScore, planner.OpGenMetrics:
			if !strings.HasPrefix(ev.Label, "gsm8k ") {
				t.Errorf("adding gsm8k ran %s %q", ev.Op, ev.Label)
			}
		case planner.OpMetrics, planner.OpResults, planner.OpModelLoad, depth.OpApply:
		default:
			t.Errorf("adding gsm8k ran %s %q", ev.Op, ev.Label)
		}
	}
	if n := rec.started(planner.OpGenerate); n != 2 {
		t.Errorf("adding gsm8k generated %d times, want 2 (dense and shortgpt-1)", n)
	}

	// GSM8K's greedy texts are generate's too, for the pruned model as
	// well (its samples against the dense model's show the pruning).
	if err := json.Unmarshal(readResults(t, out), &res); err != nil {
		t.Fatal(err)
	}
	for _, run := range []string{"dense", "shortgpt-1"} {
		gs := readGenSamples(t, filepath.Join(out, run, "samples", "gsm8k.jsonl"))
		if len(gs) != 4 {
			t.Fatalf("%s: %d gsm8k samples", run, len(gs))
		}
		var strict, tokens float64
		for i, s := range gs {
			if !strings.HasPrefix(s.Prompt, "Question: ") || !strings.HasSuffix(s.Prompt, "\nAnswer:") || !strings.Contains(s.Target, "#### "+s.Gold) {
				t.Errorf("%s item %d: prompt %q target %q gold %q", run, i, s.Prompt, s.Target, s.Gold)
			}
			if run == "dense" {
				want, err := generate.Generate(context.Background(), gm.LM, gm.Tok, gm.Tok.EncodePrompt(s.Prompt), generate.Options{
					MaxNew: 24, Stop: []string{"Question:", "</s>", "<|im_end|>"}, EOS: gm.EOS})
				if err != nil {
					t.Fatal(err)
				}
				if s.Samples[0].Text != want.Text || s.Samples[0].Stop != string(want.Reason) {
					t.Errorf("gsm8k item %d: %q, generate gives %q", i, s.Samples[0].Text, want.Text)
				}
			}
			if s.Samples[0].Correct["strict"] {
				strict++
			}
			tokens += float64(s.Samples[0].Tokens)
		}
		e := genMetrics(t, res, run, "gsm8k")
		if e["exact_match_strict"] != strict/4 || e["tokens_mean"] != tokens/4 || e["think_tokens_mean"] != 0.0 {
			t.Errorf("%s: metrics %v, samples say strict %v, tokens %v", run, e, strict/4, tokens/4)
		}
		for _, k := range []string{"exact_match_flexible", "pass@1", "answer_tokens_mean", "think_closed_rate", "truncated_rate", "think_tokens_median"} {
			if _, ok := e[k].(float64); !ok {
				t.Errorf("%s: no %s in %v", run, k, e)
			}
		}
	}
}

// qwen3Checkpoint writes a small Qwen3-shaped checkpoint with seeded
// random weights and the real Qwen3 tokenizer files (chat template
// included) into dir.
func qwen3Checkpoint(t *testing.T, dir string) {
	t.Helper()
	tokDir := shareddata.Path(t, "tokenizers", "qwen3")
	m, cfg, err := synth.New(synth.Spec{Arch: "qwen3", Layers: 2, Dim: 32, Heads: 4, KVHeads: 2, HeadDim: 8,
		FFN: 64, Vocab: 151669, SeqLen: 512, Tie: true, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := hf.Save(dir, m, cfg, "float32", 0); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"tokenizer.json", "tokenizer_config.json"} {
		b, err := os.ReadFile(filepath.Join(tokDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// With chat on, the prompt is the user's message rendered with the
// model's own template (Qwen3's, from its tokenizer_config.json) and the
// generation prompt, thinking on or off as transformers'
// apply_chat_template(enable_thinking=…) renders it; the generation is
// what `lrmc generate --chat` generates.
func TestGenerationChatQwen3(t *testing.T) {
	model := filepath.Join(t.TempDir(), "qwen3-tiny")
	qwen3Checkpoint(t, model)
	dir, out := t.TempDir(), t.TempDir()
	gsm := gsm8kEval(t, 2, 6)
	on, off := true, false
	chat := func(name string, thinking *bool) ir.Eval {
		e := gsm
		g := *e.Gen
		g.Chat, g.Thinking = true, thinking
		e.Name, e.Gen = name, &g
		return e
	}
	r := &ir.Recipe{File: "test.cue", Dense: true, DenseModel: ir.Model{Path: model, Format: "auto"},
		DenseEval: []ir.Eval{chat("think", &on), chat("nothink", &off), gsm}, Output: ir.Output{Dir: out}}
	if err := apply(t, context.Background(), dir, r, &recorder{}); err != nil {
		t.Fatal(err)
	}
	gm, err := generate.Load(model, "", "")
	if err != nil {
		t.Fatal(err)
	}
	plain := readGenSamples(t, filepath.Join(out, "dense", "samples", "gsm8k.jsonl"))
	for _, tc := range []struct {
		name     string
		thinking bool
		tail     string
	}{
		{"think", true, ""},
		{"nothink", false, "<think>\n\n</think>\n\n"},
	} {
		samples := readGenSamples(t, filepath.Join(out, "dense", "samples", tc.name+".jsonl"))
		for i, s := range samples {
			user := plain[i].Prompt
			want := "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n" + tc.tail
			if s.Prompt != want {
				t.Errorf("%s item %d: prompt %q, want %q", tc.name, i, s.Prompt, want)
			}
			thinking := tc.thinking
			text, err := gm.RenderChat(user, generate.ChatOptions{Thinking: &thinking})
			if err != nil {
				t.Fatal(err)
			}
			g, err := generate.Generate(context.Background(), gm.LM, gm.Tok, gm.Tok.EncodeRendered(text), generate.Options{
				MaxNew: 6, Stop: gsm.Gen.Stop, EOS: gm.EOS})
			if err != nil {
				t.Fatal(err)
			}
			if o := s.Samples[0]; o.Text != g.Text || o.Tokens != len(g.IDs) || o.Stop != string(g.Reason) {
				t.Errorf("%s item %d: %q (%d tokens, %s), generate --chat gives %q (%d, %s)", tc.name, i, o.Text, o.Tokens, o.Stop, g.Text, len(g.IDs), g.Reason)
			}
		}
	}
}
