package synth

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"lrmc/kernels/hf"
	"lrmc/kernels/llama"
	"lrmc/kernels/safetensors"
)

// WriteHF streams the checkpoint hf.Save writes for New's model: the same
// config.json and every tensor with the same shape and bytes, for each
// architecture and dtype, sharded or not; and a bf16 checkpoint loads
// straight into the bf16 model New makes.
func TestWriteHFIsSaveOfNew(t *testing.T) {
	for _, c := range []struct {
		arch, dtype string
		shard       int64
	}{
		{"llama", "bfloat16", 6000}, {"qwen2", "float32", 1 << 30}, {"qwen3", "float16", 9000}, {"mistral", "bfloat16", 1 << 30},
	} {
		s := Spec{Arch: c.arch, Layers: 3, Dim: 32, Heads: 4, KVHeads: 2, FFN: 48, Vocab: 64, SeqLen: 64, Seed: 11, Tie: c.arch == "qwen3"}
		m, cfg, err := New(s)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		want, got := filepath.Join(dir, "save"), filepath.Join(dir, "write")
		if err := hf.Save(want, m, cfg, c.dtype, c.shard); err != nil {
			t.Fatal(err)
		}
		if err := WriteHF(got, s, c.dtype, c.shard); err != nil {
			t.Fatal(err)
		}
		what := c.arch + "/" + c.dtype
		wc, _ := os.ReadFile(filepath.Join(want, hf.ConfigFileName))
		gc, _ := os.ReadFile(filepath.Join(got, hf.ConfigFileName))
		if !bytes.Equal(wc, gc) {
			t.Errorf("%s: config.json differs:\n%s\nwant\n%s", what, gc, wc)
		}
		wr, err := safetensors.OpenDir(want)
		if err != nil {
			t.Fatal(err)
		}
		gr, err := safetensors.OpenDir(got)
		if err != nil {
			t.Fatal(err)
		}
		// A single file lists names in data order, which differs; the set
		// must not.
		wn, gn := wr.Names(), gr.Names()
		slices.Sort(wn)
		slices.Sort(gn)
		if !slices.Equal(wn, gn) {
			t.Fatalf("%s: tensors %v, want %v", what, gn, wn)
		}
		_, sharded := gr.(*safetensors.Index)
		if sharded != (c.shard < 1<<20) {
			t.Errorf("%s: sharded=%v with shards of %d bytes", what, sharded, c.shard)
		}
		for _, name := range wr.Names() {
			w, _ := wr.Tensor(name)
			g, _ := gr.Tensor(name)
			if w.DType != g.DType || !slices.Equal(w.Shape, g.Shape) || !bytes.Equal(w.Data, g.Data) {
				t.Errorf("%s: tensor %s is %s %v, want %s %v, or its bytes differ", what, name, g.DType, g.Shape, w.DType, w.Shape)
			}
		}
		wr.Close()
		gr.Close()
	}

	s := Spec{Arch: "llama", Layers: 2, Dim: 32, Heads: 4, KVHeads: 2, FFN: 48, Vocab: 64, SeqLen: 64, Seed: 5}
	dir := t.TempDir()
	if err := WriteHF(dir, s, "bfloat16", 1<<30); err != nil {
		t.Fatal(err)
	}
	loaded, _, err := hf.LoadDType(dir, "bfloat16")
	if err != nil {
		t.Fatal(err)
	}
	s.DType = llama.BFloat16
	ref, _, err := New(s)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ref.Layers {
		if !slices.Equal(loaded.Layers[i].Half.W2, ref.Layers[i].Half.W2) || !slices.Equal(loaded.Layers[i].Half.Wq, ref.Layers[i].Half.Wq) {
			t.Errorf("layer %d: the loaded bf16 weights differ from New's", i)
		}
	}
	if err := WriteHF(t.TempDir(), s, "bfloat16", 1<<30); err == nil || !strings.Contains(err.Error(), "Spec.DType") {
		t.Errorf("WriteHF with Spec.DType set: %v, want an error naming Spec.DType", err)
	}
}
