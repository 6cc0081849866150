package dynamic

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"lrmc/kernels/train"
	"lrmc/kernels/train/optim"
)

// Router training runs in kernels/train's runtime: a *Gate is a train.Gate
// that gates every block of a train.Net with the routers of one method.
//
//	g, _ := dynamic.NewTraining(dynamic.TrainConfig{Method: dynamic.SkipGPT, Skip: 0.4, Seed: 1}, layers, dim)
//	net, _ := train.New(model, b, t, train.WithGEMM(), train.WithGate(g))   // stage 1: routers only
//	...
//	frozen, _ := dynamic.Frozen(g.Routers())                                  // stage 2
//	net2, _ := train.New(model, b, t, train.WithLoRA(cfg), train.WithGate(frozen))
//
// In a training pass (Net.ForwardBackward of a trainable gate) the routers
// decide as their method trains:
//
//   - SkipGPT and D-LLM: hard Gumbel-softmax, τ = 1, over the router's
//     logits [skip, execute]: with Gumbel noise G drawn per (seed,
//     micro-step, layer, part, logit, row), execute iff
//     l_exec + G_exec ≥ l_skip + G_skip; the gate's value is the hard
//     decision (1 or 0) and its gradient is the soft probability's,
//     p = σ((l_exec + G_exec) − (l_skip + G_skip)) (straight-through).
//   - MoD: the top k = ModCapacity(s, T) tokens of each sequence by router
//     output r run the part, whose output is scaled by r: g = r on them and
//     0 elsewhere, so the router learns through r.
//
// Everywhere else — Net.Loss, and every pass of a Frozen gate — they decide
// by Routers.Decide, the evaluation rule the compute-skipping inference
// uses: no noise, and for MoD the causal predictors.
//
// The key rule is the method's: with KVAbsent (MoD, D-LLM) the attention
// hides the keys of the tokens that skip it from every other token; with
// KVFromInput (SkipGPT) skipped tokens keep their keys.

// A train.GatePart converts to the Part of the same name: these constants
// fail to compile otherwise.
const (
	_ = uint(Attn-Part(train.GateAttn)) + uint(Part(train.GateAttn)-Attn)
	_ = uint(MLP-Part(train.GateMLP)) + uint(Part(train.GateMLP)-MLP)
)

// TrainConfig is what router training needs beyond the model's shape.
type TrainConfig struct {
	Method Method
	// Skip is the target fraction s of skipped computation.
	Skip float64
	// Seed fixes the routers' initialisation and the Gumbel noise.
	Seed uint64
	// Lambda weighs the compute-ratio loss: SkipGPT's λ (0 means
	// DefaultSkipGPTLambda), D-LLM's α (0 means DefaultDLLMAlpha). MoD has
	// no ratio loss (top-k fixes its ratio).
	Lambda float64
	// PredictorWeight weighs MoD's predictor BCE (0 means 1). The BCE only
	// trains the predictors: their input is taken with the gradient stopped.
	PredictorWeight float64
	// DenseFirst keeps the first layers of SkipGPT and D-LLM without
	// routers (always executed): D-LLM's reference code routes from layer
	// 2 on (its dynamic_start_layer). 0 routes every layer. MoD's first and
	// last layers are always dense.
	DenseFirst int
}

const (
	// DefaultSkipGPTLambda is SkipGPT's λ in
	// loss = LM + λ·|(1−s) − mean execute probability|.
	DefaultSkipGPTLambda = 20
	// DefaultDLLMAlpha is D-LLM's α in
	// loss = LM + α·mean_t |mean_l w_{l,t} − (1−s)| (its lambda_active).
	DefaultDLLMAlpha = 1
)

// ModCapacity is MoD's k for sequences of t tokens at skip ratio s:
// max(1, ⌊(1−s)·t⌋), with 1e-9 of slack so that 0.6·10 counts as 6 whatever
// its rounding.
func ModCapacity(s float64, t int) int {
	return max(1, int(math.Floor((1-s)*float64(t)+1e-9)))
}

