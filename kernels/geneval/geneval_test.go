package geneval

import (
	"math"
	"strings"
	"testing"

	"lrmc/kernels/answer"
	"lrmc/kernels/mceval"
	"lrmc/kernels/thinktrace"
)

// gsm8kPrompts is the built-in gsm8k task's templates (schema #Tasks).
var gsm8kPrompts = PromptSpec{Text: "Question: {{question}}\nAnswer:", Target: "{{answer}}"}

func docs(n int) []mceval.Doc {
	out := make([]mceval.Doc, n)
	for i := range out {
		out[i] = mceval.Doc{"question": "q" + string(rune('a'+i)), "answer": "w\n#### " + string(rune('0'+i))}
	}
	return out
}

// Few-shot examples are written as lm-eval writes them (text, " ",
// target, "\n\n") and drawn as the multiple-choice tasks draw theirs.
func TestItemsFewshot(t *testing.T) {
	p, err := NewPrompts("gsm8k", gsm8kPrompts)
	if err != nil {
		t.Fatal(err)
	}
	ds := docs(6)
	items, err := p.Items(ds, 3, 2, 9)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 {
		t.Fatalf("%d items, want 3", len(items))
	}
	for i, it := range items {
		var want strings.Builder
		for _, j := range mceval.FewshotIndices(9, 6, 2, i) {
			if j == i {
				t.Fatalf("item %d is its own example", i)
			}
			want.WriteString("Question: " + ds[j]["question"].(string) + "\nAnswer: " + ds[j]["answer"].(string) + "\n\n")
		}
		want.WriteString("Question: " + ds[i]["question"].(string) + "\nAnswer:")
		if it.Prompt != want.String() || it.Target != ds[i]["answer"] || it.Doc != i {
			t.Errorf("item %d: %+v, want prompt %q", i, it, want.String())
		}
	}
	zero, err := p.Items(ds, 0, 0, 9)
	if err != nil || len(zero) != 6 || zero[5].Prompt != "Question: qf\nAnswer:" {
		t.Fatalf("0-shot, all documents: %v %+v", err, zero)
	}
	for _, tc := range []struct {
		samples, k int
		want       string
	}{
		{7, 0, "7 samples asked for but the data has 6 documents"},
		{0, 6, "6 few-shot examples need more than the 6 documents"},
	} {
		if _, err := p.Items(ds, tc.samples, tc.k, 1); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Items(%d, %d): %v, want %q", tc.samples, tc.k, err, tc.want)
		}
	}
	if _, err := p.Items([]mceval.Doc{{"question": "x"}}, 0, 0, 0); err == nil || !strings.Contains(err.Error(), `document 0: field "answer" is missing`) {
		t.Errorf("missing target field: %v", err)
	}
}

func TestNewPromptsErrors(t *testing.T) {
	for _, tc := range []struct {
		spec PromptSpec
		want string
	}{
		{PromptSpec{Text: "{{q | upper}}", Target: "{{a}}"}, "text: template"},
		{PromptSpec{Text: "{{q}}", Target: ""}, "target: empty template"},
		{PromptSpec{Text: "", Target: "{{a}}"}, "text: empty template"},
		{PromptSpec{Text: "{{q}}", Target: "{{a"}, "target: template \"{{a\": unbalanced"},
	} {
		if _, err := NewPrompts("t", tc.spec); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.spec, err, tc.want)
		}
	}
}

func TestNewJudgeErrors(t *testing.T) {
	for _, tc := range []struct {
		spec ExtractSpec
		want string
	}{
		{ExtractSpec{Extraction: "last"}, `unknown extraction "last"; extractions: gsm8k, boxed, exact, regex`},
		{ExtractSpec{Extraction: "regex"}, `extraction "regex" needs regex`},
		{ExtractSpec{Extraction: "regex", Regex: "(a"}, "regex: error parsing regexp"},
		{ExtractSpec{Extraction: "exact", Regex: "a"}, `regex is the pattern of extraction "regex"; extraction is "exact"`},
		{ExtractSpec{Extraction: "gsm8k", IgnoreCase: true}, `ignoreCase and ignorePunctuation apply to extractions "exact" and "regex"`},
		{ExtractSpec{Extraction: "boxed", GroupSelect: -1}, `groupSelect applies to extraction "regex"`},
	} {
		if _, err := NewJudge(tc.spec); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.spec, err, tc.want)
		}
	}
}

// fakeGen is a generator that answers each prompt with known texts, one
// per sample: the tests score what a model "generated" without a model.
type fakeGen map[string][]string

