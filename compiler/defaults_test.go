package compiler

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"lrmc/compiler/ir"
	"lrmc/internal/shareddata"
	"lrmc/kernels/gguf"
)

// TestDocumentedDefaults compiles a recipe that writes only what is
// required and checks every default the schema's comments promise, as the
// IR holds it: what the planner and the executor then read.
func TestDocumentedDefaults(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"stories.txt", "piqa.jsonl", "chat.jsonl", "alpaca.jsonl"} {
		copyFile(t, filepath.Join("testdata", "files", f), filepath.Join(dir, f))
	}
	copyFile(t, filepath.Join("testdata", "files", "model.bin"), filepath.Join(dir, "model.bin"))
	file := filepath.Join(dir, "r.cue")
	writeFile(t, file, `model: path: "model.bin"
calibration: {data: path: "stories.txt", samples: 8, seqLen: 32}
tasks: qa: {kind: "generation", text: "Q: {{goal}}", target: "{{sol1}}"}
eval: {
	ppl: {task: "perplexity", data: path: "stories.txt", seqLen: 32}
	piqa: {task: "piqa", data: path: "piqa.jsonl"}
	qa: {task: "qa", data: path: "piqa.jsonl"}
}
prune: {paradigm: "depth", method: "shortgpt", remove: 1}
speed: {}
runs: {
	plain: {}
	lora: recovery: {method: "lora", steps: 10}
	full: recovery: {method: "full", steps: 10}
	kd: recovery: {method: "full", steps: 10, loss: "kd"}
	split: {
		calibration: data: split: to: 0.6
		recovery: {method: "full", steps: 10, data: {path: "stories.txt"}}
	}
	own: {
		calibration: data: split: to: 0.6
		recovery: {method: "full", steps: 10, data: {path: "stories.txt", split: {from: 0.6, to: 0.8}}}
	}
}
`)
	got, err := Compile(file)
	if err != nil {
		t.Fatal(err)
	}
	text := ir.Data{Path: filepath.Join(dir, "stories.txt"), Format: "text", Template: "none", Split: ir.Split{From: 0, To: 0.9}}

	// dense: true; model format "auto", dtype float32.
	if !got.Dense {
		t.Error("dense is not true by default")
	}
	if m := got.Runs[0].Model; m.Format != "auto" || m.DType != "float32" {
		t.Errorf("model format %q dtype %q, want auto, float32", m.Format, m.DType)
	}
	// output: dir "out" beside the recipe, formats [llama2c], dtype float32.
	if diff := cmp.Diff(ir.Output{Dir: filepath.Join(dir, "out"), Formats: []string{"llama2c"}, DType: "float32"}, got.Output); diff != "" {
		t.Errorf("output defaults (-want +got):\n%s", diff)
	}
	// speed: prefill 128, decode 32, reps 3, threads 0 (every CPU).
	if diff := cmp.Diff(&ir.Speed{Prefill: 128, Decode: 32, Reps: 3, Threads: 0}, got.Speed); diff != "" {
		t.Errorf("speed defaults (-want +got):\n%s", diff)
	}
	runs := map[string]ir.Run{}
	for _, r := range got.Runs {
		runs[r.Name] = r
	}
	// calibration: text data, the first 90% of the documents, seed 0.
	if diff := cmp.Diff(ir.Calibration{Data: text, Samples: 8, SeqLen: 32, Seed: 0}, runs["plain"].Calibration); diff != "" {
		t.Errorf("calibration defaults (-want +got):\n%s", diff)
	}
	// eval: perplexity reads the last 10%; a multiple-choice task the whole
	// file; samples 0 (all).
	evals := map[string]ir.Eval{}
	for _, e := range runs["plain"].Eval {
		evals[e.Name] = e
	}
	held := text
	held.Split = ir.Split{From: 0.9, To: 1}
	if e := evals["ppl"]; !cmp.Equal(e.Data, held) || e.Samples != 0 {
		t.Errorf("perplexity data %+v samples %d; want %+v, 0", e.Data, e.Samples, held)
	}
	if e := evals["piqa"]; e.Data.Split != (ir.Split{From: 0, To: 1}) || e.Data.Format != "jsonl" || e.Samples != 0 || e.Fewshot != 0 {
		t.Errorf("piqa data %+v samples %d fewshot %d; want the whole jsonl file, 0, 0", e.Data, e.Samples, e.Fewshot)
	}
	// A generation task: maxNewTokens 256, extraction "exact", greedy
	// (temperature 0), one sample, the template's own thinking.
	if g := evals["qa"].Gen; g == nil || g.MaxNewTokens != 256 || g.Extraction != "exact" || g.Temperature != 0 || g.N != 1 || g.Thinking != nil || g.Chat {
		t.Errorf("generation defaults %+v; want maxNewTokens 256, extraction exact, temperature 0, n 1, no chat, thinking unset", g)
	}
	// recovery: method none; the fields every method shares; lr by
	// method; LoRA's settings; kd's temperature and topK; data the
	// calibration's.
	if r := runs["plain"].Recovery; r.Method != "none" {
		t.Errorf("recovery method %q, want none", r.Method)
	}
	shared := ir.Recovery{Method: "full", Data: text, Steps: 10, Batch: 4, Accumulation: 1, SeqLen: 256, LR: 2e-5,
		Warmup: 0.1, Schedule: "cosine", WeightDecay: 0, MaxGradNorm: 1, Loss: "lm", Seed: 0, CheckpointEvery: 0}
	lora := shared
	lora.Method, lora.LR, lora.Rank, lora.Alpha, lora.Dropout, lora.Targets = "lora", 4e-4, 16, 32, 0.1, []string{"q", "v"}
	kd := shared
	kd.Loss, kd.Temperature, kd.TopK = "kd", 2, 0
	// Recovery data written without a split takes the calibration's
	// split; with one, its own.
	split := shared
	split.Data.Split = ir.Split{From: 0, To: 0.6}
	own := shared
	own.Data.Split = ir.Split{From: 0.6, To: 0.8}
	for name, want := range map[string]ir.Recovery{"full": shared, "lora": lora, "kd": kd, "split": split, "own": own} {
		if diff := cmp.Diff(want, runs[name].Recovery); diff != "" {
			t.Errorf("run %s recovery (-want +got):\n%s", name, diff)
		}
	}
}

