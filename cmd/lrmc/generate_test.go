package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"lrmc/internal/shareddata"
	"lrmc/kernels/hf"
	"lrmc/kernels/synth"
)

// genJSON is what generate --json prints.
type genJSON struct {
	Prompt       string  `json:"prompt"`
	PromptIDs    []int32 `json:"prompt_ids"`
	IDs          []int32 `json:"ids"`
	Text         string  `json:"text"`
	Stop         string  `json:"stop"`
	StopSequence string  `json:"stop_sequence"`
}

// generateJSON runs generate --json with args and decodes its output.
func generateJSON(t *testing.T, args ...string) genJSON {
	t.Helper()
	code, out, errs := lrmc(t, append([]string{"generate", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("generate %q: exit %d: %s", args, code, errs)
	}
	var g genJSON
	if err := json.Unmarshal([]byte(out), &g); err != nil {
		t.Fatalf("generate %q printed %q: %v", args, out, err)
	}
	return g
}

// TestGenerateBinAndGGUFAgree: stories260K as a llama2.c checkpoint and as
// GGUF prints the same greedy text, the run.c way and by new tokens.
func TestGenerateBinAndGGUFAgree(t *testing.T) {
	bin := shareddata.Path(t, "models", "stories260K", "stories260K.bin")
	gg := shareddata.Path(t, "models", "stories260K", "stories260K.gguf")
	for _, limit := range [][]string{{"--max-tokens", "200"}, {"--max-new-tokens", "150"}} {
		args := append([]string{"generate", "--prompt", "Once upon a time"}, limit...)
		code, a, errs := lrmc(t, append(args, "--model", bin)...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", bin, code, errs)
		}
		code, b, errs := lrmc(t, append(args, "--model", gg)...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", gg, code, errs)
		}
		if a != b || !strings.HasPrefix(a, "Once upon a time") || len(a) < 200 {
			t.Fatalf("%v: .bin printed %q\n.gguf printed %q", limit, a, b)
		}
	}
	// --max-tokens 200 is run.c's 200 positions: 196 new tokens here.
	if g := generateJSON(t, "--model", gg, "--prompt", "Once upon a time", "--max-tokens", "200"); len(g.IDs) != 196 ||
		!slices.Equal(g.PromptIDs, []int32{1, 403, 407, 261, 378}) || g.Stop != "max_tokens" {
		t.Fatalf("--max-tokens 200: %d new ids after %v, stop %q", len(g.IDs), g.PromptIDs, g.Stop)
	}
}

// TestGenerateStopSequences: the output ends before the earliest stop
// sequence, on stdout as in --json.
func TestGenerateStopSequences(t *testing.T) {
	model := shareddata.Path(t, "models", "stories260K", "stories260K.bin")
	const prompt = "Once upon a time"
	full := generateJSON(t, "--model", model, "--prompt", prompt, "--max-new-tokens", "120")
	stops := []string{" and", "."}
	cut := len(full.Text)
	for _, s := range stops {
		if i := strings.Index(full.Text, s); i >= 0 {
			cut = min(cut, i)
		}
	}
	if cut == len(full.Text) || cut == 0 {
		t.Fatalf("the greedy text %q holds no stop sequence to test with", full.Text)
	}
	want := full.Text[:cut]
	args := []string{"generate", "--model", model, "--prompt", prompt, "--max-new-tokens", "120", "--stop", stops[0], "--stop", stops[1]}
	code, out, errs := lrmc(t, args...)
	if code != 0 || out != prompt+want+"\n" {
		t.Fatalf("exit %d, printed %q, want %q: %s", code, out, prompt+want+"\n", errs)
	}
	g := generateJSON(t, args[1:]...)
	if g.Text != want || g.Stop != "stop_sequence" || !strings.HasPrefix(full.Text[cut:], g.StopSequence) ||
		!slices.Equal(g.IDs, full.IDs[:len(g.IDs)]) || len(g.IDs) >= len(full.IDs) {
		t.Fatalf("--json: %+v; want text %q", g, want)
	}
}

// TestGenerateSeeded: sampling with a seed repeats; another seed differs.
func TestGenerateSeeded(t *testing.T) {
	model := shareddata.Path(t, "models", "stories260K", "stories260K.bin")
	run := func(seed string) genJSON {
		return generateJSON(t, "--model", model, "--prompt", "Once upon a time", "--max-new-tokens", "80",
			"--temperature", "1", "--top-p", "0.95", "--seed", seed)
	}
	a, b, c := run("7"), run("7"), run("8")
	if !slices.Equal(a.IDs, b.IDs) || a.Text != b.Text {
		t.Fatalf("seed 7 twice: %q / %q", a.Text, b.Text)
	}
	if slices.Equal(a.IDs, c.IDs) {
		t.Fatalf("seeds 7 and 8 both gave %q", a.Text)
	}
	greedy := generateJSON(t, "--model", model, "--prompt", "Once upon a time", "--max-new-tokens", "80")
	if slices.Equal(a.IDs, greedy.IDs) {
		t.Fatalf("sampling at temperature 1 gave the greedy text %q", a.Text)
	}
}

// qwen3Checkpoint writes a small Qwen3-shaped checkpoint with seeded random
// weights and the real Qwen3 tokenizer files into dir.
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
		copyFile(t, filepath.Join(tokDir, name), filepath.Join(dir, name))
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// chatReference is the Qwen3 part of reference/tokenizers.json.
type chatReference struct {
	Tokenizers map[string]struct {
		Chat []struct {
			Chat   string         `json:"chat"`
			Kwargs map[string]any `json:"kwargs"`
			Text   string         `json:"text"`
			IDs    []int32        `json:"ids"`
		} `json:"chat"`
	} `json:"tokenizers"`
	Chats map[string][]struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"chats"`
}

// TestGenerateChatHF: a Hugging Face checkpoint generates; --chat renders
// the user's message exactly as the Qwen3 template does in the reference
// renderings (transformers' apply_chat_template), ids included; the hf:
// reference to the same files in a hub cache gives the same result.
func TestGenerateChatHF(t *testing.T) {
	var ref chatReference
	b, err := os.ReadFile(shareddata.Path(t, "reference", "tokenizers.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "qwen3-tiny")
	qwen3Checkpoint(t, dir)

	// The reference renders a two-turn chat; its first user turn and its
	// final generation prompt are what one user message renders as.
	const imEnd, imStart = "<|im_end|>\n", "<|im_start|>"
	user := ref.Chats["two_turn"][0].Content
	for _, c := range ref.Tokenizers["qwen3"].Chat {
		if c.Chat != "two_turn" {
			continue
		}
		var args []string
		switch v, ok := c.Kwargs["enable_thinking"]; {
		case !ok:
		case v == false:
			args = []string{"--thinking=false"}
		case v == true:
			args = []string{"--thinking=true"}
		}
		wantText := c.Text[:strings.Index(c.Text, imEnd)+len(imEnd)] + c.Text[strings.LastIndex(c.Text, imStart+"assistant\n"):]
		firstEnd := slices.Index(c.IDs, 151645) // <|im_end|>, then "\n"
		lastStart := len(c.IDs) - 1             // the last <|im_start|>
		for c.IDs[lastStart] != 151644 {
			lastStart--
		}
		wantIDs := append(slices.Clone(c.IDs[:firstEnd+2]), c.IDs[lastStart:]...)
		t.Run(strings.Join(append([]string{"thinking"}, args...), ""), func(t *testing.T) {
			if len(args) == 1 && args[0] == "--thinking=false" &&
				wantText != "<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n" {
				t.Fatalf("reference-derived rendering %q", wantText)
			}
			gargs := append([]string{"--model", dir, "--prompt", user, "--chat", "--max-new-tokens", "12"}, args...)
			g := generateJSON(t, gargs...)
			if g.Prompt != wantText {
				t.Fatalf("rendered %q, want %q", g.Prompt, wantText)
			}
			if !slices.Equal(g.PromptIDs, wantIDs) {
				t.Fatalf("prompt ids %v, want %v", g.PromptIDs, wantIDs)
			}
			if g.Stop == "max_tokens" && len(g.IDs) != 12 || g.Stop == "eos" && len(g.IDs) >= 12 || g.Stop == "stop_sequence" {
				t.Fatalf("%d ids, stop %q", len(g.IDs), g.Stop)
			}
			// Without --json the reply alone is printed, as --json's text.
			code, out, errs := lrmc(t, append([]string{"generate"}, gargs...)...)
			if code != 0 || out != g.Text+"\n" {
				t.Fatalf("exit %d, printed %q, want %q: %s", code, out, g.Text+"\n", errs)
			}
		})
	}

	// A system message comes first.
	g := generateJSON(t, "--model", dir, "--prompt", user, "--chat", "--system", "Be brief.", "--thinking=false", "--max-new-tokens", "1")
	if want := "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n" + user; !strings.HasPrefix(g.Prompt, want) {
		t.Fatalf("with --system: %q, want it to start %q", g.Prompt, want)
	}

	// Plain prompts: Qwen3 has no BOS, so the prompt is the text's ids.
	plain := generateJSON(t, "--model", dir, "--prompt", "Hello, world!", "--max-new-tokens", "16")
	if !slices.Equal(plain.PromptIDs, []int32{9707, 11, 1879, 0}) {
		t.Fatalf("prompt ids %v, want the reference's [9707 11 1879 0]", plain.PromptIDs)
	}

	// The same checkpoint in a hub cache, named hf:ORG/NAME and by commit.
	hub := t.TempDir()
	const commit = "0123456789abcdef0123456789abcdef01234567"
	repo := filepath.Join(hub, "models--lrmc-test--qwen3-tiny")
	snap := filepath.Join(repo, "snapshots", commit)
	if err := os.MkdirAll(filepath.Join(repo, "refs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "refs", "main"), []byte(commit), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir, snap); err != nil {
		if err := os.MkdirAll(filepath.Dir(snap), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(dir, snap); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("HF_HUB_CACHE", hub)
	for _, name := range []string{"hf:lrmc-test/qwen3-tiny", "hf:lrmc-test/qwen3-tiny@" + commit} {
		got := generateJSON(t, "--model", name, "--prompt", "Hello, world!", "--max-new-tokens", "16")
		if !slices.Equal(got.IDs, plain.IDs) || got.Text != plain.Text || !slices.Equal(got.PromptIDs, plain.PromptIDs) {
			t.Fatalf("%s: %+v, want %+v", name, got, plain)
		}
	}
	code, _, errs := lrmc(t, "generate", "--model", "hf:lrmc-test/absent", "--prompt", "x")
	if code == 0 || !strings.Contains(errs, `"hf:lrmc-test/absent": not in the local hub cache `+hub) {
		t.Fatalf("absent repository: exit %d: %s", code, errs)
	}
}

func TestGenerateFlagErrors(t *testing.T) {
	model := shareddata.Path(t, "models", "stories260K", "stories260K.bin")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--thinking=false"}, "--thinking and --system need --chat"},
		{[]string{"--system", "x"}, "--thinking and --system need --chat"},
		{[]string{"--max-tokens", "9", "--max-new-tokens", "9"}, "--max-tokens and --max-new-tokens exclude each other"},
		{[]string{"--chat"}, "the model has no chat template"},
		{[]string{"--stop", ""}, "generate: empty stop sequence"},
	} {
		code, _, errs := lrmc(t, append([]string{"generate", "--model", model, "--prompt", "x"}, c.args...)...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%q: exit %d, stderr %q, want %q", c.args, code, errs, c.want)
		}
	}
}
