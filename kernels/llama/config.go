// Package llama is the Llama-architecture transformer on lrmc's CPU kernels:
// RMSNorm, rotary attention with grouped key/value heads, and a SwiGLU MLP,
// with weights held as plain []float32 in PyTorch's [out, in] layout.
//
// It offers two ways through the model. The batched prefill (Embed, Block,
// Logits, Forward) runs B independent sequences of T tokens each and exposes
// the hidden state between blocks, which is what calibration capture and
// block-level pruning need. The Decoder runs one token at a time over a
// key/value cache for generation. Both use the same kernels in the same order,
// so they produce the same logits.
package llama

import (
	"errors"
	"fmt"
)

// Config is the shape of a Llama model.
type Config struct {
	Dim       int // width of the residual stream
	HiddenDim int // width of the SwiGLU MLP
	Layers    int // number of transformer blocks
	Heads     int // query heads
	KVHeads   int // key/value heads; Heads must be a multiple of it
	Vocab     int // vocabulary size
	SeqLen    int // the longest context the model was trained for
	NormEps   float32
	RopeTheta float64
	// SharedClassifier says the output projection is the token embedding
	// (Model.Classifier aliases Model.Embedding).
	SharedClassifier bool

	// HeadSize is the width of one attention head when it is not Dim/Heads
	// (Qwen3 declares head_dim explicitly, e.g. 128 heads of a 1024-wide
	// stream of 16 heads); 0 means Dim/Heads. Read it through HeadDim.
	HeadSize int
	// QKVBias says the query, key and value projections add a bias
	// (Layer.Bq, Bk, Bv), as Qwen2 does.
	QKVBias bool
	// QKNorm says every head of the query and the key goes through an RMSNorm
	// over the head's width before the rotary embedding (Layer.QNorm, KNorm,
	// each [HeadDim], shared by all heads), as Qwen3 does.
	QKNorm bool
	// RopeStyle says which pairs of a head the rotary embedding rotates; the
	// zero value is llama2.c's adjacent pairs.
	RopeStyle RopeStyle
	// RopeScaling rescales the rotary frequencies; the zero value leaves
	// them alone.
	RopeScaling RopeScaling

	// Widths, when not nil, gives every block its own number of query
	// heads, key/value heads and MLP channels, as width pruning leaves a
	// model; it has Layers entries. Heads, KVHeads and HiddenDim are then
	// the largest of any block (what per-block buffers are sized by), and
	// HeadSize must be set, since Dim/Heads no longer says how wide a head
	// is. nil, the case of every checkpoint as released, means every block
	// has Heads, KVHeads and HiddenDim, and costs nothing: Layer(i) returns
	// c itself. SetWidths keeps these rules.
	Widths []LayerWidth `json:",omitempty"`
	// OutBias says the attention output and the MLP down projections add a
	// bias (Layer.Bo, B2, each [Dim]), which FLAP's bias compensation
	// leaves. Blocks without compensation hold zeros.
	OutBias bool `json:",omitempty"`
}

// LayerWidth is one block's widths in a model whose blocks differ.
type LayerWidth struct {
	Heads, KVHeads, HiddenDim int
}

// Width is block i's widths.
func (c Config) Width(i int) LayerWidth {
	if c.Widths != nil {
		return c.Widths[i]
	}
	return LayerWidth{c.Heads, c.KVHeads, c.HiddenDim}
}

// Uniform says every block has the same widths.
func (c Config) Uniform() bool { return c.Widths == nil }

// Layer is the configuration block i computes with: c with Heads, KVHeads
// and HiddenDim of that block and no Widths, so code written for one block
// shape (QDim, KVDim, HiddenDim) serves every block. For a uniform model it
// is c itself.
func (c Config) Layer(i int) Config {
	if c.Widths == nil {
		return c
	}
	w := c.Widths[i]
	c.Heads, c.KVHeads, c.HiddenDim, c.Widths = w.Heads, w.KVHeads, w.HiddenDim, nil
	return c
}

