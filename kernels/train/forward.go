package train

import (
	"fmt"

	"lrmc/kernels/tensor"
)

// Batch is b sequences of t tokens, sequence-major.
type Batch struct {
	Tokens []int32 // [b·t] model inputs
	// Targets is the token each position should predict, [b·t]; a negative
	// target excludes the position from the loss (the loss mask: train on
	// the assistant's tokens only). NextTokenTargets builds it.
	Targets []int32
	// Teacher holds a teacher model's logits for distillation; nil when the
	// objective has no KL term.
	Teacher *TeacherLogits
}

// NextTokenTargets returns the targets of next-token prediction over b
// sequences of t tokens: position i predicts token i+1 of its sequence, the
// last position of each sequence predicts nothing, and neither does a
// position whose next token has mask false (mask nil trains on every token).
func NextTokenTargets(tokens []int32, mask []bool, b, t int) []int32 {
	out := make([]int32, b*t)
	for s := range b {
		for i := range t {
			r := s*t + i
			out[r] = -1
			if i+1 < t && (mask == nil || mask[r+1]) {
				out[r] = tokens[r+1]
			}
		}
	}
	return out
}

// Loss is the value of the objective over a batch.
type Loss struct {
	CE, KL float64 // means over Tokens (KL already scaled by T²)
	Tokens int     // positions with a target
	// Aux are a gate's auxiliary losses (WithGate), already weighted.
	Aux   []AuxLoss
	Total float64 // the weighted sum the gradients are of, Aux included
}

func (n *Net) checkBatch(bt Batch) error {
	rows := n.b * n.t
	if len(bt.Tokens) != rows || len(bt.Targets) != rows {
		return fmt.Errorf("train: batch has %d tokens and %d targets, the net takes %d×%d = %d",
			len(bt.Tokens), len(bt.Targets), n.b, n.t, rows)
	}
	for i, tok := range bt.Tokens {
		if tok < 0 || int(tok) >= n.c.Vocab {
			return fmt.Errorf("train: token %d at position %d is outside the vocabulary [0, %d)", tok, i, n.c.Vocab)
		}
	}
	for i, tok := range bt.Targets {
		if int(tok) >= n.c.Vocab {
			return fmt.Errorf("train: target %d at position %d is outside the vocabulary [0, %d)", tok, i, n.c.Vocab)
		}
	}
	if n.o.objective.KL != 0 {
		if bt.Teacher == nil {
			return fmt.Errorf("train: the objective distills but the batch has no teacher logits")
		}
		if err := bt.Teacher.check(rows, n.c.Vocab); err != nil {
			return err
		}
	}
	return nil
}

// Loss evaluates the objective without computing gradients or dropout.
func (n *Net) Loss(bt Batch) (Loss, error) {
	if err := n.checkBatch(bt); err != nil {
		return Loss{}, err
	}
	n.train = false
	n.beginGate()
	n.forward(bt.Tokens)
	loss := n.head(bt, 0, false)
	n.auxLoss(&loss, 0, false)
	return loss, nil
}

// beginGate starts the gate's pass.
func (n *Net) beginGate() {
	if n.o.gate != nil {
		n.o.gate.Begin(GatePass{Train: n.train, Step: n.step, B: n.b, T: n.t})
	}
}

// auxLoss adds the gate's auxiliary losses to l.
func (n *Net) auxLoss(l *Loss, gradScale float32, backward bool) {
	if n.o.gate == nil {
		return
	}
	l.Aux = n.o.gate.Aux(gradScale, backward)
	for _, a := range l.Aux {
		l.Total += a.Value
	}
}