// TestRecoveryDataIsCalibrationData: recovery without data trains on the
// run's calibration data, whatever it is: file, format and split.
func TestRecoveryDataIsCalibrationData(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, filepath.Join("testdata", "files", "chat.jsonl"), filepath.Join(dir, "chat.jsonl"))
	copyFile(t, filepath.Join("testdata", "files", "model.bin"), filepath.Join(dir, "model.bin"))
	if err := os.CopyFS(filepath.Join(dir, "chattok"), os.DirFS(filepath.Join("testdata", "files", "chattok"))); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "r.cue")
	writeFile(t, file, `model: {path: "model.bin", tokenizer: "chattok"}
calibration: {data: {path: "chat.jsonl", format: "chat", thinking: true, split: {from: 0.2, to: 0.7}}, samples: 8, seqLen: 32}
dense: false
runs: r: {prune: {paradigm: "depth", method: "shortgpt", remove: 1}, recovery: {method: "lora", steps: 5}}
`)
	got, err := Compile(file)
	if err != nil {
		t.Fatal(err)
	}
	r := got.Runs[0]
	if diff := cmp.Diff(r.Calibration.Data, r.Recovery.Data); diff != "" {
		t.Errorf("recovery data is not the calibration data (-calibration +recovery):\n%s", diff)
	}
}

// TestShapeFromHeader: vet reads a checkpoint's block count from its header
// and rejects an amount the plan could not apply, with the plan's message,
// where the amount was written.
func TestShapeFromHeader(t *testing.T) {
	model := shareddata.Path(t, "models", "stories260K", "stories260K.bin")
	text := shareddata.Path(t, "text", "tinystories", "tinystories_val.txt")
	file := filepath.Join(t.TempDir(), "r.cue")
	writeFile(t, file, `model: path: "`+model+`"
calibration: {data: path: "`+text+`", samples: 8, seqLen: 32}
dense: false
runs: {
	ratio: prune: {paradigm: "depth", method: "shortgpt", ratio: 0.1}
	remove: prune: {paradigm: "depth", method: "shortgpt", remove: 5}
	ok: prune: {paradigm: "depth", method: "shortgpt", ratio: 0.4}
}
`)
	_, err := Compile(file)
	want := file + `:5:63: runs."ratio".prune.ratio: ratio 0.1 of 5 blocks removes no block` + "\n" +
		file + `:6:65: runs."remove".prune.remove: removing 5 blocks leaves none: the model has 5`
	if err == nil || err.Error() != want {
		t.Errorf("Compile error:\n%v\nwant:\n%s", err, want)
	}
}

// TestNearest: a misspelling finds its field, case folded; a name far from
// every field finds none.
func TestNearest(t *testing.T) {
	fields := []string{"data", "samples", "seqLen", "seed"}
	for name, want := range map[string]string{
		"seqlen": "seqLen", "seqLn": "seqLen", "sample": "samples", "dat": "data", "sed": "seed",
		"windowLength": "", "x": "",
	} {
		if got := nearest(name, fields); got != want {
			t.Errorf("nearest(%q) = %q, want %q", name, got, want)
		}
	}
	if d := editDistance("kitten", "sitting"); d != 3 {
		t.Errorf("editDistance(kitten, sitting) = %d, want 3", d)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestChatTemplateInGGUF: chat data rendered with a GGUF model's own
// tokenizer needs tokenizer.chat_template in the file's metadata; vet reads
// it there (the metadata only) and reports its absence where the format
// was written.
func TestChatTemplateInGGUF(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, filepath.Join("testdata", "files", "chat.jsonl"), filepath.Join(dir, "chat.jsonl"))
	meta := []gguf.KV{{Key: "general.architecture", Value: "llama"}}
	if err := gguf.WriteFile(filepath.Join(dir, "plain.gguf"), meta, nil); err != nil {
		t.Fatal(err)
	}
	withTemplate := append(meta, gguf.KV{Key: "tokenizer.chat_template", Value: "{{ messages[0].content }}"})
	if err := gguf.WriteFile(filepath.Join(dir, "chat.gguf"), withTemplate, nil); err != nil {
		t.Fatal(err)
	}
	for model, want := range map[string]string{
		"chat.gguf":  "",
		"plain.gguf": `:2:50: calibration.data.format: chat data is rendered with the model's chat template, and ` + filepath.Join(dir, "plain.gguf") + " has no tokenizer.chat_template",
	} {
		file := filepath.Join(dir, "r.cue")
		writeFile(t, file, `model: path: "`+model+`"
calibration: {data: {path: "chat.jsonl", format: "chat"}, samples: 8, seqLen: 32}
dense: false
runs: r: prune: {paradigm: "depth", method: "shortgpt", remove: 1}
`)
		_, err := Compile(file)
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", model, err)
		case want != "" && (err == nil || err.Error() != file+want):
			t.Errorf("%s: error\n%v\nwant\n%s", model, err, file+want)
		}
	}
}
