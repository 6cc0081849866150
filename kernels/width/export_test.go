package width

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"lrmc/kernels/hf"
	"lrmc/kernels/llama2c"
)

// Formats that hold one shape for every block refuse a model whose blocks
// differ, or that has output biases, with a message pointing at GGUF; a
// uniformly pruned model exports.
func TestExportFormatsRefuse(t *testing.T) {
	m := testModel(t, shapes["llama2c"])
	p := randomPlan(m.Config, 5)
	pruned, err := Prune(m, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := hf.Save(filepath.Join(dir, "hf"), pruned, nil, "float32", 0); err == nil || !strings.Contains(err.Error(), "blocks differ in heads or MLP width, which a config.json cannot express (export GGUF") {
		t.Errorf("hf.Save: %v", err)
	}
	if err := llama2c.Write(&bytes.Buffer{}, pruned); err == nil || !strings.Contains(err.Error(), "blocks differ in heads or MLP width; the format holds one shape for every block") {
		t.Errorf("llama2c.Write: %v", err)
	}
	// Uniform: every block keeps kv heads 0, 2 and the first 30 channels.
	u := Full(m.Config)
	for i := range u {
		u[i] = LayerPlan{KVHeads: []int{0, 2}, Channels: u[i].Channels[:30]}
	}
	up, err := Prune(m, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !up.Config.Uniform() || up.Config.Heads != 4 || up.Config.HeadDim() != 4 {
		t.Fatalf("uniform plan: %+v", up.Config)
	}
	if err := hf.Save(filepath.Join(dir, "hf"), up, nil, "float32", 0); err != nil {
		t.Fatalf("hf.Save of a uniformly pruned model: %v", err)
	}
	back, _, err := hf.Load(filepath.Join(dir, "hf"))
	if err != nil {
		t.Fatal(err)
	}
	toks := tokens(8, m.Config.Vocab, 1)
	if e := relErr(back.Forward(toks, 1, 8), up.Forward(toks, 1, 8)); e > 1e-5 {
		t.Errorf("HF round trip of a uniformly pruned model: logits differ by %.3g", e)
	}
	// llama2.c needs heads of Dim/Heads: pruned heads cannot be written.
	if err := llama2c.Write(&bytes.Buffer{}, up); err == nil || !strings.Contains(err.Error(), "the format needs heads of dim/heads") {
		t.Errorf("llama2c.Write of fewer heads: %v", err)
	}
	comp, err := Prune(m, Full(m.Config), &Compensation{})
	if err != nil {
		t.Fatal(err)
	}
	if err := hf.Save(filepath.Join(dir, "hf2"), comp, nil, "float32", 0); err == nil || !strings.Contains(err.Error(), "o_proj/down_proj output biases") {
		t.Errorf("hf.Save with output biases: %v", err)
	}
	if err := llama2c.Write(&bytes.Buffer{}, comp); err == nil || !strings.Contains(err.Error(), "no attention output or down projection biases") {
		t.Errorf("llama2c.Write with output biases: %v", err)
	}
}
