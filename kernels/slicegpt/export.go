package slicegpt

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"lrmc/internal/atomicfile"
	"lrmc/kernels/llama"
	"lrmc/kernels/safetensors"
)

// The files of a saved sliced model, in its own directory.
const (
	// ConfigFile names the format and holds the shapes.
	ConfigFile = "slicegpt.json"
	// WeightsFile holds every tensor, [out, in] row-major.
	WeightsFile = "slicegpt.safetensors"
	// ReadmeFile says in words what the directory is and what reads it.
	ReadmeFile = "README.md"
)

// Format is the value of the config's "format" field and of the weights'
// "format" metadata.
const Format = "lrmc-slicegpt"

// FormatVersion is the layout's version; Load refuses others.
const FormatVersion = 1

// Unsupported is the message a saved model carries for people and tools.
const Unsupported = "This is a SliceGPT-sliced model in lrmc's own layout: its residual connections carry " +
	"shortcut matrices and its widths differ between blocks, which no standard architecture expresses. " +
	"transformers and llama.cpp cannot load it (there is no config.json and no GGUF); lrmc reads it back " +
	"(kernels/slicegpt.Load)."

// fileConfig is slicegpt.json. The dense shape is spelled out field by
// field (not llama.Config's Go encoding), so the file stays readable and
// stable whatever llama.Config grows.
type fileConfig struct {
	Format        string      `json:"format"`
	FormatVersion int         `json:"format_version"`
	Note          string      `json:"note"`
	Sparsity      float64     `json:"sparsity"`
	Width         int         `json:"width"`
	Dense         denseConfig `json:"dense"`
	Layers        []widths    `json:"layers"`
	// Layout documents the tensors for a reader in another language.
	Layout string `json:"layout"`
}

type denseConfig struct {
	Dim          int          `json:"dim"`
	HiddenDim    int          `json:"hidden_dim"`
	Layers       int          `json:"layers"`
	Heads        int          `json:"heads"`
	KVHeads      int          `json:"kv_heads"`
	HeadDim      int          `json:"head_dim"`
	Vocab        int          `json:"vocab"`
	SeqLen       int          `json:"seq_len"`
	NormEps      float32      `json:"norm_eps"`
	RopeTheta    float64      `json:"rope_theta"`
	RopeStyle    string       `json:"rope_style"`
	RopeScaling  *ropeScaling `json:"rope_scaling,omitempty"`
	QKVBias      bool         `json:"qkv_bias"`
	QKNorm       bool         `json:"qk_norm"`
	TiedOriginal bool         `json:"tied_in_dense_model"`
}

type ropeScaling struct {
	Type                 string  `json:"type"`
	Factor               float64 `json:"factor"`
	LowFreqFactor        float64 `json:"low_freq_factor"`
	HighFreqFactor       float64 `json:"high_freq_factor"`
	OriginalMaxPositions int     `json:"original_max_position_embeddings"`
}

type widths struct {
	In  int `json:"in"`
	Mid int `json:"mid"`
	Out int `json:"out"`
}

const layout = "All matrices [out, in] row-major, applied as y = x·Wᵀ. embedding [vocab, layers[0].in]; per block i: " +
	"wq [heads·head_dim, in], wk and wv [kv_heads·head_dim, in], optional bq, bk, bv and q_norm, k_norm [head_dim] " +
	"as in the dense model, wo [mid, heads·head_dim], attn_shortcut [mid, in], w1 (gate) and w3 (up) [hidden_dim, mid], " +
	"w2 (down) [out, hidden_dim], mlp_shortcut [out, mid]; classifier [vocab, layers[last].out]. " +
	"Block: h = x·attn_shortcutᵀ + wo(attention(rms(x))); y = h·mlp_shortcutᵀ + w2(silu(w1·rms(h)) ⊙ w3·rms(h)); " +
	"logits = classifier·rms(y). rms(x) = x / sqrt(Σx²/dense.dim + norm_eps) over the row's own width, without scale " +
	"(the dense norms' scales are folded into the weights that follow them)."