// outcomes judges the fake generations of items as the evaluation does:
// every sample's text read by every filter, its trace from its pieces
// (here one piece per space-separated word, with the markers their own
// pieces).
func (f fakeGen) outcomes(t *testing.T, j *Judge, items []Item, truncated map[string]bool) [][]Outcome {
	t.Helper()
	var out [][]Outcome
	for _, it := range items {
		var samples []Outcome
		for _, text := range f[it.Prompt] {
			pieces := strings.SplitAfter(text, " ")
			samples = append(samples, Outcome{Correct: j.Judge(text, it.Target).Correct, Trace: Trace(it.Prompt, pieces, truncated[text])})
		}
		out = append(out, samples)
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

// GSM8K by strict and flexible extraction over a hand-built item set:
// known texts give known exact_match, pass@1 and think metrics.
func TestGSM8KMetrics(t *testing.T) {
	p, err := NewPrompts("gsm8k", gsm8kPrompts)
	if err != nil {
		t.Fatal(err)
	}
	items, err := p.Items([]mceval.Doc{
		{"question": "one", "answer": "1+1=<<1+1=2>>2\n#### 2"},
		{"question": "two", "answer": "so\n#### 1,000"},
		{"question": "three", "answer": "x\n#### 7"},
	}, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	gen := fakeGen{
		// strict and flexible right; then only flexible; then neither.
		"Question: one\nAnswer:": {" <think> two and two </think> #### 2", " it is 2", " no idea"},
		// "1,000." matches "1,000" under the task's regexes_to_ignore.
		"Question: two\nAnswer:": {" so #### 1,000.", " 1000 or 999", " <think> about $1,000 and more"},
		// The number read flexibly is the last one: 8, wrong.
		"Question: three\nAnswer:": {" 7 or 8", " #### 7 #### 8", " 7"},
	}
	j, err := NewJudge(ExtractSpec{Extraction: "gsm8k"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(j.Filters(), ","); got != "strict,flexible" || j.Primary() != "flexible" {
		t.Fatalf("filters %s, primary %s", got, j.Primary())
	}
	if g := j.Gold(items[1].Target); g != "1000" {
		t.Errorf("gold of %q = %q, want 1000", items[1].Target, g)
	}
	jd := j.Judge(" #### 7 #### 8", items[2].Target)
	if strings.Join(jd.Answers, "|") != "7|8" || !jd.Correct[0] || jd.Correct[1] {
		t.Errorf("judgement %+v, want strict 7 right, flexible 8 wrong", jd)
	}
	if jd := j.Judge(" no idea", items[0].Target); jd.Answers[0] != answer.Invalid || jd.Answers[1] != answer.Invalid || jd.Correct[0] || jd.Correct[1] {
		t.Errorf("judgement of no number %+v", jd)
	}
	truncated := map[string]bool{" <think> about $1,000 and more": true}
	m, err := j.Metrics(gen.outcomes(t, j, items, truncated))
	if err != nil {
		t.Fatal(err)
	}
	// First samples: item 1 strict and flexible right, item 2 strict
	// and flexible ("1,000.") right, item 3 strict wrong (no ####),
	// flexible 8 wrong.
	// Flexible over all samples: item 1: 2/3; item 2: "1,000." ✓,
	// "999" ✗, "$1,000" ✓ → 2/3; item 3: 8 ✗, 8 ✗, 7 ✓ → 1/3.
	want := map[string]float64{
		"exact_match_strict":   2.0 / 3,
		"exact_match_flexible": 2.0 / 3,
		"pass@1":               (2.0/3 + 2.0/3 + 1.0/3) / 3,
		// Think blocks: sample " <think> two and two </think> #### 2"
		// splits into pieces " ", "<think> ", "two ", "and ", "two ",
		// "</think> ", "#### ", "2": 1 before, 3 think tokens, 2 after;
		// the open block " <think> about $1,000 and more" has 4 think
		// tokens (its pieces " ", "<think> ", "about ", "$1,000 ",
		// "and ", "more").
		"think_tokens_mean":   7.0 / 9,
		"think_tokens_median": 0,
		"think_closed_rate":   1.0 / 9,
		"truncated_rate":      1.0 / 9,
	}
	for k, v := range want {
		if !near(m[k], v) {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	// Answer tokens: every piece of the seven sample texts without a
	// block, plus the two after the closed block.
	var answerTokens, tokens int
	for _, texts := range gen {
		for _, s := range texts {
			n := len(strings.SplitAfter(s, " "))
			tokens += n
			if !strings.Contains(s, "<think>") {
				answerTokens += n
			}
		}
	}
	answerTokens += 2
	if !near(m["answer_tokens_mean"], float64(answerTokens)/9) || !near(m["tokens_mean"], float64(tokens)/9) {
		t.Errorf("answer_tokens_mean %v tokens_mean %v, want %v %v", m["answer_tokens_mean"], m["tokens_mean"], float64(answerTokens)/9, float64(tokens)/9)
	}
	// Standard errors as lm-eval's: sample std / sqrt(n).
	sd := math.Sqrt((2*math.Pow(1-2.0/3, 2) + math.Pow(2.0/3, 2)) / 2)
	if !near(m["exact_match_strict_stderr"], sd/math.Sqrt(3)) {
		t.Errorf("exact_match_strict_stderr %v, want %v", m["exact_match_strict_stderr"], sd/math.Sqrt(3))
	}
}

// Boxed answers by mathematical equivalence, exact and regex matches.
func TestOtherExtractions(t *testing.T) {
	for _, tc := range []struct {
		name     string
		spec     ExtractSpec
		target   string
		texts    []string
		metric   string
		first    float64
		pass     float64
		extracts []string
	}{
		{"boxed", ExtractSpec{Extraction: "boxed"}, `so $\boxed{\frac{1}{2}}$`,
			[]string{`thus \boxed{\dfrac12}`, `\boxed{0.5} then \boxed{2}`, `\boxed{ 1/2 }`, "one half"},
			"accuracy", 1, 2.0 / 4, []string{`\dfrac12`, "2", " 1/2 ", answer.Invalid}},
		{"boxed plain target", ExtractSpec{Extraction: "boxed"}, " 10\\%",
			[]string{`\boxed{10}`, `\boxed{10\%}`},
			"accuracy", 1, 1, []string{"10", `10\%`}},
		{"exact", ExtractSpec{Extraction: "exact", IgnoreCase: true}, " Paris ",
			[]string{" paris\n", "Paris, France"},
			"exact_match", 1, 0.5, []string{"paris", "Paris, France"}},
		{"regex", ExtractSpec{Extraction: "regex", Regex: `answer is \(?([A-E])`, GroupSelect: -1}, "C",
			[]string{"the answer is (B), no, the answer is (C)", "answer is D", "I cannot say"},
			"exact_match", 1, 1.0 / 3, []string{"C", "D", answer.Invalid}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, err := NewJudge(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			var samples []Outcome
			for i, text := range tc.texts {
				jd := j.Judge(text, tc.target)
				if jd.Answers[0] != tc.extracts[i] {
					t.Errorf("%q: extracted %q, want %q", text, jd.Answers[0], tc.extracts[i])
				}
				samples = append(samples, Outcome{Correct: jd.Correct, Trace: Trace("p", []string{text}, false)})
			}
			m, err := j.Metrics([][]Outcome{samples})
			if err != nil {
				t.Fatal(err)
			}
			if m[tc.metric] != tc.first || !near(m["pass@1"], tc.pass) || m[tc.metric+"_stderr"] != 0 {
				t.Errorf("%s %v (stderr %v), pass@1 %v; want %v, %v", tc.metric, m[tc.metric], m[tc.metric+"_stderr"], m["pass@1"], tc.first, tc.pass)
			}
		})
	}
}

// A prompt that ends inside an opened think block (templates that open it
// for the model) makes the generation start there; Qwen3's closed empty
// block with thinking off does not.
func TestTraceStartsInside(t *testing.T) {
	pieces := []string{"a", "b", "</think>", "\n\n", "c"}
	in := Trace("<|im_start|>assistant\n<think>\n", pieces, false)
	if !in.Opened || !in.Closed || in.Think != 2 || in.After != 2 || in.MarkerTokens != 1 {
		t.Errorf("inside: %+v", in)
	}
	off := Trace("<|im_start|>assistant\n<think>\n\n</think>\n\n", []string{"x", "y"}, true)
	if off.Opened || off.Think != 0 || off.After != 2 || !off.Truncated {
		t.Errorf("thinking off: %+v", off)
	}
	if s := thinktrace.Summarize([]thinktrace.Trace{in, off}); s.ClosedFrac != 0.5 || s.MeanThink != 1 {
		t.Errorf("summary %+v", s)
	}
}

// Sample seeds depend on the evaluation's seed, the document and the
// sample, and on nothing else.
func TestSampleSeed(t *testing.T) {
	seen := map[uint64]bool{}
	for _, seed := range []int64{0, 1, -1} {
		for doc := range 3 {
			for s := range 3 {
				v := SampleSeed(seed, doc, s)
				if seen[v] {
					t.Fatalf("seed %d doc %d sample %d repeats a seed", seed, doc, s)
				}
				seen[v] = true
				if SampleSeed(seed, doc, s) != v {
					t.Fatal("not deterministic")
				}
			}
		}
	}
}

func TestMetricsErrors(t *testing.T) {
	j, _ := NewJudge(ExtractSpec{Extraction: "exact"})
	if _, err := j.Metrics(nil); err == nil {
		t.Error("no items: no error")
	}
	if _, err := j.Metrics([][]Outcome{{}}); err == nil || !strings.Contains(err.Error(), "item 0 has no samples") {
		t.Errorf("no samples: %v", err)
	}
	if _, err := j.Metrics([][]Outcome{{{Correct: []bool{true, false}}}}); err == nil || !strings.Contains(err.Error(), "2 judgements for 1 filters") {
		t.Errorf("judgement count: %v", err)
	}
}
