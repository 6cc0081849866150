package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lrmc/internal/shareddata"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/*.golden")

// golden compares got with testdata/name (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -run %s -update rewrites it):\n%s", p, t.Name(), got)
	}
}

// The preview of a stories260K recipe with a LoRA run: the calibration,
// recovery and evaluation documents with their llama2.c pieces, the
// recovery's trained tokens marked.
func TestDataPreviewGolden(t *testing.T) {
	dir := t.TempDir()
	model := shareddata.Path(t, "models", "stories260K", "stories260K.bin")
	text := shareddata.Path(t, "text", "tinystories", "tinystories_val.txt")
	src := fmt.Sprintf(`model: path: %[1]q
calibration: {data: {path: %[2]q, format: "text", split: {from: 0, to: 0.9}}, samples: 8, seqLen: 64, seed: 3}
eval: [{task: "perplexity", data: {path: %[2]q, format: "text", split: {from: 0.9, to: 1}}, samples: 4, seqLen: 64}]
prune: {paradigm: "depth", method: "shortgpt", remove: 1}
runs: {
	plain: {}
	lora: recovery: {method: "lora", data: {path: %[2]q, format: "text", split: {from: 0.5, to: 0.9}}, steps: 2, batch: 2, seqLen: 64, lr: 1e-3, rank: 2, alpha: 4, targets: ["q"], seed: 1}
}
output: dir: "out"
`, model, text)
	recipe := filepath.Join(dir, "r.cue")
	if err := os.WriteFile(recipe, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := lrmc(t, "--cache", filepath.Join(dir, "cache"), "data", "preview", recipe, "--run", "lora", "--n", "1", "--pieces", "24")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	golden(t, "preview-stories260k.golden", out)

	code, _, errs = lrmc(t, "--cache", filepath.Join(dir, "cache"), "data", "preview", recipe, "--run", "nope")
	if code != 1 || !strings.Contains(errs, `no run "nope" reads data (runs: dense, lora, plain)`) {
		t.Errorf("unknown run: exit %d, %q", code, errs)
	}
}

// The Qwen3 example recipe's preview warns, with counts, that the template
// drops the reasoning of earlier turns: 60 of 98 blocks of the calibration
// split and 12 of 14 of the evaluation split reach the model (72 of the
// file's 112); and that two conversations lose message text (their
// messages hold a second "</think>", and the template keeps what follows
// the last).
func TestDataPreviewWarnsOfDroppedReasoning(t *testing.T) {
	shareddata.Path(t, "text", "reasoning_tool_use", "reason_tool_use_demo_50.think.jsonl")
	shareddata.Path(t, "tokenizers", "qwen3")
	code, out, errs := lrmc(t, "--cache", filepath.Join(t.TempDir(), "cache"), "data", "preview", filepath.Join("..", "..", "recipes", "qwen3-synthetic-chat.cue"), "--n", "0")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"calibration · shortgpt-1 · reason_tool_use_demo_50.think.jsonl [0, 0.8) · chat, the model's chat template, thinking on\n  40 conversations → ",
		"warning: the chat template drops reasoning: 60 of 98 <think> blocks reach the model; 15 of 40 conversations lose some",
		"warning: the chat template drops reasoning: 12 of 14 <think> blocks reach the model; 1 of 10 conversations lose some (first: 44)",
		"warning: the chat template drops or rewrites message text: 234 of 236 messages' text reaches the model verbatim; 2 of 40 conversations lose some (first: 5, 6)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("preview lacks %q:\n%s", want, out)
		}
	}
}
