package ops

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"lrmc/executor"
	"lrmc/internal/shareddata"
	"lrmc/kernels/geneval"
	"lrmc/kernels/llama2c"
	"lrmc/planner"
)

// memCheckpoints is executor.Checkpoints in memory.
type memCheckpoints struct {
	state []byte
	saves []int64
}

func (m *memCheckpoints) Save(step int64, state []byte) error {
	m.saves = append(m.saves, step)
	m.state = append([]byte(nil), state...)
	return nil
}

func (m *memCheckpoints) Load() (int64, []byte, bool, error) {
	return 0, m.state, m.state != nil, nil
}

func generateCall(t *testing.T, ck *memCheckpoints, items []geneval.Item, chat bool) *executor.Call {
	t.Helper()
	path := shareddata.Path(t, "models", "stories260K", "stories260K.bin")
	lm, err := llama2c.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := json.Marshal(planner.GenerateParams{Task: "t", TokenizerFormat: "llama2c", Chat: chat, N: 1, TopP: 1, MaxNewTokens: 8, Stop: []string{}})
	return &executor.Call{
		Node:        &planner.Node{Op: planner.OpGenerate, Params: p},
		Inputs:      []any{&Model{LM: lm}, items, shareddata.Path(t, "models", "stories260K", "tok512.bin")},
		Progress:    func(int64, int64) {},
		Checkpoints: ck,
	}
}

// Generation saves the items it has finished as it goes, and an
// interrupted evaluation resumes from them: what a checkpoint holds is not
// generated again, and the rest is what an uninterrupted run generates.
func TestGenerateCheckpoints(t *testing.T) {
	items := []geneval.Item{{Doc: 0, Prompt: "Once upon a time"}, {Doc: 1, Prompt: "Tom had a"}, {Doc: 2, Prompt: "The sun"}}
	defer func(d time.Duration) { checkpointEvery = d }(checkpointEvery)
	checkpointEvery = 0
	ck := &memCheckpoints{}
	full, err := generateOp{}.Run(context.Background(), generateCall(t, ck, items, false))
	if err != nil {
		t.Fatal(err)
	}
	gens := full.([]Generation)
	// Every item but the last is saved (the finished node is the cache).
	if len(ck.saves) != 2 || ck.saves[0] != 1 || ck.saves[1] != 2 {
		t.Fatalf("saves at %v, want [1 2]", ck.saves)
	}

	// A checkpoint with item 1 done (marked, to tell it from a rerun).
	saved := make([]*Generation, 3)
	marked := gens[1]
	marked.Samples = []GenText{{Text: "from the checkpoint"}}
	saved[1] = &marked
	state, _ := json.Marshal(saved)
	ck = &memCheckpoints{state: state}
	resumed, err := generateOp{}.Run(context.Background(), generateCall(t, ck, items, false))
	if err != nil {
		t.Fatal(err)
	}
	r := resumed.([]Generation)
	if r[1].Samples[0].Text != "from the checkpoint" {
		t.Errorf("item 1 was generated again: %+v", r[1])
	}
	for _, i := range []int{0, 2} {
		if r[i].Samples[0].Text != gens[i].Samples[0].Text || r[i].Prompt != items[i].Prompt {
			t.Errorf("item %d resumed as %+v, want %+v", i, r[i], gens[i])
		}
	}

	// Chat on a model whose tokenizer has no template fails clearly.
	_, err = generateOp{}.Run(context.Background(), generateCall(t, &memCheckpoints{}, items, true))
	if err == nil || !strings.Contains(err.Error(), "t: chat is on, but the tokenizer") || !strings.Contains(err.Error(), "tok512.bin has no chat template") {
		t.Errorf("chat without a template: %v", err)
	}
}