// Gate trains (or, frozen, applies) one method's routers inside a
// train.Net; see NewTraining and Frozen.
type Gate struct {
	rs     *Routers
	cfg    TrainConfig
	frozen bool
	dim    int
	params []*optim.Param
	grad   map[*Router]routerGrad

	pass train.GatePass
	rows int
	st   [][2]partState // [layer][Attn, MLP]
	aux  []train.AuxLoss
}

type routerGrad struct{ w, b []float32 }

// partState is what a pass keeps of one part of one layer, for the
// auxiliary losses, the backward pass and the realised fractions.
type partState struct {
	routed bool
	logits []float32 // the deciding router's logits (MoD: r), [rows·Out]
	p      []float64 // Gumbel-softmax's soft execute probability (training)
	exec   []bool
	g      []float32
	scale  []float32 // Decide's scale
	pred   []float32 // MoD: the predictor's logits
	sel    []bool    // MoD: top-k membership, the predictor's target
	dAux   []float64 // the ratio loss's gradient at each row's hard gate
	dPred  []float32 // MoD: the BCE's gradient at the predictor's logits
	dgMLP  []float32 // D-LLM: the MLP's dg, until the block's backward
	keys   []bool
}

// NewTraining builds routers for a model of the given layers and hidden
// size, initialised from cfg.Seed (each router from its own stream, so the
// layout of one does not move another's values), ready to train:
//
//   - SkipGPT: weights uniform in ±√(3/dim) and biases 0, as SkipGPT's
//     TokenRouter initialises its layers (Kaiming-uniform, linear gain;
//     EIT-NLP/SkipGPT router_attn_mlp.py): every token starts at an even
//     chance to execute;
//   - D-LLM: weights uniform in ±1/√dim (nn.Linear's default) and biases
//     [skip 0.1, execute 2.0], as D-LLM's RouterModule sets its last layer
//     (Jyk-122/D-LLM llama/model_train.py): tokens start executing with
//     probability σ(1.9) ≈ 0.87;
//   - MoD: router weights uniform in ±0.01/√dim and bias 1, so r ≈ 1 and
//     the chosen tokens see the pretrained block almost unscaled;
//     predictors as nn.Linear (±1/√dim, bias 0). The first and last layers
//     are dense (no routers).
func NewTraining(cfg TrainConfig, layers, dim int) (*Gate, error) {
	if !cfg.Method.Valid() {
		return nil, fmt.Errorf("dynamic: unknown method %q, want one of %v", cfg.Method, Methods)
	}
	if !(cfg.Skip >= 0 && cfg.Skip < 1) {
		return nil, fmt.Errorf("dynamic: skip ratio %g is outside [0, 1)", cfg.Skip)
	}
	if layers <= 0 || dim <= 0 {
		return nil, fmt.Errorf("dynamic: a model of %d layers of width %d", layers, dim)
	}
	if cfg.Method == MoD && layers < 3 {
		return nil, fmt.Errorf("dynamic: MoD keeps the first and last layers dense; a model of %d layers has none left to route", layers)
	}
	if cfg.DenseFirst < 0 || cfg.DenseFirst >= layers {
		return nil, fmt.Errorf("dynamic: %d dense first layers of %d leave none to route", cfg.DenseFirst, layers)
	}
	if cfg.Lambda < 0 || cfg.PredictorWeight < 0 {
		return nil, fmt.Errorf("dynamic: loss weights λ %g and predictor %g must not be negative", cfg.Lambda, cfg.PredictorWeight)
	}
	if cfg.Lambda == 0 {
		cfg.Lambda = map[Method]float64{SkipGPT: DefaultSkipGPTLambda, DLLM: DefaultDLLMAlpha}[cfg.Method]
	}
	if cfg.PredictorWeight == 0 {
		cfg.PredictorWeight = 1
	}
	rs := &Routers{Method: cfg.Method, Skip: cfg.Skip, Layers: make([]Layer, layers)}
	init := func(i, slot int, wBound float64, bias ...float64) *Router {
		r := NewRouter(dim, len(bias))
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)<<4|uint64(slot)))
		for j := range r.W {
			r.W[j] = float32((2*rng.Float64() - 1) * wBound)
		}
		for j, b := range bias {
			r.B[j] = float32(b)
		}
		return r
	}
	lin := 1 / math.Sqrt(float64(dim))
	for i := range rs.Layers {
		l := &rs.Layers[i]
		if i < cfg.DenseFirst && cfg.Method != MoD {
			continue
		}
		switch cfg.Method {
		case SkipGPT:
			kaiming := math.Sqrt(3 / float64(dim))
			l.Attn, l.MLP = init(i, 0, kaiming, 0, 0), init(i, 1, kaiming, 0, 0)
		case DLLM:
			l.Block = init(i, 2, lin, 0.1, 2)
		case MoD:
			if i == 0 || i == layers-1 {
				continue
			}
			l.Attn, l.MLP = init(i, 0, 0.01*lin, 1), init(i, 1, 0.01*lin, 1)
			l.AttnPred, l.MLPPred = init(i, 3, lin, 0), init(i, 4, lin, 0)
		}
	}
	g := newGate(rs, cfg, dim, false)
	for i := range rs.Layers {
		for _, nr := range rs.Layers[i].routers() {
			if nr.r == nil {
				continue
			}
			n := tensorName(i, nr.name)
			gr := routerGrad{w: make([]float32, len(nr.r.W)), b: make([]float32, len(nr.r.B))}
			g.grad[nr.r] = gr
			g.params = append(g.params,
				&optim.Param{Name: n + ".weight", Data: nr.r.W, Grad: gr.w},
				&optim.Param{Name: n + ".bias", Data: nr.r.B, Grad: gr.b, NoDecay: true})
		}
	}
	return g, nil
}

