package train

import (
	"fmt"
	"math"

	"lrmc/kernels/llama"
	"lrmc/kernels/train/optim"
)

// linear is one projection y = x·Wᵀ (+ b) (+ LoRA) of a block.
type linear struct {
	w, b    *optim.Param // Grad nil when frozen; b nil when the layer has no bias
	lora    *Adapter
	in, out int
}

// layerParams is one block's weights as the Net sees them.
type layerParams struct {
	attnNorm, ffnNorm, qNorm, kNorm *optim.Param // qNorm, kNorm nil without QKNorm
	lin                             [7]linear
}

// acts are one block's activations, recomputed from the block's input
// before its backward pass, or kept from the forward pass
// (WithActivationCache).
type acts struct {
	xa         []float32 // attention RMSNorm output [n, d]
	q, k, v    []float32 // after bias, q/k norm and RoPE: [n, qd], [n, kvd]
	qRaw, kRaw []float32 // before the q/k norm (QKNorm only)
	p          []float32 // attention probabilities [b, heads, t, t] (nil with the cache)
	att        []float32 // attention output, input of o_proj [n, qd]
	h1         []float32 // residual after attention [n, d]
	xf         []float32 // MLP RMSNorm output [n, d]
	g, u, a    []float32 // gate, up, SiLU(gate)·up [n, hidden]
	sig        []float32 // σ(gate) [n, hidden], kept for backward (WithGEMM only)
	loraU      [7][]float32
	// With a gate: the attention and MLP outputs before gating, [n, d],
	// and the gates, [n].
	ao, mo, ga, gm []float32
}

// alloc allocates the activations of a block of the given widths over
// rows positions, except the attention probabilities, the LoRA products
// and the gate's buffers, which layout places.
func (a *acts) alloc(rows, d, qd, kvd, hid int, qkNorm, gemm bool, alloc func(int) []float32) {
	a.xa, a.q, a.k, a.v = alloc(rows*d), alloc(rows*qd), alloc(rows*kvd), alloc(rows*kvd)
	if qkNorm {
		a.qRaw, a.kRaw = alloc(rows*qd), alloc(rows*kvd)
	}
	a.att, a.h1, a.xf = alloc(rows*qd), alloc(rows*d), alloc(rows*d)
	a.g, a.u, a.a = alloc(rows*hid), alloc(rows*hid), alloc(rows*hid)
	if gemm {
		a.sig = alloc(rows * hid)
	}
}

// grads are the backward pass's working buffers.
type grads struct {
	dh             []float32 // gradient of the residual stream [n, d]
	dd             []float32 // [n, d]
	dq, dq2        []float32 // [n, qd]
	dk, dk2, dv    []float32 // [n, kvd]
	dhid, dhid2    []float32 // [n, hidden]
	attnScratch    []float32 // [b, kvHeads, t]
	drop, tmp, dxl []float32 // LoRA: [n, maxWidth] each
	du             []float32 // LoRA: [n, rank]
	dgy            []float32 // with a gate: g ⊙ dy [n, d]
	dg             []float32 // with a gate: the gate's gradient [n]
}

// Net computes the loss of a llama.Model on batches of b sequences of t
// tokens and the gradients of its trainable parameters. It owns every buffer
// it needs; ForwardBackward allocates nothing that grows with the batch. It
// is not safe for concurrent use.
type Net struct {
	m      *llama.Model
	c      llama.Config
	b, t   int
	o      options
	shape  attnShape
	prod   products
	attn   *attnGEMM // nil: attnForward and attnBackward
	rope   rope
	layers []layerParams
	emb    *optim.Param // the embedding; also the classifier when shared
	cls    *optim.Param
	final  *optim.Param

	adapters []*Adapter
	params   []*optim.Param

	ckpt [][]float32 // block inputs, and the final hidden state: Layers+1 of [n, d]
	// probs holds each block's attention probabilities with
	// WithAttentionCache; nil otherwise (every block uses a.p).
	probs [][]float32
	// recomputing is set while backward recomputes blocks: with the cache,
	// their probabilities are already there.
	recomputing bool
	a           acts
	// acts holds each block's activations with WithActivationCache (a then
	// holds only the shared attention probabilities); nil otherwise.
	acts []acts
	g    grads
	xn   []float32 // final norm output [n, d]
	dxn  []float32 // its gradient
	// Classifier chunk: gathered rows, their gradient and logits.
	xc, dxc, logits []float32
	active          []int32
	rowCE, rowKL    []float64 // a chunk's per-position losses

	sizes       map[*optim.Param]int
	activeBytes int64

	train bool   // dropout on (ForwardBackward) or off (Loss)
	step  uint64 // micro-steps taken: selects the dropout masks
	bytes int64
}