// SetWidths returns c with the given per-block widths (one per layer):
// when they are all equal, a uniform config of those widths; otherwise
// Widths set and Heads, KVHeads and HiddenDim their maxima. HeadSize is
// made explicit whenever the heads change, so that the head width stays
// what it was.
func (c Config) SetWidths(ws []LayerWidth) Config {
	hd := c.HeadDim()
	if len(ws) == 0 {
		c.Widths = nil
		return c
	}
	uniform, top := true, LayerWidth{}
	for _, w := range ws {
		uniform = uniform && w == ws[0]
		top = LayerWidth{max(top.Heads, w.Heads), max(top.KVHeads, w.KVHeads), max(top.HiddenDim, w.HiddenDim)}
	}
	c.Widths = nil
	if !uniform {
		c.Widths = append([]LayerWidth(nil), ws...)
	}
	if c.HeadSize == 0 && (!uniform || top.Heads != c.Heads) {
		c.HeadSize = hd
	}
	c.Heads, c.KVHeads, c.HiddenDim = top.Heads, top.KVHeads, top.HiddenDim
	return c
}

// RopeStyle is the pairing of a head's components under the rotary
// embedding. The two are the same rotation applied to differently ordered
// rows of Wq and Wk: llama.cpp's converter permutes Hugging Face's Llama
// rows so that GGUF llama uses RopeInterleaved, while Hugging Face modeling
// code and GGUF's qwen2/qwen3 use RopeHalf.
type RopeStyle uint8

const (
	// RopeInterleaved rotates adjacent pairs (2i, 2i+1), as llama2.c and
	// GGUF llama do.
	RopeInterleaved RopeStyle = iota
	// RopeHalf rotates pairs (i, i+HeadDim/2), Hugging Face's rotate_half
	// (ggml's NEOX mode).
	RopeHalf
)

func (s RopeStyle) String() string {
	switch s {
	case RopeInterleaved:
		return "interleaved"
	case RopeHalf:
		return "half"
	}
	return fmt.Sprintf("RopeStyle(%d)", uint8(s))
}

// RopeScaling is a rescaling of the rotary frequencies, Hugging Face's
// rope_scaling. Only Llama 3.1's "llama3" type is supported: frequencies
// whose wavelength exceeds OriginalMaxPositions/LowFreqFactor are divided by
// Factor, those shorter than OriginalMaxPositions/HighFreqFactor are kept,
// and those between are interpolated smoothly.
type RopeScaling struct {
	Type                 string // "" (none) or "llama3"
	Factor               float64
	LowFreqFactor        float64
	HighFreqFactor       float64
	OriginalMaxPositions int // original_max_position_embeddings
}

// HeadDim is the width of one attention head: HeadSize when set, else
// Dim/Heads.
func (c Config) HeadDim() int {
	if c.HeadSize > 0 {
		return c.HeadSize
	}
	return c.Dim / c.Heads
}

// QDim is the width of the query projection and of the attention output:
// Heads heads. It equals Dim unless HeadSize says otherwise.
func (c Config) QDim() int { return c.Heads * c.HeadDim() }

// KVDim is the width of the key (and the value) projection: KVHeads heads.
func (c Config) KVDim() int { return c.KVHeads * c.HeadDim() }

// Validate reports the first shape inconsistency, if any.
func (c Config) Validate() error {
	var errs []error
	pos := func(name string, v int) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s is %d, must be positive", name, v))
		}
	}
	pos("dim", c.Dim)
	pos("hidden_dim", c.HiddenDim)
	pos("heads", c.Heads)
	pos("kv_heads", c.KVHeads)
	pos("vocab", c.Vocab)
	pos("seq_len", c.SeqLen)
	errs = append(errs, c.checkLimits()...)
	if c.Layers < 0 {
		errs = append(errs, fmt.Errorf("layers is %d, must not be negative", c.Layers))
	}
	if c.HeadSize < 0 {
		errs = append(errs, fmt.Errorf("head_size is %d, must not be negative", c.HeadSize))
	} else if c.HeadSize == 0 && c.Heads > 0 && c.Dim > 0 && c.Dim%c.Heads != 0 {
		errs = append(errs, fmt.Errorf("dim %d is not a multiple of heads %d", c.Dim, c.Heads))
	} else if c.Heads > 0 && c.Dim > 0 && c.HeadDim()%2 != 0 {
		errs = append(errs, fmt.Errorf("head dim %d is odd; rotary embedding rotates pairs", c.HeadDim()))
	}
	if c.Heads > 0 && c.KVHeads > 0 && c.Heads%c.KVHeads != 0 {
		errs = append(errs, fmt.Errorf("heads %d is not a multiple of kv_heads %d", c.Heads, c.KVHeads))
	}
	if !(c.NormEps > 0) {
		errs = append(errs, fmt.Errorf("norm_eps is %g, must be positive", c.NormEps))
	}
	if !(c.RopeTheta > 0) {
		errs = append(errs, fmt.Errorf("rope_theta is %g, must be positive", c.RopeTheta))
	}
	if c.RopeStyle > RopeHalf {
		errs = append(errs, fmt.Errorf("rope style %v is unknown", c.RopeStyle))
	}
	if err := c.RopeScaling.validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.validateWidths()...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("llama: invalid config: %w", err)
	}
	return nil
}

