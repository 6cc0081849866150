package planner_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lrmc/compiler"
	"lrmc/compiler/ir"
	"lrmc/digest"
	"lrmc/planner"
)

// FuzzCompilePlan feeds recipe text through the compiler and the planner,
// as vet, plan and apply do before running anything. Errors are expected
// for most inputs; a panic (or a hang) is a bug.
//
// The compiler checks files relative to the recipe, so the text is written
// to recipe.cue in a directory whose neighbourhood holds small stand-ins
// for every file the seed recipes name: compiler/testdata/files under
// files/, a hub cache with org/tiny, and the shared data paths the example
// recipes reach with ../../ and the compiler's testdata with ../../../.
func FuzzCompilePlan(f *testing.F) {
	for _, glob := range []string{"../recipes/*.cue", "../compiler/testdata/*.cue"} {
		files, err := filepath.Glob(glob)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(string(b))
		}
	}

	root := f.TempDir()
	dir := filepath.Join(root, "x", "y", "z")
	if err := os.CopyFS(filepath.Join(dir, "files"), os.DirFS("../compiler/testdata/files")); err != nil {
		f.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(root, "hub"), os.DirFS("../compiler/testdata/hub")); err != nil {
		f.Fatal(err)
	}
	f.Setenv("HF_HUB_CACHE", filepath.Join(root, "hub"))
	for _, shared := range []string{filepath.Join(root, "x", "shared", "data"), filepath.Join(root, "shared", "data")} {
		for name, content := range map[string]string{
			"models/stories260K/stories260K.bin":                          "weights",
			"models/stories260K/tok512.bin":                               "tokenizer",
			"tokenizers/qwen3/tokenizer.json":                             `{"model": {"type": "BPE", "vocab": {}, "merges": []}}`,
			"tokenizers/qwen3/tokenizer_config.json":                      `{}`,
			"text/tinystories/tinystories_val.txt":                        "Once upon a time.\n\nThe end.\n",
			"text/reasoning_tool_use/reason_tool_use_demo_50.think.jsonl": `{"messages": [{"role": "user", "content": "hi"}]}` + "\n",
		} {
			path := filepath.Join(shared, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				f.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				f.Fatal(err)
			}
		}
	}
	recipe := filepath.Join(dir, "recipe.cue")
	env := stubEnv{tokenizer: filepath.Join(dir, "files", "tok.bin")}

	f.Fuzz(func(t *testing.T, text string) {
		if err := os.WriteFile(recipe, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := compiler.Compile(recipe)
		if err != nil {
			var es compiler.Errors
			if !errors.As(err, &es) {
				t.Fatalf("Compile error is %T, not compiler.Errors: %v", err, err)
			}
			return
		}
		g, err := planner.Plan(r, env)
		if err != nil {
			return
		}
		// What graph prints, with nothing and with everything cached.
		for _, cached := range []bool{false, true} {
			st := g.Statuses(func(*planner.Node) bool { return cached })
			g.RenderDOT(io.Discard, st)
		}
		if !filepath.IsAbs(g.OutDir) {
			t.Errorf("output directory %q is not absolute", g.OutDir)
		}
		for _, o := range g.Outputs {
			if !filepath.IsLocal(o.Path) {
				t.Errorf("output %q leaves the output directory", o.Path)
			}
		}
	})
}

// stubEnv answers for a fixed small model without reading checkpoints:
// bounding what a real header claims is the real Env's job, so the stub's
// shape stays small and planning stays fast.
type stubEnv struct {
	tokenizer string // used when the recipe names none
}

func (stubEnv) FileDigest(path string) (digest.Digest, error) {
	st, err := os.Stat(path)
	if err != nil {
		return digest.Digest{}, err
	}
	switch {
	case st.IsDir():
		return digest.Of([]byte("dir:" + path)), nil
	case !st.Mode().IsRegular():
		return digest.Digest{}, fmt.Errorf("%s: not a regular file", path)
	case st.Size() > 1<<20:
		// Only the stand-ins are read; a big file elsewhere is named.
		return digest.Of(fmt.Appendf(nil, "%s:%d", path, st.Size())), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return digest.Digest{}, err
	}
	return digest.Of(b), nil
}

func (e stubEnv) Model(m ir.Model) (planner.ModelInfo, error) {
	info := planner.ModelInfo{Format: "llama2c", Tokenizer: m.Tokenizer, TokenizerFormat: "llama2c", Blocks: 6, Dim: 64, Vocab: 512, SeqLen: 2048}
	if s := m.Synthetic; s != nil {
		info.Format, info.Blocks, info.Dim, info.SeqLen = "synthetic", min(max(s.Layers, 1), 64), s.Dim, s.SeqLen
	} else if st, err := os.Stat(m.Path); err == nil && st.IsDir() {
		info.Format = "hf"
	}
	if info.Tokenizer == "" {
		info.Tokenizer = e.tokenizer
		if info.Format == "hf" {
			info.Tokenizer = m.Path
		}
	}
	if st, err := os.Stat(info.Tokenizer); err == nil && st.IsDir() || strings.HasSuffix(info.Tokenizer, ".json") {
		info.TokenizerFormat = "hf"
	}
	return info, nil
}
