package llama

import (
	"fmt"
)

// Layer holds one transformer block's weights, each [out, in] row-major.
// QDim is Dim unless Config.HeadSize makes it differ.
type Layer struct {
	AttnNorm []float32 // [Dim]
	Wq       []float32 // [QDim, Dim]
	Wk, Wv   []float32 // [KVDim, Dim]
	Wo       []float32 // [Dim, QDim]
	FFNNorm  []float32 // [Dim]
	W1, W3   []float32 // gate and up: [HiddenDim, Dim]
	W2       []float32 // down: [Dim, HiddenDim]

	// Bq [QDim], Bk and Bv [KVDim] are the projection biases, present
	// exactly when Config.QKVBias.
	Bq, Bk, Bv []float32
	// QNorm and KNorm [HeadDim] are the per-head query and key RMSNorm
	// weights, present exactly when Config.QKNorm.
	QNorm, KNorm []float32
	// Bo and B2 [Dim] are the attention output and MLP down projection
	// biases, present exactly when Config.OutBias.
	Bo, B2 []float32

	// Half holds Wq…W3 instead when the model stores its weights 16-bit
	// (Model.Half is set); those float32 fields are then nil.
	Half *HalfLayer
}

// Model is a Llama model's configuration and weights.
type Model struct {
	Config Config
	// Embedding is the token embedding table, [Vocab, Dim]. (The field is not
	// called Embed because that is the method that looks tokens up.)
	Embedding  []float32
	Layers     []Layer
	FinalNorm  []float32 // [Dim]
	Classifier []float32 // [Vocab, Dim]; aliases Embedding when Config.SharedClassifier

	// Half, when set, says the model stores its projections, embedding
	// and classifier 16-bit (see DType): it holds the embedding and the
	// classifier, every Layer.Half holds that layer's projections, and the
	// float32 Embedding, Classifier and projection fields are nil.
	Half *HalfWeights

	// Mapped, when set, is the file mapping that some of Half's slices
	// alias (see Pages): they are read-only, and stay valid while Mapped
	// is reachable, so a model built from another's 16-bit slices must
	// carry Mapped along (a copy of the struct, as Keep makes, does).
	Mapped Pages
}