func (s RopeScaling) validate() error {
	switch s.Type {
	case "":
		return nil
	case "llama3":
	default:
		return fmt.Errorf("rope scaling type %q is not supported (only \"llama3\")", s.Type)
	}
	switch {
	case !(s.Factor > 0):
		return fmt.Errorf("llama3 rope scaling factor is %g, must be positive", s.Factor)
	case !(s.LowFreqFactor > 0) || !(s.HighFreqFactor > s.LowFreqFactor):
		return fmt.Errorf("llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor, got %g and %g",
			s.LowFreqFactor, s.HighFreqFactor)
	case s.OriginalMaxPositions <= 0:
		return fmt.Errorf("llama3 rope scaling original_max_position_embeddings is %d, must be positive",
			s.OriginalMaxPositions)
	}
	return nil
}

// validateWidths checks Widths against the rules its comment states.
func (c Config) validateWidths() []error {
	if c.Widths == nil {
		return nil
	}
	var errs []error
	if len(c.Widths) != c.Layers {
		return []error{fmt.Errorf("widths has %d entries for %d layers", len(c.Widths), c.Layers)}
	}
	if c.HeadSize == 0 {
		errs = append(errs, fmt.Errorf("per-layer widths need an explicit head_size"))
	}
	var top LayerWidth
	for i, w := range c.Widths {
		if w.Heads <= 0 || w.KVHeads <= 0 || w.HiddenDim <= 0 {
			errs = append(errs, fmt.Errorf("layer %d has %d heads, %d kv heads, hidden dim %d; all must be positive", i, w.Heads, w.KVHeads, w.HiddenDim))
			continue
		}
		if w.Heads%w.KVHeads != 0 {
			errs = append(errs, fmt.Errorf("layer %d: heads %d is not a multiple of kv_heads %d", i, w.Heads, w.KVHeads))
		}
		top = LayerWidth{max(top.Heads, w.Heads), max(top.KVHeads, w.KVHeads), max(top.HiddenDim, w.HiddenDim)}
	}
	if len(errs) == 0 && top != (LayerWidth{c.Heads, c.KVHeads, c.HiddenDim}) {
		errs = append(errs, fmt.Errorf("heads %d, kv_heads %d, hidden_dim %d are not the largest per-layer widths %d, %d, %d",
			c.Heads, c.KVHeads, c.HiddenDim, top.Heads, top.KVHeads, top.HiddenDim))
	}
	return errs
}

// Params is the number of parameters, counting a shared classifier once.
func (c Config) Params() int64 {
	d := int64(c.Dim)
	var n int64
	for i := range c.Layers {
		n += c.Layer(i).layerParams()
	}
	n += int64(c.Vocab)*d + d
	if !c.SharedClassifier {
		n += int64(c.Vocab) * d
	}
	return n
}

// layerParams is the number of parameters of one block of shape c.
func (c Config) layerParams() int64 {
	d, h, q, kv := int64(c.Dim), int64(c.HiddenDim), int64(c.QDim()), int64(c.KVDim())
	n := 2*d + // attention and MLP norms
		2*q*d + 2*kv*d + // wq, wo; wk, wv
		3*h*d // w1, w2, w3
	if c.QKVBias {
		n += q + 2*kv
	}
	if c.QKNorm {
		n += 2 * int64(c.HeadDim())
	}
	if c.OutBias {
		n += 2 * d
	}
	return n
}