// named is one tensor of a sliced model under its saved name.
type named struct {
	name  string
	shape []int
	data  []float32
}

// tensors lists m's tensors in the order Save writes them.
func (m *Model) tensors() []named {
	c := m.Config
	q, kv, h, hd := c.QDim(), c.KVDim(), c.HiddenDim, c.HeadDim()
	ts := []named{{"embedding", []int{c.Vocab, m.EmbedWidth()}, m.Embedding}}
	for i, l := range m.Layers {
		p := fmt.Sprintf("layers.%d.", i)
		ts = append(ts,
			named{p + "wq", []int{q, l.In}, l.Wq}, named{p + "wk", []int{kv, l.In}, l.Wk}, named{p + "wv", []int{kv, l.In}, l.Wv})
		if c.QKVBias {
			ts = append(ts, named{p + "bq", []int{q}, l.Bq}, named{p + "bk", []int{kv}, l.Bk}, named{p + "bv", []int{kv}, l.Bv})
		}
		if c.QKNorm {
			ts = append(ts, named{p + "q_norm", []int{hd}, l.QNorm}, named{p + "k_norm", []int{hd}, l.KNorm})
		}
		ts = append(ts,
			named{p + "wo", []int{l.Mid, q}, l.Wo}, named{p + "attn_shortcut", []int{l.Mid, l.In}, l.AttnShortcut},
			named{p + "w1", []int{h, l.Mid}, l.W1}, named{p + "w3", []int{h, l.Mid}, l.W3},
			named{p + "w2", []int{l.Out, h}, l.W2}, named{p + "mlp_shortcut", []int{l.Out, l.Mid}, l.MLPShortcut})
	}
	return append(ts, named{"classifier", []int{c.Vocab, m.HeadWidth()}, m.Classifier})
}

// Save writes m into dir (created if needed) as ConfigFile, WeightsFile
// (tensors in dtype: F32, BF16 or F16) and ReadmeFile. Each file is written
// atomically.
func Save(dir string, m *Model, dtype safetensors.DType) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("slicegpt: save: %w", err)
	}
	var ts []safetensors.Tensor
	for _, t := range m.tensors() {
		st, err := safetensors.FromFloat32(t.name, dtype, t.shape, t.data)
		if err != nil {
			return fmt.Errorf("slicegpt: save: %w", err)
		}
		ts = append(ts, st)
	}
	meta := map[string]string{"format": Format, "note": Unsupported}
	if err := safetensors.WriteFile(filepath.Join(dir, WeightsFile), ts, meta); err != nil {
		return fmt.Errorf("slicegpt: save: %w", err)
	}
	cfg, err := json.MarshalIndent(m.fileConfig(), "", "  ")
	if err != nil {
		return fmt.Errorf("slicegpt: save: %w", err)
	}
	if err := writeFile(filepath.Join(dir, ConfigFile), append(cfg, '\n')); err != nil {
		return err
	}
	readme := fmt.Sprintf("# SliceGPT-sliced model (lrmc)\n\n%s\n\nSliced width %d of %d (slicing ratio %g), %d parameters. "+
		"Files: %s (shapes and format), %s (weights).\n", Unsupported, m.Width, m.Config.Dim, m.Sparsity, m.Params(),
		ConfigFile, WeightsFile)
	return writeFile(filepath.Join(dir, ReadmeFile), []byte(readme))
}

