package dynamic

import "lrmc/kernels/train"

// GateBackward backpropagates dg through part of layer li (see
// train.Gate): into the routers' gradients and the router input's.
func (g *Gate) GateBackward(li int, tp train.GatePart, x, dg, dx []float32) {
	part := Part(tp)
	st := &g.st[li][part]
	if !st.routed {
		return
	}
	d := g.dim
	if g.rs.Method.Whole() {
		if part == MLP {
			copy(g.st[li][Attn].dgMLP, dg)
			return
		}
	}
	decide, scale := g.rs.Router(li, part)
	if g.frozen {
		// Only MoD's gate depends on x: g = r(x) on the executing rows.
		if scale == nil {
			return
		}
		for r, e := range st.exec {
			if e {
				axpy(dx[r*d:(r+1)*d], dg[r], scale.W)
			}
		}
		return
	}
	switch g.rs.Method {
	case MoD:
		gs, gp := g.grad[scale], g.grad[decide]
		for r := range g.rows {
			xr := x[r*d : (r+1)*d]
			if st.sel[r] {
				axpy(gs.w, dg[r], xr)
				gs.b[0] += dg[r]
				axpy(dx[r*d:(r+1)*d], dg[r], scale.W)
			}
			// The predictor reads x with the gradient stopped.
			axpy(gp.w, st.dPred[r], xr)
			gp.b[0] += st.dPred[r]
		}
	default:
		gr := g.grad[decide]
		wSkip, wExec := decide.W[:d], decide.W[d:]
		for r := range g.rows {
			dG := float64(dg[r]) + st.dAux[r]
			if g.rs.Method.Whole() {
				dG += float64(st.dgMLP[r])
			}
			// Straight-through: ∂g/∂p = 1, p = σ(Δ), ∂p/∂Δ = p(1−p), and
			// Δ = l_exec − l_skip + noise.
			dd := float32(dG * st.p[r] * (1 - st.p[r]))
			if dd == 0 {
				continue // a saturated router: nothing to add (not even a −0)
			}
			xr := x[r*d : (r+1)*d]
			axpy(gr.w[d:], dd, xr)
			axpy(gr.w[:d], -dd, xr)
			gr.b[1] += dd
			gr.b[0] -= dd
			dxr := dx[r*d : (r+1)*d]
			axpy(dxr, dd, wExec)
			axpy(dxr, -dd, wSkip)
		}
	}
}

// axpy adds a·x into y, each product rounded to float32.
func axpy(y []float32, a float32, x []float32) {
	x = x[:len(y)]
	for i, v := range x {
		y[i] += float32(a * v)
	}
}
