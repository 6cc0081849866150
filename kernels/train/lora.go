package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"lrmc/kernels/train/optim"
)

// Module names, as Hugging Face's Llama and Qwen modeling code name the
// projections (and PEFT's target_modules lists them).
const (
	QProj    = "q_proj"
	KProj    = "k_proj"
	VProj    = "v_proj"
	OProj    = "o_proj"
	GateProj = "gate_proj"
	UpProj   = "up_proj"
	DownProj = "down_proj"
)

// projNames indexes a layer's seven linear maps in a fixed order.
var projNames = [7]string{QProj, KProj, VProj, OProj, GateProj, UpProj, DownProj}

const (
	modQ = iota
	modK
	modV
	modO
	modGate
	modUp
	modDown
)

// LoRAConfig describes low-rank adapters: on each targeted linear map
// y = x·Wᵀ, LoRA adds (α/r)·B·A·dropout(x) with A [r, in] and B [out, r].
type LoRAConfig struct {
	Rank    int
	Alpha   float64
	Dropout float64 // probability of zeroing an input element (training only)
	Targets []string
	// Seed fixes A's initialization and the dropout masks.
	Seed uint64
}

// Scale is α/r, PEFT's scaling without rsLoRA.
func (c LoRAConfig) Scale() float32 { return float32(c.Alpha / float64(c.Rank)) }

func (c LoRAConfig) validate() error {
	if c.Rank <= 0 {
		return fmt.Errorf("train: lora rank is %d, must be positive", c.Rank)
	}
	if !(c.Dropout >= 0 && c.Dropout < 1) {
		return fmt.Errorf("train: lora dropout is %g, must be in [0, 1)", c.Dropout)
	}
	if len(c.Targets) == 0 {
		return fmt.Errorf("train: lora targets no module")
	}
	for _, t := range c.Targets {
		if !slices.Contains(projNames[:], t) {
			return fmt.Errorf("train: lora target %q is not one of %v", t, projNames)
		}
	}
	return nil
}

// Adapter is the LoRA pair on one linear map of one layer.
type Adapter struct {
	Layer   int
	Module  string // QProj, …, DownProj
	In, Out int
	Rank    int
	Scale   float32
	A, B    *optim.Param // A [Rank, In], B [Out, Rank]
}

// newAdapter initializes A as PEFT does (nn.Linear's default, Kaiming-uniform
// with a = √5, which is U(−1/√in, 1/√in)) and B to zero, so the adapted
// model starts equal to the base. Each adapter draws from its own stream of
// the seed, so adding a target does not change the others.
func newAdapter(c LoRAConfig, layer, mod, in, out int, alloc func(int) []float32) *Adapter {
	name := fmt.Sprintf("base_model.model.model.layers.%d.%s.%s", layer, projGroup(mod), projNames[mod])
	a := &Adapter{Layer: layer, Module: projNames[mod], In: in, Out: out, Rank: c.Rank, Scale: c.Scale(),
		A: &optim.Param{Name: name + ".lora_A.weight", Data: alloc(c.Rank * in), Grad: alloc(c.Rank * in)},
		B: &optim.Param{Name: name + ".lora_B.weight", Data: alloc(out * c.Rank), Grad: alloc(out * c.Rank)},
	}
	if a.A.Data != nil {
		r := rand.New(rand.NewPCG(c.Seed, uint64(layer)<<8|uint64(mod)))
		bound := 1 / math.Sqrt(float64(in))
		for i := range a.A.Data {
			a.A.Data[i] = float32((2*r.Float64() - 1) * bound)
		}
	}
	return a
}

// projGroup is the submodule holding a projection in Hugging Face's naming.
func projGroup(mod int) string {
	if mod <= modO {
		return "self_attn"
	}
	return "mlp"
}

// dropout decides, without state, which input elements LoRA's dropout
// zeroes: element idx of module mod in layer on micro-step step is dropped
// when 16 bits of a hash of (seed, step, layer, mod, idx/4) — bits
// 16·(idx mod 4) and up — are below p·2¹⁶. Being a pure function, the
// recomputed forward in backward and a resumed run see the same masks; one
// 64-bit hash serving four elements keeps it cheap (p is thereby rounded to
// a multiple of 2⁻¹⁶).
type dropout struct {
	p, keepScale float32
	threshold    uint64 // p·2¹⁶, rounded
	base         uint64
}

func newDropout(seed uint64, p float64, step uint64, layer, mod int) dropout {
	if p == 0 {
		return dropout{}
	}
	base := mix64(mix64(seed^0x6c726d63) + step)
	base = mix64(base + uint64(layer)<<8 + uint64(mod))
	return dropout{p: float32(p), keepScale: float32(1 / (1 - p)), threshold: uint64(math.Round(p * (1 << 16))), base: base}
}

func (d dropout) on() bool { return d.p > 0 }

// factor is 0 for a dropped element and 1/(1−p) for a kept one.
func (d dropout) factor(idx int) float32 {
	return d.pick(mix64(d.base+uint64(idx>>2)) >> (16 * (idx & 3)))
}

// apply writes x·factor into dst.
func (d dropout) apply(dst, x []float32) {
	dst = dst[:len(x)]
	for i0 := 0; i0 < len(x); i0 += 4 {
		h := mix64(d.base + uint64(i0>>2))
		for i := i0; i < min(i0+4, len(x)); i++ {
			dst[i] = x[i] * d.pick(h)
			h >>= 16
		}
	}
}

// addScaled adds x·factor into dst (the backward pass of apply).
func (d dropout) addScaled(dst, x []float32) {
	dst = dst[:len(x)]
	for i0 := 0; i0 < len(x); i0 += 4 {
		h := mix64(d.base + uint64(i0>>2))
		for i := i0; i < min(i0+4, len(x)); i++ {
			dst[i] += x[i] * d.pick(h)
			h >>= 16
		}
	}
}

// pick is the factor the low 16 bits of a hash select.
func (d dropout) pick(h uint64) float32 {
	if h&0xffff < d.threshold {
		return 0
	}
	return d.keepScale
}

// mix64 is SplitMix64's finalizer.
func mix64(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