// Frozen returns a gate that applies rs in evaluation mode (Decide's
// deterministic rule, no noise) and trains nothing: stage 2, LoRA with the
// routers fixed. Its passes are exact functions of the model, so the
// Net's gradients are exact too (MoD's scale r still passes its gradient
// to the hidden state it reads).
func Frozen(rs *Routers) (*Gate, error) {
	dim := 0
	for i := range rs.Layers {
		for _, nr := range rs.Layers[i].routers() {
			if nr.r != nil {
				dim = nr.r.Dim
			}
		}
	}
	if err := rs.Validate(len(rs.Layers), dim); err != nil {
		return nil, err
	}
	if dim == 0 {
		return nil, fmt.Errorf("dynamic: the %s routers have no router at all", rs.Method)
	}
	return newGate(rs, TrainConfig{Method: rs.Method, Skip: rs.Skip}, dim, true), nil
}

func newGate(rs *Routers, cfg TrainConfig, dim int, frozen bool) *Gate {
	return &Gate{rs: rs, cfg: cfg, frozen: frozen, dim: dim, grad: map[*Router]routerGrad{},
		st: make([][2]partState, len(rs.Layers))}
}

// Routers are the gate's routers; training updates them in place.
func (g *Gate) Routers() *Routers { return g.rs }

// Params are the routers' weights and biases (none when frozen), named
// as in routers.safetensors.
func (g *Gate) Params() []*optim.Param { return g.params }

// Begin starts a pass; a dense Net of a different batch shape resizes the
// pass's buffers.
func (g *Gate) Begin(p train.GatePass) {
	g.pass = p
	g.aux = nil
	rows := p.B * p.T
	if rows == g.rows {
		return
	}
	g.rows = rows
	for i := range g.st {
		for j := range g.st[i] {
			st := &g.st[i][j]
			*st = partState{logits: make([]float32, 2*rows), p: make([]float64, rows), exec: make([]bool, rows),
				g: make([]float32, rows), scale: make([]float32, rows), pred: make([]float32, rows), sel: make([]bool, rows),
				dPred: make([]float32, rows), dgMLP: make([]float32, rows), keys: make([]bool, rows), dAux: make([]float64, rows)}
		}
	}
}

