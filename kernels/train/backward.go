package train

import "lrmc/kernels/tensor"

// blockBackward turns n.g.dh from the gradient at block li's output into the
// gradient at its input h, accumulating the block's parameter gradients. It
// needs the block's activations (recomputed by block just before, or kept
// by the activation cache).
func (n *Net) blockBackward(li int, h []float32) {
	c, g, l := n.c.Layer(li), &n.g, &n.layers[li]
	a, shape, attn := n.view(li)
	rows := n.b * n.t
	d, qd, kvd, hid, hd := c.Dim, c.QDim(), c.KVDim(), c.HiddenDim, c.HeadDim()
	dh := g.dh[:rows*d]
	gate := n.o.gate

	// MLP: out = h1 + g_m ⊙ down(SiLU(gate(xf))·up(xf)), xf = norm(h1),
	// g_m = 1 without a gate.
	dy := dh
	if gate != nil {
		dy = g.dgy[:rows*d]
		gateGrads(g.dg, dy, dh, a.mo, a.gm, d)
	}
	da := g.dhid[:rows*hid]
	clear(da)
	n.linBackward(li, modDown, da, dy, a.a)
	du := g.dhid2[:rows*hid]
	swigluBackward(da, du, a.g, a.u, a.sig) // da becomes the gate's gradient
	dxf := g.dd[:rows*d]
	clear(dxf)
	n.linBackward(li, modGate, dxf, da, a.xf)
	n.linBackward(li, modUp, dxf, du, a.xf)
	rmsNormBackward(dh, l.ffnNorm.Grad, dxf, a.h1, l.ffnNorm.Data, c.NormEps)
	if gate != nil {
		gate.GateBackward(li, GateMLP, a.h1, g.dg, dh)
	}

	// Attention: h1 = h + g_a ⊙ o(attention(rope(q), rope(k), v)).
	dy = dh
	if gate != nil {
		dy = g.dgy[:rows*d]
		gateGrads(g.dg, dy, dh, a.ao, a.ga, d)
	}
	datt := g.dq2[:rows*qd]
	clear(datt)
	n.linBackward(li, modO, datt, dy, a.att)
	dq, dk, dv := g.dq[:rows*qd], g.dk[:rows*kvd], g.dv[:rows*kvd]
	if attn != nil {
		attn.backward(dq, dk, dv, datt, n.probsOf(li), a.q, a.k, a.v)
	} else {
		attnBackward(dq, dk, dv, datt, n.probsOf(li), a.q, a.k, a.v, g.attnScratch, shape)
	}
	n.rope.rows(dq, qd, n.t, true)
	n.rope.rows(dk, kvd, n.t, true)
	if c.QKNorm {
		dqr, dkr := g.dq2[:rows*qd], g.dk2[:rows*kvd] // datt is spent
		clear(dqr)
		clear(dkr)
		rmsNormBackward(dqr, l.qNorm.Grad, dq, a.qRaw, l.qNorm.Data[:hd], c.NormEps)
		rmsNormBackward(dkr, l.kNorm.Grad, dk, a.kRaw, l.kNorm.Data[:hd], c.NormEps)
		dq, dk = dqr, dkr
	}
	dxa := g.dd[:rows*d]
	clear(dxa)
	n.linBackward(li, modQ, dxa, dq, a.xa)
	n.linBackward(li, modK, dxa, dk, a.xa)
	n.linBackward(li, modV, dxa, dv, a.xa)
	rmsNormBackward(dh, l.attnNorm.Grad, dxa, h, l.attnNorm.Data, c.NormEps)
	if gate != nil {
		gate.GateBackward(li, GateAttn, h[:rows*d], g.dg, dh)
	}
}

// linBackward backpropagates dy through projection mod of layer li whose
// input was x: dx += ∂L/∂x, and the gradients of whichever of W, b, A, B
// are trainable.
func (n *Net) linBackward(li, mod int, dx, dy, x []float32) {
	lin := &n.layers[li].lin[mod]
	rows := n.b * n.t
	in, out := lin.in, lin.out
	if lin.w.Grad != nil {
		n.prod.dw(lin.w.Grad, dy, x, rows, out, in)
	}
	if lin.b != nil && lin.b.Grad != nil {
		biasGrad(lin.b.Grad, dy[:rows*out])
	}
	n.prod.dx(dx, dy, lin.w.Data, rows, out, in)
	ad := lin.lora
	if ad == nil {
		return
	}
	// y += s·(u·Bᵀ) with u = x̃·Aᵀ, x̃ = dropout(x): with ds = s·dy,
	// dB += dsᵀ·u, du = ds·B, dA += duᵀ·x̃, dx += dropout'(du·A).
	r := ad.Rank
	ds := n.g.tmp[:rows*out]
	for i, v := range dy[:rows*out] {
		ds[i] = v * ad.Scale
	}
	u := n.actsOf(li).loraU[mod]
	n.prod.dw(ad.B.Grad, ds, u, rows, out, r)
	du := n.g.du[:rows*r]
	clear(du)
	n.prod.dx(du, ds, ad.B.Data, rows, out, r)
	dr := n.dropout(li, mod)
	xin := x[:rows*in]
	if dr.on() {
		xin = n.g.drop[:rows*in]
		dr.apply(xin, x[:rows*in])
	}
	n.prod.dw(ad.A.Grad, du, xin, rows, r, in)
	dxl := n.g.dxl[:rows*in]
	clear(dxl)
	n.prod.dx(dxl, du, ad.A.Data, rows, r, in)
	if dr.on() {
		dr.addScaled(dx, dxl)
	} else {
		tensor.Add(dx[:len(dxl)], dxl)
	}
}