func (m *Model) fileConfig() fileConfig {
	c := m.Config
	f := fileConfig{
		Format: Format, FormatVersion: FormatVersion, Note: Unsupported, Sparsity: m.Sparsity, Width: m.Width,
		Dense: denseConfig{
			Dim: c.Dim, HiddenDim: c.HiddenDim, Layers: c.Layers, Heads: c.Heads, KVHeads: c.KVHeads,
			HeadDim: c.HeadDim(), Vocab: c.Vocab, SeqLen: c.SeqLen, NormEps: c.NormEps, RopeTheta: c.RopeTheta,
			RopeStyle: c.RopeStyle.String(), QKVBias: c.QKVBias, QKNorm: c.QKNorm, TiedOriginal: c.SharedClassifier,
		},
		Layout: layout,
	}
	if s := c.RopeScaling; s.Type != "" {
		f.Dense.RopeScaling = &ropeScaling{s.Type, s.Factor, s.LowFreqFactor, s.HighFreqFactor, s.OriginalMaxPositions}
	}
	for _, l := range m.Layers {
		f.Layers = append(f.Layers, widths{l.In, l.Mid, l.Out})
	}
	return f
}

// writeFile writes b to path atomically (internal/atomicfile), 0644 like
// the weights beside it.
func writeFile(path string, b []byte) error {
	if err := atomicfile.WriteBytes(path, 0o644, b); err != nil {
		return fmt.Errorf("slicegpt: save: %w", err)
	}
	return nil
}

// IsSaved reports whether dir holds a saved sliced model (its ConfigFile).
func IsSaved(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, ConfigFile))
	return err == nil && st.Mode().IsRegular()
}

// maxConfigBytes bounds the config read: a real one is a few KiB.
const maxConfigBytes = 1 << 20

// ReadConfig reads a saved model's ConfigFile only: the returned model has
// its configuration and block widths and no tensors (for inspection).
func ReadConfig(dir string) (*Model, error) {
	cpath := filepath.Join(dir, ConfigFile)
	raw, err := readConfig(dir, cpath)
	if err != nil {
		return nil, err
	}
	return skeleton(cpath, raw)
}

func readConfig(dir, cpath string) ([]byte, error) {
	st, err := os.Stat(cpath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("slicegpt: %s: no %s: not a saved SliceGPT model", dir, ConfigFile)
		}
		return nil, fmt.Errorf("slicegpt: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() > maxConfigBytes {
		return nil, fmt.Errorf("slicegpt: %s: not a regular file of at most %d bytes", cpath, maxConfigBytes)
	}
	raw, err := os.ReadFile(cpath)
	if err != nil {
		return nil, fmt.Errorf("slicegpt: %w", err)
	}
	return raw, nil
}

// Load reads a sliced model saved by Save. Every shape is checked against
// the config (and the config against llama's limits) before a tensor is
// read, and errors name the file and the field or tensor.
func Load(dir string) (*Model, error) {
	cpath := filepath.Join(dir, ConfigFile)
	raw, err := readConfig(dir, cpath)
	if err != nil {
		return nil, err
	}
	m, err := skeleton(cpath, raw)
	if err != nil {
		return nil, err
	}
	wpath := filepath.Join(dir, WeightsFile)
	sf, err := safetensors.Open(wpath)
	if err != nil {
		return nil, fmt.Errorf("slicegpt: %w", err)
	}
	defer sf.Close()
	if err := m.fill(wpath, sf.Tensor, len(sf.Names())); err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%w (%s)", err, dir)
	}
	return m, nil
}

// skeleton parses a config (where names it in errors) into a model with
// its shapes set and no tensors.
func skeleton(where string, raw []byte) (*Model, error) {
	var f fileConfig
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("slicegpt: %s: %w", where, err)
	}
	if f.Format != Format {
		return nil, fmt.Errorf("slicegpt: %s: format is %q, want %q", where, f.Format, Format)
	}
	if f.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("slicegpt: %s: format_version %d, this lrmc reads %d", where, f.FormatVersion, FormatVersion)
	}
	c, err := f.Dense.config()
	if err != nil {
		return nil, fmt.Errorf("slicegpt: %s: dense: %w", where, err)
	}
	if len(f.Layers) != c.Layers {
		return nil, fmt.Errorf("slicegpt: %s: layers lists %d blocks, dense.layers says %d", where, len(f.Layers), c.Layers)
	}
	m := &Model{Config: c, Width: f.Width, Sparsity: f.Sparsity, Layers: make([]Layer, c.Layers)}
	for i, w := range f.Layers {
		for _, v := range []struct {
			name string
			v    int
		}{{"in", w.In}, {"mid", w.Mid}, {"out", w.Out}} {
			if v.v < 1 || v.v > c.Dim {
				return nil, fmt.Errorf("slicegpt: %s: layers[%d].%s is %d, outside [1, dense.dim = %d]", where, i, v.name, v.v, c.Dim)
			}
		}
		m.Layers[i].In, m.Layers[i].Mid, m.Layers[i].Out = w.In, w.Mid, w.Out
	}
	return m, nil
}