// training reports whether this pass decides as training does.
func (g *Gate) training() bool { return !g.frozen && g.pass.Train }

// Gate decides part of layer li for the rows of x (see train.Gate).
func (g *Gate) Gate(li int, tp train.GatePart, x, gv []float32) []bool {
	part := Part(tp)
	rows := len(gv)
	if rows != g.rows || len(x) != rows*g.dim {
		panic(fmt.Sprintf("dynamic: gate called with %d rows of %d values, the pass has %d rows of width %d", rows, len(x)/max(rows, 1), g.rows, g.dim))
	}
	st := &g.st[li][part]
	if g.rs.Method.Whole() && part == MLP {
		// D-LLM: the block's decision, taken on its input, holds for the MLP.
		a := &g.st[li][Attn]
		st.routed = a.routed
		copy(gv, a.g)
		copy(st.exec, a.exec)
		return nil
	}
	decide, scale := g.rs.Router(li, part)
	if decide == nil && scale == nil {
		st.routed = false
		for r := range gv {
			gv[r] = 1
		}
		return nil
	}
	st.routed = true
	switch {
	case !g.training():
		g.rs.Decide(li, part, x, rows, st.exec, st.scale, st.logits)
		for r, e := range st.exec {
			gv[r] = 0
			if e {
				gv[r] = st.scale[r]
			}
		}
		if g.rs.Method == MoD && !g.frozen {
			// The predictor's BCE, reported against top-k.
			g.modRoute(li, part, x)
		}
	case g.rs.Method == MoD:
		g.modRoute(li, part, x)
		for r, s := range st.sel {
			st.exec[r], gv[r] = s, 0
			if s {
				gv[r] = st.logits[r]
			}
		}
	default:
		logits := st.logits[:2*rows]
		decide.Apply(logits, x, rows)
		for r := range rows {
			step := g.pass.Step
			d := float64(logits[2*r+1]) + gumbel(g.cfg.Seed, step, li, part, 1, r) -
				(float64(logits[2*r]) + gumbel(g.cfg.Seed, step, li, part, 0, r))
			st.p[r] = 1 / (1 + math.Exp(-d))
			st.exec[r] = d >= 0
			gv[r] = 0
			if st.exec[r] {
				gv[r] = 1
			}
		}
	}
	copy(st.g, gv)
	if part != Attn || g.rs.Method.KVRule() != KVAbsent {
		return nil
	}
	copy(st.keys, st.exec)
	return st.keys
}

// modRoute computes MoD's router outputs r (into logits), the top-k of
// each sequence (sel) and the predictor's logits for part of layer li.
func (g *Gate) modRoute(li int, part Part, x []float32) {
	st := &g.st[li][part]
	pred, scale := g.rs.Router(li, part)
	rows, t := g.rows, g.pass.T
	r := st.logits[:rows]
	scale.Apply(r, x, rows)
	pred.Apply(st.pred[:rows], x, rows)
	k := ModCapacity(g.cfg.Skip, t)
	idx := make([]int, t)
	for s := range g.pass.B {
		seq := r[s*t : (s+1)*t]
		for i := range idx {
			idx[i] = i
		}
		// Largest r first; ties to the earlier token.
		slices.SortStableFunc(idx, func(a, b int) int {
			switch {
			case seq[a] > seq[b]:
				return -1
			case seq[a] < seq[b]:
				return 1
			}
			return 0
		})
		sel := st.sel[s*t : (s+1)*t]
		clear(sel)
		for _, i := range idx[:k] {
			sel[i] = true
		}
	}
}
