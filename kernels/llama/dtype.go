package llama

import (
	"fmt"
	"slices"

	"lrmc/kernels/gemm"
	"lrmc/kernels/half"
	"lrmc/kernels/tensor"
)

// DType is the storage type of a model's large weights: the seven
// projection matrices of every layer, the embedding table and the
// classifier. Norm weights and biases are always float32, and so is all
// arithmetic: 16-bit weights are widened exactly inside the matrix kernels
// (kernels/gemm), so a 16-bit model computes bit for bit what the float32
// model holding the widened weights computes, reading half the bytes.
type DType string

const (
	Float32  DType = "float32"
	BFloat16 DType = "bfloat16" // the upper half of a float32
	Float16  DType = "float16"  // IEEE 754 binary16
)

// ParseDType accepts the names above and "" (Float32).
func ParseDType(s string) (DType, error) {
	switch dt := DType(s); dt {
	case "":
		return Float32, nil
	case Float32, BFloat16, Float16:
		return dt, nil
	}
	return "", fmt.Errorf("llama: dtype %q is not one of float32, bfloat16, float16", s)
}

// HalfWeights holds a 16-bit model's embedding and classifier, and names the
// 16-bit format of every HalfLayer of the model.
type HalfWeights struct {
	DType DType // BFloat16 or Float16
	// Compute is the arithmetic of the matrix products: ComputeF32 ("" too)
	// widens the 16-bit weights exactly and computes in float32; ComputeBF16
	// (BFloat16 weights only) also rounds the activations to bfloat16 and
	// uses gemm.MatMulBF16Rounded (VDPBF16PS where the CPU has it). Not
	// kept by WithDType or Float32.
	Compute    Compute
	Embedding  []uint16 // [Vocab, Dim]
	Classifier []uint16 // [Vocab, Dim]; aliases Embedding when Config.SharedClassifier
}

// HalfLayer holds a layer's projections as 16-bit patterns of the model's
// HalfWeights.DType, in the shapes of the Layer fields they replace.
type HalfLayer struct {
	Wq, Wk, Wv, Wo, W1, W2, W3 []uint16
}

// DType is the storage type of m's projections, embedding and classifier.
func (m *Model) DType() DType {
	if m.Half == nil {
		return Float32
	}
	return m.Half.DType
}

// WeightBytes is the memory the weights of m take, counting a shared
// classifier once.
func (m *Model) WeightBytes() int64 {
	var n int64
	f, h := func(t []float32) { n += 4 * int64(len(t)) }, func(t []uint16) { n += 2 * int64(len(t)) }
	f(m.Embedding)
	f(m.FinalNorm)
	if !m.Config.SharedClassifier {
		f(m.Classifier)
	}
	if m.Half != nil {
		h(m.Half.Embedding)
		if !m.Config.SharedClassifier {
			h(m.Half.Classifier)
		}
	}
	for i := range m.Layers {
		l := &m.Layers[i]
		for _, t := range l.tensors() {
			f(*t.of(l))
		}
		if l.Half != nil {
			for _, t := range l.Half.list() {
				h(*t)
			}
		}
	}
	return n
}

// WithDType returns m with its projections, embedding and classifier stored
// as dt: rounded to nearest, ties to even, when narrowing from float32
// (values beyond the 16-bit range become infinite), exactly when widening.
// It returns m itself when m already is dt; otherwise the result shares no
// memory with m.
func (m *Model) WithDType(dt DType) (*Model, error) {
	dt, err := ParseDType(string(dt))
	if err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if dt == m.DType() {
		return m, nil
	}
	if dt == Float32 {
		return m.Float32(), nil
	}
	src := m.Float32() // a widened copy when m is the other 16-bit type; m itself when float32
	narrow := func(w []float32) []uint16 { return Narrow(dt, w) }
	out := &Model{Config: m.Config, FinalNorm: slices.Clone(m.FinalNorm), Layers: make([]Layer, len(m.Layers))}
	out.Half = &HalfWeights{DType: dt, Embedding: narrow(src.Embedding)}
	if m.Config.SharedClassifier {
		out.Half.Classifier = out.Half.Embedding
	} else {
		out.Half.Classifier = narrow(src.Classifier)
	}
	for i := range src.Layers {
		s, l := &src.Layers[i], &out.Layers[i]
		*l = Layer{
			AttnNorm: slices.Clone(s.AttnNorm), FFNNorm: slices.Clone(s.FFNNorm),
			Bq: slices.Clone(s.Bq), Bk: slices.Clone(s.Bk), Bv: slices.Clone(s.Bv),
			QNorm: slices.Clone(s.QNorm), KNorm: slices.Clone(s.KNorm),
			Bo: slices.Clone(s.Bo), B2: slices.Clone(s.B2),
			Half: &HalfLayer{
				Wq: narrow(s.Wq), Wk: narrow(s.Wk), Wv: narrow(s.Wv), Wo: narrow(s.Wo),
				W1: narrow(s.W1), W2: narrow(s.W2), W3: narrow(s.W3),
			},
		}
	}
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("llama: with dtype %s: %w", dt, err)
	}
	return out, nil
}

// Float32 returns m with every weight float32: m itself when it already is,
// else a widened copy that shares no memory with m. Code that reads or
// writes the float32 weight fields directly (training, pruning, the
// llama2.c format) works on this.
func (m *Model) Float32() *Model {
	if m.Half == nil {
		return m
	}
	dt := m.Half.DType
	widen := func(h []uint16) []float32 { return Widen(dt, h) }
	out := &Model{Config: m.Config, FinalNorm: slices.Clone(m.FinalNorm), Layers: make([]Layer, len(m.Layers))}
	out.Embedding = widen(m.Half.Embedding)
	if m.Config.SharedClassifier {
		out.Classifier = out.Embedding
	} else {
		out.Classifier = widen(m.Half.Classifier)
	}
	for i := range m.Layers {
		s, l := &m.Layers[i], &out.Layers[i]
		for _, t := range s.tensors() {
			*t.of(l) = slices.Clone(*t.of(s))
		}
		if h := s.Half; h != nil {
			l.Wq, l.Wk, l.Wv, l.Wo = widen(h.Wq), widen(h.Wk), widen(h.Wv), widen(h.Wo)
			l.W1, l.W2, l.W3 = widen(h.W1), widen(h.W2), widen(h.W3)
		}
	}
	return out
}

// list points at the seven projections, in the order of Layer.tensors.
func (h *HalfLayer) list() []*[]uint16 {
	return []*[]uint16{&h.Wq, &h.Wk, &h.Wv, &h.Wo, &h.W1, &h.W2, &h.W3}
}

// Widen returns the 16-bit values h of type dt as float32 (exact). It
// returns nil for a nil h.
func Widen(dt DType, h []uint16) []float32 {
	if h == nil {
		return nil
	}
	out := make([]float32, len(h))
	widenInto(dt, out, h)
	return out
}

// widenInto uses gemm's vector widening rather than kernels/half's portable
// loops: it is faster, and it is the widening the matrix kernels apply, so a
// widened model's weights are exactly those the 16-bit kernels multiply by
// (the two differ only in quieting signalling f16 NaNs, as F16C does).
func widenInto(dt DType, dst []float32, h []uint16) {
	switch dt {
	case BFloat16:
		gemm.WidenBF16(dst, h)
	case Float16:
		gemm.WidenF16(dst, h)
	default:
		panic(fmt.Sprintf("llama: widen: dtype %q is not 16-bit", dt))
	}
}

// Narrow returns w rounded to the 16-bit type dt, to nearest with ties to
// even; NaNs stay NaN (made quiet) and values beyond the type's range become
// infinite. It returns nil for a nil w.
func Narrow(dt DType, w []float32) []uint16 {
	if w == nil {
		return nil
	}
	var narrow func(dst []uint16, src []float32)
	switch dt {
	case BFloat16:
		narrow = half.NarrowBF16
	case Float16:
		narrow = half.NarrowF16
	default:
		panic(fmt.Sprintf("llama: narrow: dtype %q is not 16-bit", dt))
	}
	out := make([]uint16, len(w))
	tensor.Parallel(len(w), 1<<16, func(lo, hi int) {
		narrow(out[lo:hi], w[lo:hi])
	})
	return out
}