// ForwardBackward evaluates the objective on bt and adds gradScale times its
// gradient into every trainable parameter's Grad (gradient accumulation:
// call it once per micro-batch with gradScale = 1/micro-batches, then step).
func (n *Net) ForwardBackward(bt Batch, gradScale float32) (Loss, error) {
	if err := n.checkBatch(bt); err != nil {
		return Loss{}, err
	}
	n.train = true
	defer func() { n.step++ }()
	n.beginGate()
	n.forward(bt.Tokens)
	loss := n.head(bt, gradScale, true)
	n.auxLoss(&loss, gradScale, true)
	// dxn now holds the gradient at the final norm's output.
	d := n.c.Dim
	dh := n.g.dh
	clear(dh)
	rmsNormBackward(dh, n.final.Grad, n.dxn, n.ckpt[len(n.layers)], n.final.Data, n.c.NormEps)
	n.recomputing = true
	defer func() { n.recomputing = false }()
	for i := len(n.layers) - 1; i >= 0; i-- {
		// Recompute the block's activations (the output is not needed),
		// except the last block's: the forward pass just left them in n.a.
		// With the activation cache they are all kept, and only the
		// attention probabilities, which blocks share without the
		// attention cache, are recomputed: the same call, the same bits.
		switch last := i == len(n.layers)-1; {
		case last:
		case n.acts == nil:
			n.block(i, n.ckpt[i], n.g.dd)
		case n.probs == nil:
			a, _, attn := n.view(i)
			attn.forward(a.att, n.probsOf(i), a.q, a.k, a.v, nil)
		}
		n.blockBackward(i, n.ckpt[i])
	}
	if n.emb.Grad != nil {
		for r, tok := range bt.Tokens {
			tensor.Add(n.emb.Grad[int(tok)*d:(int(tok)+1)*d], dh[r*d:(r+1)*d])
		}
	}
	return loss, nil
}

// forward embeds the tokens and runs every block, keeping each block's input.
func (n *Net) forward(tokens []int32) {
	n.m.Embed(tokens, n.ckpt[0])
	for i := range n.layers {
		n.block(i, n.ckpt[i], n.ckpt[i+1])
	}
}

// block runs block li from h into out, leaving its activations in n.a. The
// order of operations is llama.Model.Block's, so without adapters the
// hidden states are the inference prefill's bit for bit.
func (n *Net) block(li int, h, out []float32) {
	c, l := n.c.Layer(li), &n.layers[li]
	a, shape, attn := n.view(li)
	rows := n.b * n.t
	hd, d := c.HeadDim(), c.Dim
	gate := n.o.gate
	var keys []bool
	if gate != nil {
		keys = gate.Gate(li, GateAttn, h[:rows*d], a.ga)
		if keys != nil && len(keys) != rows {
			panic(fmt.Sprintf("train: gate returned %d keys for %d rows", len(keys), rows))
		}
	}
	normRows(a.xa, h, l.attnNorm.Data, c.NormEps)
	n.linForward(li, modQ, a.q, a.xa)
	n.linForward(li, modK, a.k, a.xa)
	n.linForward(li, modV, a.v, a.xa)
	if c.QKNorm {
		copy(a.qRaw, a.q)
		copy(a.kRaw, a.k)
		normRows(a.q, a.qRaw, l.qNorm.Data[:hd], c.NormEps)
		normRows(a.k, a.kRaw, l.kNorm.Data[:hd], c.NormEps)
	}
	qd, kvd := c.QDim(), c.KVDim()
	n.rope.rows(a.q[:rows*qd], qd, n.t, false)
	n.rope.rows(a.k[:rows*kvd], kvd, n.t, false)
	switch p := n.probsOf(li); {
	case attn == nil:
		attnForward(a.att, p, a.q, a.k, a.v, keys, shape)
	case n.recomputing && n.probs != nil:
		attn.weighted(a.att, p, a.v) // the probabilities are cached
	default:
		attn.forward(a.att, p, a.q, a.k, a.v, keys)
	}
	if gate == nil {
		n.linForward(li, modO, a.h1, a.att)
		addRows(a.h1, h)
	} else {
		n.linForward(li, modO, a.ao, a.att)
		gatedAdd(a.h1, h, a.ga, a.ao, d)
		gate.Gate(li, GateMLP, a.h1, a.gm)
	}
	normRows(a.xf, a.h1, l.ffnNorm.Data, c.NormEps)
	n.linForward(li, modGate, a.g, a.xf)
	n.linForward(li, modUp, a.u, a.xf)
	if a.sig != nil {
		swigluFast(a.a, a.sig, a.g, a.u)
	} else {
		copy(a.a, a.g)
		tensor.SwiGLU(a.a, a.u)
	}
	if gate == nil {
		n.linForward(li, modDown, out, a.a)
		addRows(out, a.h1)
		return
	}
	n.linForward(li, modDown, a.mo, a.a)
	gatedAdd(out, a.h1, a.gm, a.mo, d)
}

