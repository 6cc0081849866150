package ops_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lrmc/compiler"
	"lrmc/executor/ops"
	"lrmc/internal/shareddata"
	"lrmc/kernels/hfdataset/hubtest"
	"lrmc/kernels/llama2c"
	"lrmc/kernels/mceval"
	"lrmc/planner"
)

const hubCommit = "89abcdef0123456789abcdef0123456789abcdef"

var (
	arcDocs = []hubtest.ARC{
		{ID: "a1", Question: "What do plants need to grow?", Choices: hubtest.Choices{Text: []string{"sunlight", "sand", "plastic"}, Label: []string{"A", "B", "C"}}, AnswerKey: "A"},
		{ID: "a2", Question: "Which is hot?", Choices: hubtest.Choices{Text: []string{"ice", "fire", "snow", "rain"}, Label: []string{"1", "2", "3", "4"}}, AnswerKey: "2"},
		{ID: "a3", Question: "What falls from clouds?", Choices: hubtest.Choices{Text: []string{"rocks", "cars", "rain", "trees"}, Label: []string{"A", "B", "C", "D"}}, AnswerKey: "C"},
	}
	wgDocs = []hubtest.WinoGrande{
		{Sentence: "Lily gave the ball to Tom because _ was sad.", Option1: "Lily", Option2: "Tom", Answer: "2"},
		{Sentence: "The dog ran to the cat but _ was too fast.", Option1: "the dog", Option2: "the cat", Answer: "2"},
		{Sentence: "Sue helped Ben because _ was kind.", Option1: "Sue", Option2: "Ben", Answer: "1"},
	}
)

