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
}

// HeadDim is the width of one attention head.
func (c Config) HeadDim() int { return c.Dim / c.Heads }

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
	if c.Layers < 0 {
		errs = append(errs, fmt.Errorf("layers is %d, must not be negative", c.Layers))
	}
	if c.Heads > 0 && c.Dim > 0 && c.Dim%c.Heads != 0 {
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
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("llama: invalid config: %w", err)
	}
	return nil
}

// Params is the number of parameters, counting a shared classifier once.
func (c Config) Params() int64 {
	d, h, kv := int64(c.Dim), int64(c.HiddenDim), int64(c.KVDim())
	perLayer := 2*d + // attention and MLP norms
		2*d*d + 2*kv*d + // wq, wo; wk, wv
		3*h*d // w1, w2, w3
	n := int64(c.Vocab)*d + int64(c.Layers)*perLayer + d
	if !c.SharedClassifier {
		n += int64(c.Vocab) * d
	}
	return n
}