// RoundBF16 rounds f to the nearest bfloat16, ties to even, as PyTorch's
// tensor.to(torch.bfloat16) does. A NaN stays a NaN of the same sign, made
// quiet. It is half.FromFloat32BF16.
func RoundBF16(f float32) uint16 { return half.FromFloat32BF16(f) }

// RoundF16 rounds f to the nearest IEEE half, ties to even, with subnormal
// halves where the value needs them and infinity beyond 65504 (plus half an
// ulp). A NaN stays a NaN of the same sign, made quiet. It is
// half.FromFloat32F16.
func RoundF16(f float32) uint16 { return half.FromFloat32F16(f) }

// Compute is the arithmetic of a 16-bit model's matrix products.
type Compute string

const (
	ComputeF32  Compute = "f32"  // exact widening, float32 arithmetic
	ComputeBF16 Compute = "bf16" // activations rounded to bf16, VDPBF16PS
)

// WithCompute returns a shallow copy of m (sharing its weights) whose
// matrix products use c; "" and ComputeF32 give float32 arithmetic.
// ComputeBF16 needs BFloat16 weights.
func (m *Model) WithCompute(c Compute) (*Model, error) {
	switch c {
	case "", ComputeF32:
		if m.Half == nil || m.Half.Compute == "" || m.Half.Compute == ComputeF32 {
			return m, nil
		}
	case ComputeBF16:
		if m.DType() != BFloat16 {
			return nil, fmt.Errorf("llama: compute %q needs bfloat16 weights, the model's are %s", c, m.DType())
		}
	default:
		return nil, fmt.Errorf("llama: compute %q is not one of f32, bf16", c)
	}
	out := *m
	h := *m.Half
	h.Compute = c
	out.Half = &h
	return &out, nil
}

// linear is one weight matrix [n, k] in whichever form the model stores it.
type linear struct {
	f       []float32
	h       []uint16
	dt      DType
	rounded bool // ComputeBF16: gemm.MatMulBF16Rounded
}

// mul computes out[m×n] = x[m×k]·wᵀ. The 16-bit kernels equal tensor.MatMul
// on the widened weights bit for bit, which keeps the two forms' logits
// identical.
func (w linear) mul(out, x []float32, m, k, n int) {
	switch w.dt {
	case BFloat16:
		if w.rounded {
			gemm.MatMulBF16Rounded(out, x, w.h, m, k, n)
			return
		}
		gemm.MatMulBF16(out, x, w.h, m, k, n)
	case Float16:
		gemm.MatMulF16(out, x, w.h, m, k, n)
	default:
		tensor.MatMul(out, x, w.f, m, k, n)
	}
}

// projections are a layer's seven matrices.
type projections struct{ wq, wk, wv, wo, w1, w2, w3 linear }

func (m *Model) projections(i int) projections {
	l := &m.Layers[i]
	if m.Half == nil {
		return projections{linear{f: l.Wq}, linear{f: l.Wk}, linear{f: l.Wv}, linear{f: l.Wo},
			linear{f: l.W1}, linear{f: l.W2}, linear{f: l.W3}}
	}
	dt, h, rd := m.Half.DType, l.Half, m.Half.Compute == ComputeBF16
	return projections{linear{h: h.Wq, dt: dt, rounded: rd}, linear{h: h.Wk, dt: dt, rounded: rd},
		linear{h: h.Wv, dt: dt, rounded: rd}, linear{h: h.Wo, dt: dt, rounded: rd},
		linear{h: h.W1, dt: dt, rounded: rd}, linear{h: h.W2, dt: dt, rounded: rd}, linear{h: h.W3, dt: dt, rounded: rd}}
}

func (m *Model) classifier() linear {
	if m.Half == nil {
		return linear{f: m.Classifier}
	}
	return linear{h: m.Half.Classifier, dt: m.Half.DType, rounded: m.Half.Compute == ComputeBF16}
}