// hubRecipe writes a hub cache with ARC-Easy's test split and WinoGrande's
// validation split as parquet files (blobs and links, as the hub lays them
// out), the same ARC documents as jsonl, and a recipe that evaluates
// dense stories260K on all three; it returns the recipe's path.
func hubRecipe(t *testing.T, dir, out string) string {
	t.Helper()
	cache := filepath.Join(dir, "hub")
	t.Setenv("HF_HUB_CACHE", cache)
	arc := hubtest.Snapshot(t, cache, "allenai/ai2_arc", "main", hubCommit)
	hubtest.Blob(t, arc, "ARC-Easy/test-00000-of-00002.parquet", arcDocs[:2])
	hubtest.Blob(t, arc, "ARC-Easy/test-00001-of-00002.parquet", arcDocs[2:])
	hubtest.Blob(t, arc, "ARC-Easy/train-00000-of-00001.parquet", arcDocs[:1])
	wg := hubtest.Snapshot(t, cache, "allenai/winogrande", "main", hubCommit)
	hubtest.Blob(t, wg, "winogrande_xl/validation-00000-of-00001.parquet", wgDocs)
	var jsonl strings.Builder
	for _, d := range arcDocs {
		b, err := json.Marshal(map[string]any{"id": d.ID, "question": d.Question, "answerKey": d.AnswerKey,
			"choices": map[string]any{"text": d.Choices.Text, "label": d.Choices.Label}})
		if err != nil {
			t.Fatal(err)
		}
		jsonl.Write(append(b, '\n'))
	}
	if err := os.WriteFile(filepath.Join(dir, "arc.jsonl"), []byte(jsonl.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	recipe := filepath.Join(dir, "hub.cue")
	src := fmt.Sprintf(`model: path: %q
eval: {
	arc:      {task: "arc_easy", data: {path: "hf-dataset:allenai/ai2_arc", config: "ARC-Easy", hfSplit: "test"}}
	wg:       {task: "winogrande", data: {path: "hf-dataset:allenai/winogrande@main", config: "winogrande_xl", hfSplit: "validation"}}
	arcjsonl: {task: "arc_easy", data: {path: "arc.jsonl"}}
}
output: {dir: %q, formats: []}
`, shareddata.Path(t, "models", "stories260K", "stories260K.bin"), out)
	if err := os.WriteFile(recipe, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return recipe
}

// An evaluation over hf-dataset: splits runs end to end: ARC's nested
// choices and answer keys (numeric ones too) become items exactly as the
// same documents in jsonl do, WinoGrande is scored partially (checked
// against scoring each full string alone) and reports acc only. Its nodes
// are keyed by the parquet files' bytes: a rerun runs nothing, a changed
// byte is read again (and its damage reported), and a rewritten file
// reruns WinoGrande alone.
func TestHFDatasetEvaluation(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	recipe := hubRecipe(t, dir, out)
	run := func() *recorder {
		t.Helper()
		r, err := compiler.Compile(recipe)
		if err != nil {
			t.Fatal(err)
		}
		rec := &recorder{}
		if err := apply(t, context.Background(), filepath.Join(dir, "cache"), r, rec); err != nil {
			t.Fatal(err)
		}
		return rec
	}
	rec := run()
	if n := rec.started(planner.OpMCItems); n != 3 {
		t.Errorf("%d item nodes ran, want 3", n)
	}

	arc := readSamples(t, filepath.Join(out, "dense", "samples", "arc.jsonl"))
	arcJSONL := readSamples(t, filepath.Join(out, "dense", "samples", "arcjsonl.jsonl"))
	if len(arc) != 3 || len(arcJSONL) != 3 {
		t.Fatalf("%d parquet and %d jsonl ARC samples, want 3", len(arc), len(arcJSONL))
	}
	for i, s := range arc {
		if want := []int{0, 1, 2}[i]; s.Gold != want || s.Context != "Question: "+arcDocs[i].Question+"\nAnswer:" ||
			strings.Join(s.Choices, "|") != strings.Join(arcDocs[i].Choices.Text, "|") || len(s.LogLikelihoods) != len(s.Choices) {
			t.Errorf("ARC sample %d: %+v", i, s)
		}
		j := arcJSONL[i]
		if fmt.Sprint(j.LogLikelihoods) != fmt.Sprint(s.LogLikelihoods) || j.Gold != s.Gold || j.Context != s.Context {
			t.Errorf("ARC sample %d: jsonl %+v, parquet %+v", i, j, s)
		}
	}

	// WinoGrande: choice i's log-likelihood is that of " " + the rest of
	// the sentence after its own context, as scoring the full string alone
	// through the model's batched forward gives it.
	m, err := llama2c.Load(shareddata.Path(t, "models", "stories260K", "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := llama2c.LoadTokenizer(shareddata.Path(t, "models", "stories260K", "tok512.bin"), m.Config.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	wg := readSamples(t, filepath.Join(out, "dense", "samples", "wg.jsonl"))
	var correct float64
	for i, s := range wg {
		d := wgDocs[i]
		blank := strings.Index(d.Sentence, "_")
		target := strings.TrimSpace(d.Sentence[blank+1:])
		if s.Target != target || s.Choices[0] != d.Sentence[:blank]+d.Option1 || s.Choices[1] != d.Sentence[:blank]+d.Option2 || s.Gold != int(d.Answer[0]-'1') {
			t.Errorf("WinoGrande sample %d: %+v", i, s)
		}
		for c, ctx := range s.Choices {
			full := tok.Encode(ctx+" "+target, true, false)
			n := len(tok.Encode(ctx, true, false))
			if want := mceval.ScoreAlone(m, full[:n], full[n:]); math.Abs(s.LogLikelihoods[c]-want) > 1e-5 {
				t.Errorf("WinoGrande sample %d choice %d: %.9f, alone %.9f", i, c, s.LogLikelihoods[c], want)
			}
		}
		if s.LogLikelihoods[s.Gold] > s.LogLikelihoods[1-s.Gold] {
			correct++
		}
	}
	var res ops.Results
	if err := json.Unmarshal(readResults(t, out), &res); err != nil {
		t.Fatal(err)
	}
	wgm, _ := res.Dense["tasks"].(map[string]any)["wg"].(map[string]any)
	if acc, ok := wgm["acc"].(float64); !ok || math.Abs(acc-correct/3) > 1e-12 {
		t.Errorf("winogrande acc %v, samples say %v/3", wgm["acc"], correct)
	}
	if _, ok := wgm["acc_norm"]; ok {
		t.Errorf("winogrande reports acc_norm: %v", wgm)
	}

	if rec := run(); rec.started("") != 0 {
		t.Errorf("a rerun ran %d ops", rec.started(""))
	}
	// One byte of WinoGrande's parquet file changed: the file's new key
	// sends it to be read again, and its page checksum catches the damage
	// (an error naming the file and column, no results from wrong data).
	blob := filepath.Join(dir, "hub", "datasets--allenai--winogrande", "blobs", "winogrande_xl_validation-00000-of-00001.parquet")
	b, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), "was kind.", "was kine.", 1)
	if strings.Count(string(b), "was kind.") != 1 {
		t.Fatal("the sentence's bytes were not found once in the file")
	}
	if err := os.WriteFile(blob, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := compiler.Compile(recipe)
	if err != nil {
		t.Fatal(err)
	}
	err = apply(t, context.Background(), filepath.Join(dir, "cache"), r, &recorder{})
	if err == nil || !strings.Contains(err.Error(), `validation-00000-of-00001.parquet: row 0: crc32 checksum mismatch in page of column "sentence"`) {
		t.Errorf("a damaged page: %v", err)
	}
	// The file rewritten whole with the third answer changed: WinoGrande's
	// nodes run again, nothing else does.
	changed := append([]hubtest.WinoGrande{}, wgDocs...)
	changed[2].Answer = "2"
	hubtest.Write(t, blob, changed)
	rec = run()
	for _, e := range rec.events {
		if e.Event == "started" && (e.Op == planner.OpMCItems || e.Op == planner.OpMCScore || e.Op == planner.OpMCAccuracy) && !strings.HasPrefix(e.Label, "winogrande ") {
			t.Errorf("editing WinoGrande's file ran %s %q", e.Op, e.Label)
		}
	}
	if rec.started(planner.OpMCItems) != 1 || rec.started(planner.OpMCScore) != 1 {
		t.Errorf("editing WinoGrande's file ran %d item and %d score nodes, want 1 and 1", rec.started(planner.OpMCItems), rec.started(planner.OpMCScore))
	}
	if wg := readSamples(t, filepath.Join(out, "dense", "samples", "wg.jsonl")); wg[2].Gold != 1 {
		t.Errorf("after the edit, sample 2's gold is %d, want 1", wg[2].Gold)
	}
}

// A parquet file without a column the task reads fails with the file and
// the column named.
func TestHFDatasetMissingColumn(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	recipe := hubRecipe(t, dir, out)
	type noKey struct {
		Question string          `parquet:"question"`
		Choices  hubtest.Choices `parquet:"choices"`
	}
	file := filepath.Join(dir, "hub", "datasets--allenai--ai2_arc", "snapshots", hubCommit, "ARC-Easy", "test-00001-of-00002.parquet")
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	hubtest.Write(t, file, []noKey{{Question: "q", Choices: arcDocs[0].Choices}})
	r, err := compiler.Compile(recipe)
	if err != nil {
		t.Fatal(err)
	}
	err = apply(t, context.Background(), filepath.Join(dir, "cache"), r, &recorder{})
	want := file + `: task "arc_easy" reads column "answerKey", which the file lacks (columns: question, choices)`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("apply: %v\nwant %s", err, want)
	}
}
