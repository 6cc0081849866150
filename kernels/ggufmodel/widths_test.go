package ggufmodel

import (
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"lrmc/kernels/gguf"
	"lrmc/kernels/llama"
	"lrmc/kernels/synth"
	"lrmc/kernels/width"
)

// widthPruned is a synthetic model of spec s pruned to differing widths
// per block, with output biases (as FLAP leaves).
func widthPruned(t *testing.T, s synth.Spec) *llama.Model {
	t.Helper()
	m, _, err := synth.New(s)
	if err != nil {
		t.Fatal(err)
	}
	p := width.Full(m.Config)
	p[0].KVHeads, p[0].Channels = p[0].KVHeads[1:], p[0].Channels[3:]
	p[1].Channels = p[1].Channels[:5]
	comp := &width.Compensation{MLPMean: make([][]float64, m.Config.Layers)}
	comp.MLPMean[1] = make([]float64, m.Config.HiddenDim)
	for j := range comp.MLPMean[1] {
		comp.MLPMean[1][j] = 0.5 + float64(j)
	}
	pm, err := width.Prune(m, p, comp)
	if err != nil {
		t.Fatal(err)
	}
	if pm.Config.Uniform() || !pm.Config.OutBias {
		t.Fatalf("pruned config %+v", pm.Config)
	}
	return pm
}

// A model whose blocks differ in heads and MLP width round-trips through
// GGUF per-block arrays: llama as deci (int32 arrays, explicit key_length),
// qwen3 under its own name; same config, bit-identical logits.
func TestPerLayerWidthsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		spec synth.Spec
		arch string
	}{
		{synth.Spec{Arch: "llama", Layers: 3, Dim: 32, Heads: 8, KVHeads: 4, FFN: 44, Vocab: 40, SeqLen: 32, Seed: 1}, "deci"},
		{synth.Spec{Arch: "qwen3", Layers: 3, Dim: 32, Heads: 4, KVHeads: 2, HeadDim: 12, FFN: 40, Vocab: 40, SeqLen: 32, Tie: true, Seed: 2}, "qwen3"},
	} {
		m := widthPruned(t, tc.spec)
		path := filepath.Join(t.TempDir(), "w.gguf")
		var meta *Meta
		if tc.spec.Arch != "llama" {
			meta = &Meta{Architecture: tc.spec.Arch}
		}
		if err := Save(path, m, meta, "f32"); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		arch, _ := f.String("general.architecture")
		heads, _ := f.Value(arch + ".attention.head_count")
		ffn, _ := f.Value(arch + ".feed_forward_length")
		keyLen, _ := f.Value(arch + ".attention.key_length")
		f.Close()
		c := m.Config
		wantHeads, wantFFN := make([]int32, c.Layers), make([]int32, c.Layers)
		for i := range c.Layers {
			wantHeads[i], wantFFN[i] = int32(c.Width(i).Heads), int32(c.Width(i).HiddenDim)
		}
		if arch != tc.arch || !reflect.DeepEqual(heads, wantHeads) || !reflect.DeepEqual(ffn, wantFFN) || keyLen != uint32(c.HeadDim()) {
			t.Fatalf("%s: file has architecture %q, head_count %v, feed_forward_length %v, key_length %v; want %s, %v, %v, %d",
				tc.spec.Arch, arch, heads, ffn, keyLen, tc.arch, wantHeads, wantFFN, c.HeadDim())
		}
		back, _, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		// GGUF llama/deci store q/k rows for interleaved RoPE (synth's
		// llama is Hugging Face's rotate-half); that permutation reorders
		// the q·k sums, so those logits agree to rounding, qwen3's exactly.
		bc := back.Config
		bc.RopeStyle = m.Config.RopeStyle
		if !reflect.DeepEqual(bc, m.Config) {
			t.Fatalf("%s: loaded config %+v, saved %+v", tc.spec.Arch, back.Config, m.Config)
		}
		toks := []int32{1, 7, 3, 9, 2, 30, 5}
		got, want := back.Forward(toks, 1, len(toks)), m.Forward(toks, 1, len(toks))
		var scale float64
		for _, v := range want {
			scale = math.Max(scale, math.Abs(float64(v)))
		}
		for i := range want {
			d := math.Abs(float64(got[i] - want[i]))
			if (back.Config.RopeStyle == m.Config.RopeStyle && d != 0) || d > 1e-5*scale {
				t.Fatalf("%s: logit %d: loaded %g, saved %g", tc.spec.Arch, i, got[i], want[i])
			}
		}
	}
}

// A per-block array of the wrong length is an error naming the key.
func TestPerLayerArrayLength(t *testing.T) {
	m := widthPruned(t, synth.Spec{Arch: "llama", Layers: 3, Dim: 32, Heads: 8, KVHeads: 4, FFN: 44, Vocab: 40, SeqLen: 32, Seed: 1})
	path := filepath.Join(t.TempDir(), "w.gguf")
	if err := Save(path, m, nil, "f32"); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	kvs := append([]gguf.KV(nil), f.Metadata...)
	var ts []gguf.Tensor
	for _, tn := range f.Tensors {
		ts = append(ts, gguf.Tensor{Name: tn.Name, Type: tn.Type, Dims: tn.Dims, Data: append([]byte(nil), tn.Data...)})
	}
	f.Close()
	for i := range kvs {
		if kvs[i].Key == "deci.feed_forward_length" {
			kvs[i].Value = []int32{10, 20}
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.gguf")
	if err := gguf.WriteFile(bad, kvs, ts); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "deci.feed_forward_length has 2 entries for 3 blocks") {
		t.Fatalf("Load = %v", err)
	}
}