// Scoring and metrics as nodes: generations a fake generator "wrote"
// (known texts and think traces) give known answers, exact_match, pass@1
// and reasoning metrics, and the samples file says so line by line.
func TestGenScoreAndMetrics(t *testing.T) {
	target := "3 + 4 = <<3+4=7>>7\n#### 7"
	text := func(s string, think, after int, closed, truncated bool) GenText {
		return GenText{Text: s, Stop: "eos", Tokens: 1 + think + after + 2,
			Think: GenTrace{Before: 0, Think: think, After: after, Markers: 2, Opened: true, Closed: closed, Truncated: truncated}}
	}
	gens := []Generation{
		{Doc: 3, Prompt: "Question: a\nAnswer:", Target: target, Samples: []GenText{
			text("<think>so 7</think> #### 7", 10, 3, true, false),
			text("<think>maybe 8</think> 8", 20, 1, true, false),
		}},
		{Doc: 5, Prompt: "Question: b\nAnswer:", Target: "#### 1,200", Samples: []GenText{
			text("<think>1200? no, 12", 30, 0, false, true),
			text("<think>x</think> #### 1,200", 40, 4, true, false),
		}},
	}
	scored, err := genScore{}.Run(context.Background(), callWith(t, planner.GenScoreParams{Task: "gsm8k",
		Extract: planner.GenExtractParams{Extraction: "gsm8k"}}, gens))
	if err != nil {
		t.Fatal(err)
	}
	samples := scored.([]GenSample)
	if samples[0].Gold != "7" || samples[1].Gold != "1200" || samples[0].Pass1 != 0.5 || samples[1].Pass1 != 0.5 {
		t.Errorf("gold %q %q, pass@1 %v %v", samples[0].Gold, samples[1].Gold, samples[0].Pass1, samples[1].Pass1)
	}
	s := samples[1].Samples[0]
	if s.Extracted["strict"] != "[invalid]" || s.Extracted["flexible"] != "12" || s.Correct["flexible"] || s.ThinkTokens != 30 || !s.Truncated || s.ThinkClosed {
		t.Errorf("item 1 sample 0: %+v", s)
	}
	b, err := genSamplesCodec{}.Encode(samples)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) != 2 ||
		!strings.Contains(lines[0], `"extracted":{"flexible":"7","strict":"7"},"correct":{"flexible":true,"strict":true}`) {
		t.Errorf("samples file:\n%s", b)
	}
	back, err := genSamplesCodec{}.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	lm, err := llama2c.Load(shareddata.Path(t, "models", "stories260K", "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	c := callWith(t, planner.GenMetricsParams{Task: "gsm8k", Extract: planner.GenExtractParams{Extraction: "gsm8k"}}, back, &Model{LM: lm})
	res, err := genMetrics{}.Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	r := res.(GenResult)
	want := map[string]float64{
		// First samples: item 0 strict and flexible right; item 1 neither.
		"exact_match_strict": 0.5, "exact_match_flexible": 0.5,
		// Flexible over both samples: 1/2 and 1/2.
		"pass@1":            0.5,
		"think_tokens_mean": 25, "think_tokens_median": 25, "answer_tokens_mean": 2,
		"tokens_mean":       (16 + 24 + 33 + 47) / 4.0,
		"think_closed_rate": 0.75, "truncated_rate": 0.25,
	}
	for k, v := range want {
		if math.Abs(r.Metrics[k]-v) > 1e-12 {
			t.Errorf("%s = %v, want %v", k, r.Metrics[k], v)
		}
	}
	if r.Items != 2 || r.N != 2 || r.Blocks != lm.Config.Layers || r.Params != lm.Config.Params() {
		t.Errorf("result %+v", r)
	}
	// The metrics keep their columns through the cache's JSON.
	enc, err := jsonCodec[GenResult]{}.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(enc), `"pass@1": 0.5`) || !strings.Contains(string(enc), `"task": "gsm8k"`) {
		t.Errorf("encoded %s", enc)
	}
	dec, err := jsonCodec[GenResult]{}.Decode(enc)
	if err != nil || dec.(GenResult).Metrics["think_closed_rate"] != 0.75 || dec.(GenResult).Task != "gsm8k" {
		t.Errorf("decoded %+v, %v", dec, err)
	}
}

func callWith(t *testing.T, params any, inputs ...any) *executor.Call {
	t.Helper()
	p, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	return &executor.Call{Node: &planner.Node{Params: p}, Inputs: inputs, Progress: func(int64, int64) {}}
}