// Validate checks the configuration and that every tensor has the length the
// configuration implies, naming the first tensors that do not. A 16-bit
// model (Half set) must hold its projections, embedding and classifier only
// in 16-bit form, a float32 model only in float32.
func (m *Model) Validate() error {
	c := m.Config
	if err := c.Validate(); err != nil {
		return err
	}
	if len(m.Layers) != c.Layers {
		return fmt.Errorf("llama: model has %d layers, config says %d", len(m.Layers), c.Layers)
	}
	d, v, hd := c.Dim, c.Vocab, c.HeadDim()
	half := m.Half != nil
	if half && m.Half.DType != BFloat16 && m.Half.DType != Float16 {
		return fmt.Errorf("llama: model's 16-bit dtype is %q, want bfloat16 or float16", m.Half.DType)
	}
	// big is the float32 length of a tensor that a 16-bit model holds in
	// 16-bit form instead: none at all.
	big := func(n int) int {
		if half {
			return 0
		}
		return n
	}
	check := func(name string, t []float32, want int) error {
		if len(t) != want {
			if half && want == 0 {
				return fmt.Errorf("llama: tensor %s has %d floats in a %s model, which holds it 16-bit", name, len(t), m.Half.DType)
			}
			return fmt.Errorf("llama: tensor %s has %d floats, want %d", name, len(t), want)
		}
		return nil
	}
	check16 := func(name string, t []uint16, want int) error {
		if len(t) != want {
			return fmt.Errorf("llama: %s tensor %s has %d values, want %d", m.Half.DType, name, len(t), want)
		}
		return nil
	}
	if err := check("embedding", m.Embedding, big(v*d)); err != nil {
		return err
	}
	if half {
		if err := check16("embedding", m.Half.Embedding, v*d); err != nil {
			return err
		}
	}
	// optional is the length an optional tensor must have: its size when
	// the config asks for it, else none at all.
	optional := func(on bool, n int) int {
		if on {
			return n
		}
		return 0
	}
	qkn, bout := optional(c.QKNorm, hd), optional(c.OutBias, d)
	for i, l := range m.Layers {
		lc := c.Layer(i)
		h, q, kv := lc.HiddenDim, lc.QDim(), lc.KVDim()
		bq, bkv := optional(c.QKVBias, q), optional(c.QKVBias, kv)
		for _, t := range []struct {
			name string
			data []float32
			want int
		}{
			{"attn_norm", l.AttnNorm, d}, {"wq", l.Wq, big(q * d)}, {"wk", l.Wk, big(kv * d)}, {"wv", l.Wv, big(kv * d)},
			{"wo", l.Wo, big(d * q)}, {"ffn_norm", l.FFNNorm, d}, {"w1", l.W1, big(h * d)}, {"w2", l.W2, big(d * h)},
			{"w3", l.W3, big(h * d)}, {"bq", l.Bq, bq}, {"bk", l.Bk, bkv}, {"bv", l.Bv, bkv},
			{"q_norm", l.QNorm, qkn}, {"k_norm", l.KNorm, qkn}, {"bo", l.Bo, bout}, {"b2", l.B2, bout},
		} {
			if err := check(fmt.Sprintf("layers.%d.%s", i, t.name), t.data, t.want); err != nil {
				return err
			}
		}
		switch {
		case !half && l.Half != nil:
			return fmt.Errorf("llama: layers.%d holds 16-bit projections in a float32 model", i)
		case half && l.Half == nil:
			return fmt.Errorf("llama: layers.%d has no 16-bit projections in a %s model", i, m.Half.DType)
		case half:
			for _, t := range []struct {
				name string
				data []uint16
				want int
			}{
				{"wq", l.Half.Wq, q * d}, {"wk", l.Half.Wk, kv * d}, {"wv", l.Half.Wv, kv * d}, {"wo", l.Half.Wo, d * q},
				{"w1", l.Half.W1, h * d}, {"w2", l.Half.W2, d * h}, {"w3", l.Half.W3, h * d},
			} {
				if err := check16(fmt.Sprintf("layers.%d.%s", i, t.name), t.data, t.want); err != nil {
					return err
				}
			}
		}
	}
	if err := check("final_norm", m.FinalNorm, d); err != nil {
		return err
	}
	if err := check("classifier", m.Classifier, big(v*d)); err != nil {
		return err
	}
	if half {
		if err := check16("classifier", m.Half.Classifier, v*d); err != nil {
			return err
		}
		if c.SharedClassifier && &m.Half.Classifier[0] != &m.Half.Embedding[0] {
			return fmt.Errorf("llama: config says the classifier is shared but Half.Classifier does not alias Half.Embedding")
		}
	} else if c.SharedClassifier && &m.Classifier[0] != &m.Embedding[0] {
		return fmt.Errorf("llama: config says the classifier is shared but Classifier does not alias Embedding")
	}
	return nil
}

// Keep returns a depth-pruned model made of the listed blocks, in the listed
// order, which must be strictly increasing. The new model shares every weight
// slice with m; nothing is copied.
func (m *Model) Keep(layers []int) (*Model, error) {
	kept := make([]Layer, 0, len(layers))
	var widths []LayerWidth
	for n, i := range layers {
		if i < 0 || i >= len(m.Layers) {
			return nil, fmt.Errorf("llama: keep: layer %d out of range [0, %d)", i, len(m.Layers))
		}
		if n > 0 && i <= layers[n-1] {
			return nil, fmt.Errorf("llama: keep: layers must be strictly increasing, got %d after %d", i, layers[n-1])
		}
		kept = append(kept, m.Layers[i])
		widths = append(widths, m.Config.Width(i))
	}
	out := *m
	out.Config.Layers = len(kept)
	out.Layers = kept
	if !m.Config.Uniform() {
		// Dropping blocks may leave the rest uniform, or with smaller maxima.
		out.Config.Widths = nil
		out.Config = out.Config.SetWidths(widths)
	}
	return &out, nil
}
