package train

import (
	"fmt"
	"math"
)

// GatePart names what a gate decides on in a block.
type GatePart int

const (
	// GateAttn gates the block's attention: h1 = h + g_a ⊙ Attn(h). Its
	// router reads the block input h.
	GateAttn GatePart = iota
	// GateMLP gates the block's MLP: out = h1 + g_m ⊙ MLP(h1). Its router
	// reads h1, the residual after attention.
	GateMLP
)

func (p GatePart) String() string {
	if p == GateAttn {
		return "attn"
	}
	return "mlp"
}

// GatePass describes the forward pass a gate is consulted in.
type GatePass struct {
	// Train is set in ForwardBackward and clear in Loss (evaluation: a gate
	// should decide deterministically, without noise).
	Train bool
	// Step is the Net's micro-step counter (MicroSteps), which a
	// Trainer checkpoint restores: noise drawn as a function of (seed, Step,
	// layer, part, row) is the same in the forward pass, in backward's
	// recompute and in a resumed run.
	Step uint64
	// B sequences of T positions: row r is position r%T of sequence r/T.
	B, T int
}

// AuxLoss is an auxiliary loss term of a gate, already weighted: the Net
// adds Value to Loss.Total.
type AuxLoss struct {
	Name  string
	Value float64
}

// Gate is a Module that gates every block's attention and MLP output per
// row (dynamic pruning's routers). The Net calls it, for each forward pass:
//
//  1. Begin, once;
//  2. Gate for each layer in order, attention then MLP, during the forward
//     pass — and again for a layer during the backward pass, when the
//     layer's activations are recomputed from its checkpoint, with the
//     same x bit for bit (a gate must then return the same values);
//  3. Aux, once after the forward pass;
//  4. with ForwardBackward, GateBackward for each layer from the last to
//     the first, MLP then attention, right after Gate was called again for
//     that layer.
//
// A gate that returns g = 1 and no key mask everywhere leaves the Net's
// losses and gradients bit for bit those of a Net without it.
type Gate interface {
	Module
	// Begin starts a forward pass.
	Begin(p GatePass)
	// Gate writes part's gate g [rows] of layer li for the router input x
	// [rows, Dim] (the block input h for GateAttn, h1 for GateMLP). For
	// GateAttn it may return keys [rows]: then query i attends to key j ≤ i
	// of its sequence only if keys[j] or j = i (a skipped token has no K/V
	// for the others; its own query, whose output is gated anyway, still
	// sees itself). nil keys: every key is visible. The result for GateMLP
	// is ignored. The slices x and keys are only valid until the next call.
	Gate(li int, part GatePart, x, g []float32) (keys []bool)
	// Aux returns the pass's auxiliary losses (nil for none). With backward,
	// the gate keeps their gradients, times gradScale, for GateBackward.
	Aux(gradScale float32, backward bool) []AuxLoss
	// GateBackward receives dg [rows], the gradient of gradScale·(the loss
	// without the auxiliary terms) with respect to part's gate of layer li,
	// and the router input x again. It accumulates its parameters'
	// gradients (including the auxiliary losses') and adds the gradient
	// with respect to x into dx [rows, Dim] (the residual gradient at h or
	// h1).
	GateBackward(li int, part GatePart, x, dg, dx []float32)
}

// WithGate adds a gate module (at most one); its parameters join the
// Net's like WithModules'.
func WithGate(g Gate) Option {
	return func(o *options) {
		o.gates++
		o.gate = g
		o.modules = append(o.modules, g)
	}
}

func checkGate(o options) error {
	if o.gates > 1 {
		return fmt.Errorf("train: %d gates given, a Net takes at most one", o.gates)
	}
	if o.gates == 1 && o.gate == nil {
		return fmt.Errorf("train: the gate is nil")
	}
	return nil
}

// gatedAdd writes dst = base + g ⊙ y row by row (rows of width d). With
// g = 1 it is base + y to the bit: 1·y is y exactly and addition commutes.
func gatedAdd(dst, base, g, y []float32, d int) {
	for r, gr := range g {
		o := r * d
		dr, br, yr := dst[o:o+d], base[o:o+d], y[o:o+d]
		for c := range dr {
			dr[c] = float32(gr*yr[c]) + br[c]
		}
	}
}

// gateGrads writes dg[r] = ⟨dy_r, y_r⟩ (the gradient of g_r in
// base + g ⊙ y), summed in float64 in index order, and dys = g ⊙ dy, the
// gradient that flows into y.
func gateGrads(dg, dys, dy, y, g []float32, d int) {
	for r, gr := range g {
		o := r * d
		var s float64
		for c, v := range dy[o : o+d] {
			s += float64(v) * float64(y[o+c])
			dys[o+c] = gr * v
		}
		dg[r] = float32(s)
	}
}

// maskedKey reports whether query row i (position within its sequence)
// may not see key j < i of the sequence starting at row0.
func maskedKey(keys []bool, row0, i, j int) bool {
	return keys != nil && j != i && !keys[row0+j]
}

var negInf = float32(math.Inf(-1))
