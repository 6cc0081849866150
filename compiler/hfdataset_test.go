package compiler

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"lrmc/compiler/ir"
	"lrmc/kernels/mceval"
)

// TestCompileHFDataset decodes testdata/valid_hf_dataset.cue: hf-dataset:
// splits resolve to their parquet files in the hub cache (by branch or
// commit), and a recipe's own task with a target scores one continuation
// after each choice, reporting acc only.
func TestCompileHFDataset(t *testing.T) {
	t.Setenv("HF_HUB_CACHE", filepath.Join("testdata", "hub"))
	got, err := Compile("testdata/valid_hf_dataset.cue")
	if err != nil {
		t.Fatal(err)
	}
	const commit = "fedcba9876543210fedcba9876543210fedcba98"
	snap, err := filepath.Abs(filepath.Join("testdata", "hub", "datasets--allenai--ai2_arc", "snapshots", commit, "ARC-Easy"))
	if err != nil {
		t.Fatal(err)
	}
	arcDef := &ir.TaskDef{Text: "Question: {{question}}\nAnswer:", ChoicesField: "choices.text", Gold: "answerKey", GoldLabelsField: "choices.label"}
	fill, err := filepath.Abs("testdata/files/fill.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	want := []ir.Eval{
		{Name: "arc", Field: "eval.arc", Task: "arc_easy", Samples: 1, Def: arcDef, Data: ir.Data{
			Path: "hf-dataset:allenai/ai2_arc", Format: "parquet", Split: ir.Split{From: 0, To: 1},
			Dataset: &ir.Dataset{Config: "ARC-Easy", Split: "test", Commit: commit, Files: []string{filepath.Join(snap, "test-00000-of-00001.parquet")}}}},
		{Name: "train", Field: "eval.train", Task: "arc_easy", Def: arcDef, Data: ir.Data{
			Path: "hf-dataset:allenai/ai2_arc@" + commit, Format: "parquet", Split: ir.Split{From: 0, To: 1},
			Dataset: &ir.Dataset{Config: "ARC-Easy", Split: "train", Commit: commit, Files: []string{filepath.Join(snap, "train-00000-of-00001.parquet")}}}},
		{Name: "fill", Field: "eval.fill", Task: "fillin", Def: &ir.TaskDef{
			Choices: []string{"{{text.split('_', 1)[0]}}{{a}}", "{{text.split('_', 1)[0]}}{{b}}"},
			Target:  "{{text.split('_', 1)[1].strip()}}", Gold: "answer", GoldLabels: []string{"a", "b"}, Metrics: []string{"acc"}},
			Data: ir.Data{Path: fill, Format: "jsonl", Split: ir.Split{From: 0, To: 1}}},
	}
	if diff := cmp.Diff(want, got.DenseEval); diff != "" {
		t.Errorf("evals (-want +got):\n%s", diff)
	}
	// Evaluations come in the order written. The recipe's own partial task gives WinoGrande-shaped items.
	task, err := mceval.FromSpec("fillin", specOf(*got.DenseEval[2].Def))
	if err != nil {
		t.Fatal(err)
	}
	items, err := mceval.Items(task, []mceval.Doc{{"text": "Ann thanked Meg because _ had helped.", "a": "Ann", "b": "Meg", "answer": "b"}}, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if it := items[0]; it.Gold != 1 || it.ContextOf(1) != "Ann thanked Meg because Meg" || it.Continuation(0) != " had helped." {
		t.Errorf("fillin item %+v", it)
	}
}
