package ops

import (
	"context"
	"encoding/json"
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