// New builds a Net over m for batches of b sequences of t tokens. The
// model's weights are used in place, not copied: full fine-tuning updates
// them. Training reads and updates float32 weights: a 16-bit model (see
// llama.DType) is refused, to be widened by the caller with Float32 (New
// does not widen it itself, which would silently leave the caller's model
// untrained).
func New(m *llama.Model, b, t int, opts ...Option) (*Net, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if dt := m.DType(); dt != llama.Float32 {
		return nil, fmt.Errorf("train: the model's weights are %s; training needs float32 weights (widen it with Model.Float32 first)", dt)
	}
	if b <= 0 || t <= 0 {
		return nil, fmt.Errorf("train: batch %d × sequence %d, both must be positive", b, t)
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	n := &Net{m: m, c: m.Config, b: b, t: t, o: o}
	n.layout(n.alloc)
	return n, nil
}

// PeakBytes is the memory, beyond the model's own weights, that training a
// model of shape c on batches of b × t tokens with opts takes: everything
// New allocates (block checkpoints, one block's activations, gradient
// buffers, LoRA adapters and their gradients, the logits chunk) plus
// AdamW's two moments per trainable value. Extra modules' own parameters are
// not counted (their moments are), nor are kernels/gemm's pooled packing
// buffers, which it sizes by its own cache blocking. It is computed from the shapes alone and
// equals Net.Bytes() + AdamW.StateBytes() for the Net New builds; it is 0
// for options New would reject.
//
// The terms, for n = b·t positions: (Layers+1)·n·Dim checkpoints; one
// block's activations, about n·(6·Dim + 3·QDim + 3·HiddenDim) (4·HiddenDim
// WithGEMM, which keeps σ(gate); Layers times that WithActivationCache)
// plus the attention probabilities
// b·Heads·t² (Layers times that WithAttentionCache); per worker (GOMAXPROCS
// when New runs) WithGEMM's attention scratch, under t² + 64·t + 8·t·HeadDim; gradient scratch of similar size; the
// logits chunk, LogitRows·Vocab; with a gate, 3·n·Dim + 3·n more (the
// parts' outputs before gating, their gradient, the gates); and for each
// trainable value its gradient and two moments.
func PeakBytes(c llama.Config, b, t int, opts ...Option) int64 {
	o, err := buildOptions(opts)
	if err != nil {
		return 0
	}
	n := &Net{c: c, b: b, t: t, o: o, m: &llama.Model{Config: c, Layers: make([]llama.Layer, c.Layers)}}
	var total int64
	n.layout(func(k int) []float32 { total += 4 * int64(k); return nil })
	for _, p := range n.params {
		total += 8 * int64(n.paramLen(p))
	}
	return total + n.activeBytes
}

func (n *Net) alloc(k int) []float32 {
	n.bytes += 4 * int64(k)
	return make([]float32, k)
}

// Bytes is the memory New allocated.
func (n *Net) Bytes() int64 {
	return n.bytes + n.activeBytes
}

// paramLen is a parameter's size, also when layout only counted (Data nil).
func (n *Net) paramLen(p *optim.Param) int { return n.sizes[p] }

// layout wires the parameters and allocates every buffer with alloc, which
// PeakBytes replaces with a counter.
func (n *Net) layout(alloc func(int) []float32) {
	c, m := n.c, n.m
	d, qd, kvd, hid, hd := c.Dim, c.QDim(), c.KVDim(), c.HiddenDim, c.HeadDim()
	rows := n.b * n.t
	n.sizes = map[*optim.Param]int{}
	n.shape = attnShape{b: n.b, t: n.t, heads: c.Heads, kvHeads: c.KVHeads, hd: hd}
	full := n.o.full
	param := func(name string, data []float32, size int, noDecay bool) *optim.Param {
		p := &optim.Param{Name: name, Data: data, NoDecay: noDecay}
		n.sizes[p] = size
		if full {
			p.Grad = alloc(size)
			n.params = append(n.params, p)
		}
		return p
	}
	n.emb = param("model.embed_tokens.weight", m.Embedding, c.Vocab*d, false)
	var loraT map[string]bool
	if n.o.lora != nil {
		loraT = map[string]bool{}
		for _, t := range n.o.lora.Targets {
			loraT[t] = true
		}
	}
	n.layers = make([]layerParams, c.Layers)
	for i := range n.layers {
		l, ml := &n.layers[i], &m.Layers[i]
		lc := c.Layer(i)
		lq, lkv, lh := lc.QDim(), lc.KVDim(), lc.HiddenDim
		dims := [7][2]int{{d, lq}, {d, lkv}, {d, lkv}, {lq, d}, {d, lh}, {d, lh}, {lh, d}}
		pre := fmt.Sprintf("model.layers.%d.", i)
		l.attnNorm = param(pre+"input_layernorm.weight", ml.AttnNorm, d, true)
		weights := [7][]float32{ml.Wq, ml.Wk, ml.Wv, ml.Wo, ml.W1, ml.W3, ml.W2}
		for j := range l.lin {
			lin := &l.lin[j]
			lin.in, lin.out = dims[j][0], dims[j][1]
			name := pre + projGroup(j) + "." + projNames[j]
			lin.w = param(name+".weight", weights[j], lin.in*lin.out, false)
			if c.QKVBias && j <= modV {
				lin.b = param(name+".bias", [3][]float32{ml.Bq, ml.Bk, ml.Bv}[j], lin.out, true)
			}
			if c.OutBias && (j == modO || j == modDown) {
				b := ml.Bo
				if j == modDown {
					b = ml.B2
				}
				lin.b = param(name+".bias", b, lin.out, true)
			}
			if j == modV && c.QKNorm {
				l.qNorm = param(pre+"self_attn.q_norm.weight", ml.QNorm, hd, true)
				l.kNorm = param(pre+"self_attn.k_norm.weight", ml.KNorm, hd, true)
			}
			if j == modO {
				l.ffnNorm = param(pre+"post_attention_layernorm.weight", ml.FFNNorm, d, true)
			}
		}
	}
	n.final = param("model.norm.weight", m.FinalNorm, d, true)
	if c.SharedClassifier {
		n.cls = n.emb
	} else {
		n.cls = param("lm_head.weight", m.Classifier, c.Vocab*d, false)
	}

	maxW, rank := max(d, qd, hid), 0
	if lc := n.o.lora; lc != nil {
		rank = lc.Rank
		for i := range n.layers {
			for j := range n.layers[i].lin {
				if !loraT[projNames[j]] {
					continue
				}
				lin := &n.layers[i].lin[j]
				a := newAdapter(*lc, i, j, lin.in, lin.out, alloc)
				n.sizes[a.A], n.sizes[a.B] = rank*lin.in, lin.out*rank
				lin.lora = a
				n.adapters = append(n.adapters, a)
				n.params = append(n.params, a.A, a.B)
			}
		}
	}
	for _, mod := range n.o.modules {
		for _, p := range mod.Params() {
			n.sizes[p] = len(p.Data)
			n.params = append(n.params, p)
		}
	}

	n.ckpt = make([][]float32, c.Layers+1)
	for i := range n.ckpt {
		n.ckpt[i] = alloc(rows * d)
	}
	a := &n.a
	if n.o.actsCache {
		// Each block's own, at its own widths.
		n.acts = make([]acts, c.Layers)
		for i := range n.acts {
			lc := c.Layer(i)
			n.acts[i].alloc(rows, d, lc.QDim(), lc.KVDim(), lc.HiddenDim, c.QKNorm, n.o.gemm, alloc)
		}
	} else {
		a.alloc(rows, d, qd, kvd, hid, c.QKNorm, n.o.gemm, alloc)
	}
	if n.o.attnCache {
		n.probs = make([][]float32, c.Layers)
		for i := range n.probs {
			n.probs[i] = alloc(n.b * c.Heads * n.t * n.t)
		}
	} else {
		a.p = alloc(n.b * c.Heads * n.t * n.t)
	}
	if n.o.gate != nil {
		a.ao, a.mo, a.ga, a.gm = alloc(rows*d), alloc(rows*d), alloc(rows), alloc(rows)
		n.g.dgy, n.g.dg = alloc(rows*d), alloc(rows)
	}
	for _, ad := range n.adapters {
		switch {
		case n.acts != nil:
			n.acts[ad.Layer].loraU[slotOf(ad.Module)] = alloc(rows * rank)
		case ad.Layer == 0:
			a.loraU[slotOf(ad.Module)] = alloc(rows * rank)
		}
	}
	g := &n.g
	g.dh, g.dd = alloc(rows*d), alloc(rows*d)
	g.dq, g.dq2 = alloc(rows*qd), alloc(rows*qd)
	g.dk, g.dv = alloc(rows*kvd), alloc(rows*kvd)
	if c.QKNorm {
		g.dk2 = alloc(rows * kvd)
	}
	g.dhid, g.dhid2 = alloc(rows*hid), alloc(rows*hid)
	g.attnScratch = alloc(n.b * c.KVHeads * n.t)
	if rank > 0 {
		g.drop, g.tmp, g.dxl, g.du = alloc(rows*maxW), alloc(rows*maxW), alloc(rows*maxW), alloc(rows*rank)
	}
	n.rope = newRope(c, n.t, alloc)
	n.xn, n.dxn = alloc(rows*d), alloc(rows*d)
	n.prod = exactProducts{}
	if n.o.gemm {
		// The widest block bounds every block's products.
		dims := [7][2]int{{d, qd}, {d, kvd}, {d, kvd}, {qd, d}, {d, hid}, {d, hid}, {hid, d}}
		whole := 0
		for _, dm := range dims {
			whole = max(whole, dm[1]*max(dm[0], rows))
		}
		n.prod = newGEMMProducts(rows, maxW, whole, alloc)
		n.attn = newAttnGEMM(n.shape, alloc)
	}
	lr := min(n.o.logitRows, rows)
	n.xc, n.dxc, n.logits = alloc(lr*d), alloc(lr*d), alloc(lr*c.Vocab)
	// The list of positions with a target is int32 and the per-position
	// losses of a logits chunk float64, so counted by hand.
	n.active = make([]int32, rows)
	n.rowCE, n.rowKL = make([]float64, lr), make([]float64, lr)
	n.activeBytes = 4*int64(rows) + 16*int64(lr)
}

// probsOf is the buffer holding block li's attention probabilities.
func (n *Net) probsOf(li int) []float32 {
	if n.probs != nil {
		return n.probs[li]
	}
	return n.a.p
}

func slotOf(module string) int {
	for i, p := range projNames {
		if p == module {
			return i
		}
	}
	panic("train: unknown module " + module)
}

// Params are the trainable parameters in a fixed order: the model's weights
// when fine-tuning fully, then the adapters, then the extra modules'.
func (n *Net) Params() []*optim.Param { return n.params }

// Adapters are the LoRA adapters, by layer and then in projNames order.
func (n *Net) Adapters() []*Adapter { return n.adapters }

// Model is the model the Net trains.
func (n *Net) Model() *llama.Model { return n.m }

// MicroSteps is the number of ForwardBackward calls so far, which selects
// the dropout masks; SetMicroSteps restores it when resuming.
func (n *Net) MicroSteps() uint64     { return n.step }
func (n *Net) SetMicroSteps(s uint64) { n.step = s }

// newRope tabulates the rotation of positions 0…t-1 with the frequencies
// llama uses (float32 steps of run.c, then llama3 rescaling if configured).
func newRope(c llama.Config, t int, alloc func(int) []float32) rope {
	hd := c.HeadDim()
	half := hd / 2
	r := rope{cos: alloc(t * half), sin: alloc(t * half), half: half,
		interleaved: c.RopeStyle == llama.RopeInterleaved}
	if r.cos == nil {
		return r // counting only
	}
	freqs := llama.RopeFreqs(c)
	for p := range t {
		for i, f := range freqs {
			a := float64(float32(p) * f)
			r.cos[p*half+i] = float32(math.Cos(a))
			r.sin[p*half+i] = float32(math.Sin(a))
		}
	}
	return r
}