// fill reads m's tensors, whose shapes the widths already set imply, from
// a file (where names it in errors): each is checked against its expected
// shape before it is widened, and the file must hold nothing else.
func (m *Model) fill(where string, get func(string) (safetensors.Tensor, bool), count int) error {
	want := m.tensors()
	fields := m.fields()
	for k, t := range want {
		st, ok := get(t.name)
		if !ok {
			return fmt.Errorf("slicegpt: %s: tensor %s is missing", where, t.name)
		}
		if !equalShape(st.Shape, t.shape) {
			return fmt.Errorf("slicegpt: %s: tensor %s has shape %v, want %v", where, t.name, st.Shape, t.shape)
		}
		data, err := st.Float32()
		if err != nil {
			return fmt.Errorf("slicegpt: %s: tensor %s: %w", where, t.name, err)
		}
		*fields[k] = data
	}
	if count != len(want) {
		return fmt.Errorf("slicegpt: %s: %d tensors, the config implies %d", where, count, len(want))
	}
	return nil
}

// fields returns pointers to m's tensor fields in tensors()'s order.
func (m *Model) fields() []*[]float32 {
	c := m.Config
	fs := []*[]float32{&m.Embedding}
	for i := range m.Layers {
		l := &m.Layers[i]
		fs = append(fs, &l.Wq, &l.Wk, &l.Wv)
		if c.QKVBias {
			fs = append(fs, &l.Bq, &l.Bk, &l.Bv)
		}
		if c.QKNorm {
			fs = append(fs, &l.QNorm, &l.KNorm)
		}
		fs = append(fs, &l.Wo, &l.AttnShortcut, &l.W1, &l.W3, &l.W2, &l.MLPShortcut)
	}
	return append(fs, &m.Classifier)
}

func equalShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (d denseConfig) config() (llama.Config, error) {
	c := llama.Config{
		Dim: d.Dim, HiddenDim: d.HiddenDim, Layers: d.Layers, Heads: d.Heads, KVHeads: d.KVHeads, Vocab: d.Vocab,
		SeqLen: d.SeqLen, NormEps: d.NormEps, RopeTheta: d.RopeTheta, QKVBias: d.QKVBias, QKNorm: d.QKNorm,
		SharedClassifier: d.TiedOriginal,
	}
	if d.Heads > 0 && d.HeadDim != d.Dim/d.Heads {
		c.HeadSize = d.HeadDim
	}
	switch d.RopeStyle {
	case llama.RopeInterleaved.String():
		c.RopeStyle = llama.RopeInterleaved
	case llama.RopeHalf.String():
		c.RopeStyle = llama.RopeHalf
	default:
		return c, fmt.Errorf("rope_style %q is not %q or %q", d.RopeStyle, llama.RopeInterleaved, llama.RopeHalf)
	}
	if s := d.RopeScaling; s != nil {
		c.RopeScaling = llama.RopeScaling{Type: s.Type, Factor: s.Factor, LowFreqFactor: s.LowFreqFactor,
			HighFreqFactor: s.HighFreqFactor, OriginalMaxPositions: s.OriginalMaxPositions}
	}
	if d.Layers < 1 {
		return c, fmt.Errorf("layers is %d, a sliced model has at least 1", d.Layers)
	}
	return c, c.Validate()
}
