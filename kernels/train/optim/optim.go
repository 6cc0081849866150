// Package optim holds the optimizer side of training, independent of any
// model: named parameters with their gradient buffers, AdamW with PyTorch's
// semantics, clipping by global norm, and a cosine learning-rate schedule
// with linear warmup. Everything is deterministic: reductions run in
// parameter order and index order, and the state serializes exactly so a run
// resumed from a checkpoint continues bit for bit.
package optim

import (
	"fmt"
	"math"
)

// Param is one trainable tensor: its values and the gradient buffer that
// backward passes accumulate into. A frozen weight is simply not a Param.
type Param struct {
	Name string    // unique; checkpoints match parameters by it
	Data []float32 // updated in place by the optimizer
	Grad []float32 // same length as Data
	// NoDecay exempts the parameter from weight decay, as Hugging Face's
	// Trainer exempts biases and norm weights.
	NoDecay bool
}

// ZeroGrads clears every gradient buffer.
func ZeroGrads(ps []*Param) {
	for _, p := range ps {
		clear(p.Grad)
	}
}

// GlobalNorm is the L2 norm of all gradients taken together, summed in
// float64 in parameter order and index order.
func GlobalNorm(ps []*Param) float64 {
	var ss float64
	for _, p := range ps {
		for _, g := range p.Grad {
			ss += float64(g) * float64(g)
		}
	}
	return math.Sqrt(ss)
}

// ClipGlobalNorm scales every gradient by maxNorm/(norm+1e-6) when that is
// below 1, as torch.nn.utils.clip_grad_norm_ does, and returns the norm
// before clipping. maxNorm ≤ 0 disables clipping.
func ClipGlobalNorm(ps []*Param, maxNorm float64) float64 {
	norm := GlobalNorm(ps)
	if maxNorm <= 0 {
		return norm
	}
	coef := maxNorm / (norm + 1e-6)
	if coef < 1 {
		c := float32(coef)
		for _, p := range ps {
			for i := range p.Grad {
				p.Grad[i] *= c
			}
		}
	}
	return norm
}

// Cosine is Hugging Face's get_cosine_schedule_with_warmup with the warmup
// given as a ratio of the total steps (warmup_ratio): the multiplier of the
// peak learning rate at optimizer step s (counting from 0) rises linearly
// from 0 over ⌈WarmupRatio·Total⌉ steps, then follows half a cosine down to 0
// at step Total.
type Cosine struct {
	PeakLR      float64
	Total       int
	WarmupRatio float64
}

// WarmupSteps is ⌈WarmupRatio·Total⌉, as transformers computes it.
func (c Cosine) WarmupSteps() int { return int(math.Ceil(c.WarmupRatio * float64(c.Total))) }

// Schedule gives the learning rate of each optimizer step.
type Schedule interface {
	LR(step int) float64
	Steps() int // the schedule's length in optimizer steps
	Peak() float64
}

// Constant is transformers' "constant_with_warmup": the peak learning rate
// rises linearly from 0 over ⌈WarmupRatio·Total⌉ steps, then stays.
type Constant struct {
	PeakLR      float64
	Total       int
	WarmupRatio float64
}

func (c Constant) Steps() int    { return c.Total }
func (c Constant) Peak() float64 { return c.PeakLR }
func (c Constant) LR(s int) float64 {
	w := int(math.Ceil(c.WarmupRatio * float64(c.Total)))
	if s < w {
		return c.PeakLR * float64(s) / float64(max(1, w))
	}
	return c.PeakLR
}

func (c Cosine) Steps() int    { return c.Total }
func (c Cosine) Peak() float64 { return c.PeakLR }

// LR is the learning rate of optimizer step s (0-based).
func (c Cosine) LR(s int) float64 {
	w := c.WarmupSteps()
	if s < w {
		return c.PeakLR * float64(s) / float64(max(1, w))
	}
	progress := float64(s-w) / float64(max(1, c.Total-w))
	return c.PeakLR * max(0, 0.5*(1+math.Cos(math.Pi*progress)))
}

// AdamW is torch.optim.AdamW (decoupled weight decay, bias correction,
// amsgrad off) over a fixed list of parameters. Each step applies, per
// element and in float32 as PyTorch's single-tensor path does:
//
//	p ← p·(1 − lr·λ)
//	m ← m + (g − m)·(1 − β1)
//	v ← v·β2 + (1 − β2)·g²
//	p ← p − (lr/(1 − β1ᵗ))·m / (√v/√(1 − β2ᵗ) + ε)
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64

	params []*Param
	m, v   [][]float32
	step   int64
}

// NewAdamW returns an optimizer over ps with PyTorch's defaults for the
// moment decay rates and ε (0.9, 0.999, 1e-8) and the given weight decay.
// It allocates two moment buffers per parameter.
func NewAdamW(ps []*Param, weightDecay float64) *AdamW {
	o := &AdamW{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: weightDecay, params: ps}
	seen := map[string]bool{}
	for _, p := range ps {
		if seen[p.Name] {
			panic(fmt.Sprintf("optim: parameter name %q appears twice", p.Name))
		}
		seen[p.Name] = true
		o.m = append(o.m, make([]float32, len(p.Data)))
		o.v = append(o.v, make([]float32, len(p.Data)))
	}
	return o
}

// Steps is the number of updates taken so far.
func (o *AdamW) Steps() int64 { return o.step }

// StateBytes is the memory the moment buffers hold.
func (o *AdamW) StateBytes() int64 {
	var n int64
	for _, m := range o.m {
		n += 8 * int64(len(m))
	}
	return n
}

// Step applies one update with learning rate lr using the current gradients.
func (o *AdamW) Step(lr float64) {
	o.step++
	bc1 := 1 - math.Pow(o.Beta1, float64(o.step))
	bc2 := 1 - math.Pow(o.Beta2, float64(o.step))
	stepSize := float32(lr / bc1)
	bc2Sqrt := float32(math.Sqrt(bc2))
	b1c, b2, b2c, eps := float32(1-o.Beta1), float32(o.Beta2), float32(1-o.Beta2), float32(o.Eps)
	for pi, p := range o.params {
		decay := float32(1)
		if !p.NoDecay {
			decay = float32(1 - lr*o.WeightDecay)
		}
		m, v := o.m[pi], o.v[pi]
		for i, g := range p.Grad {
			x := p.Data[i] * decay
			m[i] += float32((g - m[i]) * b1c)
			v[i] = float32(v[i]*b2) + float32(float32(g*g)*b2c)
			denom := sqrt32(v[i])/bc2Sqrt + eps
			p.Data[i] = x - float32(stepSize*(m[i]/denom))
		}
	}
}

// sqrt32 is the correctly rounded float32 square root.
func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }
