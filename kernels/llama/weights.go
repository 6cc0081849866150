package llama

// Part names one kind of weight of a model.
type Part int

const (
	PartEmbedding Part = iota
	PartAttnNorm
	PartWq
	PartWk
	PartWv
	PartWo
	PartBq
	PartBk
	PartBv
	PartQNorm
	PartKNorm
	PartFFNNorm
	PartW1 // gate
	PartW3 // up
	PartW2 // down
	PartFinalNorm
	PartClassifier
	PartBo // attention output bias (Config.OutBias)
	PartB2 // down projection bias (Config.OutBias)
)

// WeightRef is one weight of a model: which part of which layer it is, its
// row-major shape, and the field that holds it — Data, or Half when the
// model holds that tensor 16-bit.
type WeightRef struct {
	Part  Part
	Layer int // -1 outside the blocks
	Shape []int
	Data  *[]float32
	Half  *[]uint16
}

// Len is the number of values the model holds for w.
func (w WeightRef) Len() int {
	if w.Half != nil {
		return len(*w.Half)
	}
	return len(*w.Data)
}

// WeightRefs lists m's weights in the order checkpoints store them
// (transformers' state_dict, llama.cpp's converter): the embedding; per
// block the attention norm, q, k, v, o, the q/k/v biases and q/k norms when
// the configuration has them, the MLP norm, gate, up, down; the final norm;
// and the classifier when it is not shared. It is the one list the
// checkpoint formats name in their own words, so a loader and a writer
// cannot disagree on what a model holds. m.Layers must already have
// Config.Layers entries; for a 16-bit model a missing Layer.Half is created
// so that loaders can fill it.
func (m *Model) WeightRefs() []WeightRef {
	c := m.Config
	d, hd := c.Dim, c.HeadDim()
	ref := func(p Part, layer int, data *[]float32, shape ...int) WeightRef {
		return WeightRef{Part: p, Layer: layer, Shape: shape, Data: data}
	}
	ws := []WeightRef{ref(PartEmbedding, -1, &m.Embedding, c.Vocab, d)}
	for i := range m.Layers {
		l := &m.Layers[i]
		lc := c.Layer(i)
		q, kv, h := lc.QDim(), lc.KVDim(), lc.HiddenDim
		ws = append(ws,
			ref(PartAttnNorm, i, &l.AttnNorm, d),
			ref(PartWq, i, &l.Wq, q, d),
			ref(PartWk, i, &l.Wk, kv, d),
			ref(PartWv, i, &l.Wv, kv, d),
			ref(PartWo, i, &l.Wo, d, q),
		)
		if c.OutBias {
			ws = append(ws, ref(PartBo, i, &l.Bo, d))
		}
		if c.QKVBias {
			ws = append(ws, ref(PartBq, i, &l.Bq, q), ref(PartBk, i, &l.Bk, kv), ref(PartBv, i, &l.Bv, kv))
		}
		if c.QKNorm {
			ws = append(ws, ref(PartQNorm, i, &l.QNorm, hd), ref(PartKNorm, i, &l.KNorm, hd))
		}
		ws = append(ws,
			ref(PartFFNNorm, i, &l.FFNNorm, d),
			ref(PartW1, i, &l.W1, h, d),
			ref(PartW3, i, &l.W3, h, d),
			ref(PartW2, i, &l.W2, d, h),
		)
		if c.OutBias {
			ws = append(ws, ref(PartB2, i, &l.B2, d))
		}
	}
	ws = append(ws, ref(PartFinalNorm, -1, &m.FinalNorm, d))
	if !c.SharedClassifier {
		ws = append(ws, ref(PartClassifier, -1, &m.Classifier, c.Vocab, d))
	}
	if m.Half == nil {
		return ws
	}
	for i := range ws {
		w := &ws[i]
		switch w.Part {
		case PartEmbedding:
			w.Half = &m.Half.Embedding
		case PartClassifier:
			w.Half = &m.Half.Classifier
		case PartWq, PartWk, PartWv, PartWo, PartW1, PartW2, PartW3:
			l := &m.Layers[w.Layer]
			if l.Half == nil {
				l.Half = &HalfLayer{}
			}
			w.Half = map[Part]*[]uint16{PartWq: &l.Half.Wq, PartWk: &l.Half.Wk, PartWv: &l.Half.Wv, PartWo: &l.Half.Wo,
				PartW1: &l.Half.W1, PartW2: &l.Half.W2, PartW3: &l.Half.W3}[w.Part]
		}
	}
	return ws
}
