// Package dynamic holds the per-token routers of dynamic pruning (MoD,
// D-LLM, SkipGPT) and the rules that turn a router's output into a decision:
// does this token run this block's attention, its MLP, or the whole block.
//
// This file is the contract the rest of the package builds on: the router
// weights, their deterministic evaluation-time decisions, each method's
// key/value rule for skipped tokens, and the safetensors file the routers
// are saved in. Training (kernels/train's gate hook) and the compute-skipping
// forward passes (prefill and decode) both read routers through it, so a
// router means the same thing in training, evaluation and serving.
package dynamic

import (
	"fmt"
	"math"
)

// Method names a dynamic-pruning method, as recipes spell it.
type Method string

const (
	// MoD (Mixture-of-Depths, Raposo et al. 2024) as the study runs it:
	// separate attention and MLP routers Linear(d→1) per layer; in training
	// the top-k tokens of each sequence run the part, k = max(1, ⌊(1−s)·T⌋),
	// and the part's output is scaled by the raw router output r (routers
	// start at weight ≈ 0, bias 1, so r ≈ 1 and the pretrained model is
	// intact on the chosen tokens). Top-k looks at the whole sequence, so
	// causal inference decides with a predictor Linear(d→1) per router,
	// trained with BCE on the top-k decisions (the MoD paper's second
	// method): execute iff the predictor's logit > 0. First and last layers
	// are dense.
	MoD Method = "mod"
	// DLLM (Jiang et al. 2024): one Linear(d→2) per block, hard
	// Gumbel-softmax (τ = 1) over [skip, execute] in training; the whole
	// block runs or is skipped per token.
	DLLM Method = "dllm"
	// SkipGPT (Zhao et al. 2025): separate attention and MLP Linear(d→2)
	// routers over [skip, execute], hard Gumbel-softmax in training.
	SkipGPT Method = "skipgpt"
)

// Methods lists the methods in a fixed order.
var Methods = []Method{MoD, DLLM, SkipGPT}

// Valid reports whether m is a known method.
func (m Method) Valid() bool { return m == MoD || m == DLLM || m == SkipGPT }

// KVRule says what a token that skips a block's attention leaves in that
// block's key/value cache, for the tokens after it to attend to.
type KVRule int

const (
	// KVAbsent: the token has no key/value entry in the block; later tokens
	// attend only to the tokens that ran it (MoD: the block is computed on
	// the selected tokens alone; D-LLM: its KV eviction of skipped tokens).
	KVAbsent KVRule = iota
	// KVFromInput: the token's key and value are still projected from its
	// (normed) block input and cached, and later tokens attend to them; only
	// its query, attention output and output projection are skipped. This is
	// what SkipGPT's dense-then-masked reference computes, made real.
	KVFromInput
)

func (k KVRule) String() string {
	switch k {
	case KVAbsent:
		return "absent"
	case KVFromInput:
		return "from-input"
	}
	return fmt.Sprintf("KVRule(%d)", int(k))
}

// KVRule is m's rule.
func (m Method) KVRule() KVRule {
	if m == SkipGPT {
		return KVFromInput
	}
	return KVAbsent
}

// Part is what a router decides on.
type Part int

const (
	Attn Part = iota // the block's attention (with its residual add)
	MLP              // the block's MLP (with its residual add)
)

func (p Part) String() string {
	if p == Attn {
		return "attn"
	}
	return "mlp"
}

// Router is y = x·Wᵀ + b over the hidden size: Out logits per token.
type Router struct {
	Dim, Out int
	W        []float32 // [Out, Dim] row-major
	B        []float32 // [Out]
}

// NewRouter returns a router with zero weights and bias.
func NewRouter(dim, out int) *Router {
	return &Router{Dim: dim, Out: out, W: make([]float32, out*dim), B: make([]float32, out)}
}

func (r *Router) check(name string) error {
	if r.Dim <= 0 || r.Out <= 0 || len(r.W) != r.Out*r.Dim || len(r.B) != r.Out {
		return fmt.Errorf("dynamic: router %s is %d×%d with %d weights and %d biases", name, r.Out, r.Dim, len(r.W), len(r.B))
	}
	for i, v := range r.W {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("dynamic: router %s weight %d is %g", name, i, v)
		}
	}
	for i, v := range r.B {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("dynamic: router %s bias %d is %g", name, i, v)
		}
	}
	return nil
}

// Apply writes the logits of rows tokens of x [rows, Dim] into dst [rows,
// Out]. Each logit is a float64 dot product in index order, rounded once:
// the decision of a token does not depend on how many tokens are routed
// with it (prefill and decode agree bit for bit).
func (r *Router) Apply(dst, x []float32, rows int) {
	for i := range rows {
		xi := x[i*r.Dim : (i+1)*r.Dim]
		for o := range r.Out {
			w := r.W[o*r.Dim : (o+1)*r.Dim]
			s := float64(r.B[o])
			for j, v := range xi {
				s += float64(w[j]) * float64(v)
			}
			dst[i*r.Out+o] = float32(s)
		}
	}
}

// Layer is one block's routers; a nil router means that part always runs.
// MoD sets Attn, MLP and their predictors; D-LLM sets Block; SkipGPT sets
// Attn and MLP.
type Layer struct {
	Attn, MLP         *Router // MoD: Out 1 (weight r); SkipGPT: Out 2 [skip, execute]
	Block             *Router // D-LLM: Out 2 [skip, execute]
	AttnPred, MLPPred *Router // MoD's causal predictors, Out 1
}

