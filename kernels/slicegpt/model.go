// Package slicegpt is SliceGPT (Ashkboos et al., ICLR 2024; reference code
// microsoft/TransformerCompression, src/slicegpt) on lrmc's kernels: it
// folds every RMSNorm scale into the linear layers that read the norm's
// output, rotates the residual stream of each block into the principal
// components of its calibration activations, and deletes the least
// significant rows and columns, so every weight matrix that touches the
// residual stream shrinks from d to d' = ⌊(1−s)·d⌋ (rounded down to a
// multiple of 8).
//
// The rotation differs between the attention input, the MLP input and the
// block output of every layer, so the residual connections carry shortcut
// matrices Q_lᵀQ_{l+1} (sliced): a sliced model is not a Llama model of a
// smaller width, and has its own representation (Model) and forward pass.
// Standard tools (transformers, llama.cpp) cannot load it; Save writes an
// lrmc-only safetensors layout that Load reads back.
//
// The RMSNorms become plain (no scale) and keep dividing by the dense width
// d, not by d': the reference replaces them with RMSN(hidden_size), which
// sums the squares of the d' kept coordinates and divides by d. Since a
// rotation keeps ‖x‖ and the deleted coordinates carry the least energy, the
// norm of the sliced vector stays close to the dense one.
//
// Where this package departs from the reference, and why:
//   - The reference's fuse_modules also subtracts each embedding row's
//     mean, which LayerNorm models (OPT) need and RMSNorm models do not:
//     for an RMSNorm model it changes the function. It is not done here, so
//     s = 0 reproduces the dense logits.
//   - The reference's RMSN uses ε = 1e-5 whatever the model; here the
//     model's own ε is kept (Qwen3 uses 1e-6), for the same reason.
//   - run_slicegpt.py defaults to --final-orientation random, which turns
//     the kept d' coordinates by a random rotation after the PCA. That
//     rotation is inside the kept subspace, so it changes neither the
//     function nor the perplexity, only rounding; PCA orientation (the
//     reference's other choice) keeps the result deterministic.
//   - Weights are rotated and folded in float64 and rounded to float32
//     once (the reference rounds to the model's dtype after each step).
//   - Padding masks are not needed: calibration windows are full.
package slicegpt

import (
	"fmt"

	"lrmc/kernels/llama"
)

// Layer is one sliced transformer block. Every matrix is [out, in]
// row-major, like llama.Layer's. The block maps a residual of width In to
// one of width Out through an intermediate of width Mid (between the
// attention and the MLP):
//
//	h   = x·AttnShortcutᵀ + Wo·attn(Wq, Wk, Wv on rms(x))
//	out = h·MLPShortcutᵀ + W2·(SiLU(W1·rms(h)) ⊙ W3·rms(h))
//
// where rms(x) = x / sqrt(Σx²/Dim + eps) has no scale (it was folded into
// Wq, Wk, Wv and W1, W3) and divides by the dense width Dim.
type Layer struct {
	In, Mid, Out int

	Wq     []float32 // [QDim, In]
	Wk, Wv []float32 // [KVDim, In]
	// Bq [QDim], Bk and Bv [KVDim] when the dense config has QKVBias, and
	// QNorm, KNorm [HeadDim] when it has QKNorm: the rotation leaves the
	// projections' outputs alone, so these are the dense model's.
	Bq, Bk, Bv   []float32
	QNorm, KNorm []float32
	Wo           []float32 // [Mid, QDim]
	AttnShortcut []float32 // [Mid, In]
	W1, W3       []float32 // gate and up: [HiddenDim, Mid]
	W2           []float32 // down: [Out, HiddenDim]
	MLPShortcut  []float32 // [Out, Mid]
}

// Model is a sliced model. Config is the dense model's shape: Dim is the
// dense width d, which the norms divide by; the residual widths are the
// layers' In, Mid and Out.
type Model struct {
	Config llama.Config
	// Width is d', the width every slice was cut to; the last block's
	// output (and the classifier's input) keeps Dim, as the reference
	// does when it does not slice the head.
	Width int
	// Sparsity is the slicing ratio s the model was made with.
	Sparsity float64

	Embedding  []float32 // [Vocab, Layers[0].In]
	Layers     []Layer
	Classifier []float32 // [Vocab, Layers[last].Out]; the final norm's scale is folded in
}