// view is the Net's activation buffers, sized for the widest block, cut to
// block li's widths, with that block's attention geometry. A uniform model
// uses them whole, as they are.
func (n *Net) view(li int) (*acts, attnShape, *attnGEMM) {
	base := n.actsOf(li)
	if n.c.Uniform() {
		return base, n.shape, n.attn
	}
	c := n.c.Layer(li)
	rows := n.b * n.t
	qd, kvd, hid := rows*c.QDim(), rows*c.KVDim(), rows*c.HiddenDim
	a := *base
	cut := func(s []float32, k int) []float32 {
		if s == nil {
			return nil
		}
		return s[:k]
	}
	a.q, a.qRaw, a.att = cut(a.q, qd), cut(a.qRaw, qd), cut(a.att, qd)
	a.k, a.kRaw, a.v = cut(a.k, kvd), cut(a.kRaw, kvd), cut(a.v, kvd)
	a.g, a.u, a.a, a.sig = cut(a.g, hid), cut(a.u, hid), cut(a.a, hid), cut(a.sig, hid)
	shape := n.shape
	shape.heads, shape.kvHeads = c.Heads, c.KVHeads
	a.p = cut(a.p, n.b*c.Heads*n.t*n.t)
	attn := n.attn
	if attn != nil {
		at := *attn
		at.s = shape
		attn = &at
	}
	return &a, shape, attn
}

// actsOf is block li's activation buffers: its own with
// WithActivationCache, else the ones every block shares.
func (n *Net) actsOf(li int) *acts {
	if n.acts != nil {
		return &n.acts[li]
	}
	return &n.a
}

// linForward computes y = x·Wᵀ + b + scale·B·A·dropout(x) for projection mod
// of layer li, in PEFT's order: base layer with its bias, then the adapter's
// product, scaled.
func (n *Net) linForward(li, mod int, y, x []float32) {
	lin := &n.layers[li].lin[mod]
	rows := n.b * n.t
	n.prod.forward(y, x, lin.w.Data, rows, lin.in, lin.out)
	if lin.b != nil {
		addBias(y[:rows*lin.out], lin.b.Data)
	}
	ad := lin.lora
	if ad == nil {
		return
	}
	xin := x[:rows*lin.in]
	if dr := n.dropout(li, mod); dr.on() {
		xin = n.g.drop[:rows*lin.in]
		dr.apply(xin, x[:rows*lin.in])
	}
	u := n.actsOf(li).loraU[mod]
	n.prod.forward(u, xin, ad.A.Data, rows, lin.in, ad.Rank)
	tmp := n.g.tmp[:rows*lin.out]
	n.prod.forward(tmp, u, ad.B.Data, rows, ad.Rank, lin.out)
	for i, v := range tmp {
		y[i] += float32(v * ad.Scale)
	}
}

// dropout is the LoRA dropout of projection mod in layer li for the current
// micro-step; off outside training.
func (n *Net) dropout(li, mod int) dropout {
	lc := n.o.lora
	if lc == nil || !n.train {
		return dropout{}
	}
	return newDropout(lc.Seed, lc.Dropout, n.step, li, mod)
}