// Dense reports whether the layer has no router at all.
func (l *Layer) Dense() bool {
	return l.Attn == nil && l.MLP == nil && l.Block == nil
}

// Routers are a model's routers for one method.
type Routers struct {
	Method Method
	// Skip is the target fraction s of skipped computation the routers were
	// trained for (the recipe's ratio).
	Skip   float64
	Layers []Layer
}

// Validate checks that rs fits a model of the given layers and hidden size
// and has exactly the routers its method uses.
func (rs *Routers) Validate(layers, dim int) error {
	if !rs.Method.Valid() {
		return fmt.Errorf("dynamic: unknown method %q", rs.Method)
	}
	if !(rs.Skip >= 0 && rs.Skip < 1) {
		return fmt.Errorf("dynamic: skip ratio %g is outside [0, 1)", rs.Skip)
	}
	if len(rs.Layers) != layers {
		return fmt.Errorf("dynamic: %d layers of routers for a model of %d layers", len(rs.Layers), layers)
	}
	for i := range rs.Layers {
		l := &rs.Layers[i]
		for _, r := range l.routers() {
			if r.r == nil {
				continue
			}
			name := tensorName(i, r.name)
			if err := r.r.check(name); err != nil {
				return err
			}
			if r.r.Dim != dim {
				return fmt.Errorf("dynamic: router %s reads %d features, the model's hidden size is %d", name, r.r.Dim, dim)
			}
			if want := rs.Method.outputs(r.name); r.r.Out != want {
				return fmt.Errorf("dynamic: router %s has %d outputs, %s needs %d", name, r.r.Out, rs.Method, want)
			}
		}
		switch rs.Method {
		case MoD:
			if l.Block != nil || (l.Attn == nil) != (l.AttnPred == nil) || (l.MLP == nil) != (l.MLPPred == nil) {
				return fmt.Errorf("dynamic: layer %d: MoD needs attention and MLP routers each with its predictor, and no block router", i)
			}
		case DLLM:
			if l.Attn != nil || l.MLP != nil || l.AttnPred != nil || l.MLPPred != nil {
				return fmt.Errorf("dynamic: layer %d: D-LLM routes whole blocks; only a block router is allowed", i)
			}
		case SkipGPT:
			if l.Block != nil || l.AttnPred != nil || l.MLPPred != nil {
				return fmt.Errorf("dynamic: layer %d: SkipGPT has attention and MLP routers only", i)
			}
		}
	}
	return nil
}

// outputs is how many logits router name has under m.
func (m Method) outputs(name string) int {
	if m == MoD {
		return 1
	}
	return 2
}

type namedRouter struct {
	name string
	r    *Router
}

func (l *Layer) routers() []namedRouter {
	return []namedRouter{{"attn", l.Attn}, {"mlp", l.MLP}, {"block", l.Block}, {"attn_predictor", l.AttnPred}, {"mlp_predictor", l.MLPPred}}
}

// Whole reports whether m decides whole blocks (D-LLM): the decision taken
// for Attn on the block input then holds for the MLP too, and callers must
// not ask for an MLP decision.
func (m Method) Whole() bool { return m == DLLM }

// Router returns the router that decides part of layer i and, for MoD, the
// router whose output scales it. decide is nil when the part always runs.
// For D-LLM (Whole) only Attn may be asked: it returns the block router.
func (rs *Routers) Router(i int, p Part) (decide, scale *Router) {
	l := &rs.Layers[i]
	switch rs.Method {
	case DLLM:
		if p != Attn {
			panic("dynamic: D-LLM decides whole blocks; reuse the block's Attn decision for its MLP")
		}
		return l.Block, nil
	case MoD:
		if p == Attn {
			return l.AttnPred, l.Attn
		}
		return l.MLPPred, l.MLP
	default:
		if p == Attn {
			return l.Attn, nil
		}
		return l.MLP, nil
	}
}

// Decide fills exec [rows] with the evaluation-time decision of part p of
// layer i for rows tokens of x [rows, Dim] — deterministic, no noise: the
// argmax of [skip, execute] (execute on a tie), or for MoD the predictor's
// logit > 0 — and scale [rows] with the factor the part's output is
// multiplied by (MoD's router output r; 1 otherwise). The input x is what
// the part's router reads: the block input for attention and D-LLM, the
// residual after attention for the MLP. scratch must hold 2·rows floats.
func (rs *Routers) Decide(i int, p Part, x []float32, rows int, exec []bool, scale, scratch []float32) {
	decide, sc := rs.Router(i, p)
	if decide == nil {
		for r := range rows {
			exec[r], scale[r] = true, 1
		}
		return
	}
	logits := scratch[:rows*decide.Out]
	decide.Apply(logits, x, rows)
	for r := range rows {
		if decide.Out == 1 {
			exec[r] = logits[r] > 0
		} else {
			exec[r] = logits[2*r+1] >= logits[2*r]
		}
		scale[r] = 1
	}
	if sc != nil {
		w := scratch[:rows]
		sc.Apply(w, x, rows)
		copy(scale[:rows], w)
	}
}