// EmbedWidth is the width of the embedding rows (the first block's input).
func (m *Model) EmbedWidth() int { return m.Layers[0].In }

// HeadWidth is the width of the classifier's input (the last block's output).
func (m *Model) HeadWidth() int { return m.Layers[len(m.Layers)-1].Out }

// Validate checks the configuration, that consecutive blocks agree on the
// residual width, and that every tensor has the length the widths imply,
// naming the first that does not.
func (m *Model) Validate() error {
	c := m.Config
	if err := c.Validate(); err != nil {
		return fmt.Errorf("slicegpt: %w", err)
	}
	if len(m.Layers) == 0 || len(m.Layers) != c.Layers {
		return fmt.Errorf("slicegpt: model has %d layers, config says %d (at least 1)", len(m.Layers), c.Layers)
	}
	if m.Width < 1 || m.Width > c.Dim {
		return fmt.Errorf("slicegpt: sliced width %d outside [1, %d]", m.Width, c.Dim)
	}
	check := func(name string, t []float32, want int) error {
		if len(t) != want {
			return fmt.Errorf("slicegpt: tensor %s has %d floats, want %d", name, len(t), want)
		}
		return nil
	}
	optional := func(on bool, n int) int {
		if on {
			return n
		}
		return 0
	}
	q, kv, h, hd := c.QDim(), c.KVDim(), c.HiddenDim, c.HeadDim()
	if err := check("embedding", m.Embedding, c.Vocab*m.EmbedWidth()); err != nil {
		return err
	}
	width := func(name string, w int) error {
		if w < 1 || w > c.Dim {
			return fmt.Errorf("slicegpt: %s width %d outside [1, %d]", name, w, c.Dim)
		}
		return nil
	}
	for i, l := range m.Layers {
		for _, w := range []struct {
			name string
			v    int
		}{{"in", l.In}, {"mid", l.Mid}, {"out", l.Out}} {
			if err := width(fmt.Sprintf("layers.%d.%s", i, w.name), w.v); err != nil {
				return err
			}
		}
		if i > 0 && l.In != m.Layers[i-1].Out {
			return fmt.Errorf("slicegpt: layers.%d takes a residual of width %d but layers.%d gives %d",
				i, l.In, i-1, m.Layers[i-1].Out)
		}
		for _, t := range []struct {
			name string
			data []float32
			want int
		}{
			{"wq", l.Wq, q * l.In}, {"wk", l.Wk, kv * l.In}, {"wv", l.Wv, kv * l.In},
			{"bq", l.Bq, optional(c.QKVBias, q)}, {"bk", l.Bk, optional(c.QKVBias, kv)}, {"bv", l.Bv, optional(c.QKVBias, kv)},
			{"q_norm", l.QNorm, optional(c.QKNorm, hd)}, {"k_norm", l.KNorm, optional(c.QKNorm, hd)},
			{"wo", l.Wo, l.Mid * q}, {"attn_shortcut", l.AttnShortcut, l.Mid * l.In},
			{"w1", l.W1, h * l.Mid}, {"w3", l.W3, h * l.Mid}, {"w2", l.W2, l.Out * h},
			{"mlp_shortcut", l.MLPShortcut, l.Out * l.Mid},
		} {
			if err := check(fmt.Sprintf("layers.%d.%s", i, t.name), t.data, t.want); err != nil {
				return err
			}
		}
	}
	return check("classifier", m.Classifier, c.Vocab*m.HeadWidth())
}

// Params counts the sliced model's parameters, the shortcut matrices
// included (the reference counts them too: they are weights the model
// multiplies by).
func (m *Model) Params() int64 {
	n := int64(len(m.Embedding) + len(m.Classifier))
	for _, l := range m.Layers {
		for _, t := range [][]float32{l.Wq, l.Wk, l.Wv, l.Bq, l.Bk, l.Bv, l.QNorm, l.KNorm, l.Wo, l.AttnShortcut,
			l.W1, l.W3, l.W2, l.MLPShortcut} {
			n += int64(len(t))
		}
	}
	return n
}
