package llama

import (
	"fmt"
	"slices"
)

// Clone returns a deep copy of m, so that training or merging adapters into
// the copy leaves m (and every model sharing m's slices, as Keep's results
// do) untouched. A shared classifier stays shared in the copy.
func (m *Model) Clone() *Model {
	c := &Model{Config: m.Config, Embedding: slices.Clone(m.Embedding), FinalNorm: slices.Clone(m.FinalNorm)}
	if m.Config.SharedClassifier {
		c.Classifier = c.Embedding
	} else {
		c.Classifier = slices.Clone(m.Classifier)
	}
	if m.Half != nil {
		c.Half = &HalfWeights{DType: m.Half.DType, Embedding: slices.Clone(m.Half.Embedding)}
		if m.Config.SharedClassifier {
			c.Half.Classifier = c.Half.Embedding
		} else {
			c.Half.Classifier = slices.Clone(m.Half.Classifier)
		}
	}
	c.Layers = make([]Layer, len(m.Layers))
	for i := range m.Layers {
		for _, t := range m.Layers[i].tensors() {
			*t.of(&c.Layers[i]) = slices.Clone(*t.of(&m.Layers[i]))
		}
		if h := m.Layers[i].Half; h != nil {
			ch := &HalfLayer{}
			for j, t := range h.list() {
				*ch.list()[j] = slices.Clone(*t)
			}
			c.Layers[i].Half = ch
		}
	}
	return c
}

// Tensor is one named weight of a model, for serializers that store a model
// without a checkpoint format's conventions (lrmc's cache).
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// layerTensor names one field of a Layer.
type layerTensor struct {
	name string
	of   func(*Layer) *[]float32
}

func (l *Layer) tensors() []layerTensor {
	return []layerTensor{
		{"attn_norm", func(l *Layer) *[]float32 { return &l.AttnNorm }},
		{"wq", func(l *Layer) *[]float32 { return &l.Wq }},
		{"wk", func(l *Layer) *[]float32 { return &l.Wk }},
		{"wv", func(l *Layer) *[]float32 { return &l.Wv }},
		{"wo", func(l *Layer) *[]float32 { return &l.Wo }},
		{"ffn_norm", func(l *Layer) *[]float32 { return &l.FFNNorm }},
		{"w1", func(l *Layer) *[]float32 { return &l.W1 }},
		{"w2", func(l *Layer) *[]float32 { return &l.W2 }},
		{"w3", func(l *Layer) *[]float32 { return &l.W3 }},
		{"bq", func(l *Layer) *[]float32 { return &l.Bq }},
		{"bk", func(l *Layer) *[]float32 { return &l.Bk }},
		{"bv", func(l *Layer) *[]float32 { return &l.Bv }},
		{"q_norm", func(l *Layer) *[]float32 { return &l.QNorm }},
		{"k_norm", func(l *Layer) *[]float32 { return &l.KNorm }},
		{"bo", func(l *Layer) *[]float32 { return &l.Bo }},
		{"b2", func(l *Layer) *[]float32 { return &l.B2 }},
	}
}

// Tensors lists m's weights under lrmc's own names ("embedding",
// "layers.3.wq", …), each once (a shared classifier is not repeated). Data
// aliases m. The tensors are float32: Tensors panics on a 16-bit model,
// whose weights would have to be widened first (m.Float32()), rather than
// silently leave its 16-bit tensors out.
func (m *Model) Tensors() []Tensor {
	if m.Half != nil {
		panic(fmt.Sprintf("llama: Tensors: the model is %s; widen it with Float32 first", m.Half.DType))
	}
	ts := []Tensor{{"embedding", []int{m.Config.Vocab, m.Config.Dim}, m.Embedding}}
	for i := range m.Layers {
		for _, t := range m.Layers[i].tensors() {
			if d := *t.of(&m.Layers[i]); d != nil {
				ts = append(ts, Tensor{fmt.Sprintf("layers.%d.%s", i, t.name), []int{len(d)}, d})
			}
		}
	}
	ts = append(ts, Tensor{"final_norm", []int{m.Config.Dim}, m.FinalNorm})
	if !m.Config.SharedClassifier {
		ts = append(ts, Tensor{"classifier", []int{m.Config.Vocab, m.Config.Dim}, m.Classifier})
	}
	return ts
}

// FromTensors rebuilds a float32 model of configuration c from Tensors'
// output (looked up by name), checking every size with Validate.
func FromTensors(c Config, get func(name string) ([]float32, bool)) (*Model, error) {
	need := func(name string) ([]float32, error) {
		d, ok := get(name)
		if !ok {
			return nil, fmt.Errorf("llama: tensor %s is missing", name)
		}
		return d, nil
	}
	m := &Model{Config: c}
	var err error
	if m.Embedding, err = need("embedding"); err != nil {
		return nil, err
	}
	if m.FinalNorm, err = need("final_norm"); err != nil {
		return nil, err
	}
	if c.SharedClassifier {
		m.Classifier = m.Embedding
	} else if m.Classifier, err = need("classifier"); err != nil {
		return nil, err
	}
	m.Layers = make([]Layer, c.Layers)
	for i := range m.Layers {
		for _, t := range m.Layers[i].tensors() {
			if d, ok := get(fmt.Sprintf("layers.%d.%s", i, t.name)); ok {
				*t.of(&m.Layers[i]) = d
			}
		}
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}
