package train

import (
	"math"

	"lrmc/kernels/tensor"
)

// rmsScale is 1/sqrt(mean(x²)+eps) computed exactly as tensor.RMSNorm does,
// so that the backward pass differentiates the function the forward ran.
func rmsScale(x []float32, eps float32) float32 {
	var ss float32
	for _, v := range x {
		ss += float32(v * v)
	}
	ss /= float32(len(x))
	ss += eps
	return 1 / tensor.Sqrt32(ss)
}

// rmsNormBackward backpropagates y = w ⊙ x·r, r = (mean(x²)+eps)^(-1/2),
// over the rows of width len(w) in x: dx += ∂L/∂x and, when dw is not nil,
// dw += ∂L/∂w (rows summed in order). With s = Σ_j dy_j·w_j·x_j,
// ∂L/∂x_i = r·w_i·dy_i − x_i·r³·s/d.
func rmsNormBackward(dx, dw, dy, x, w []float32, eps float32) {
	d := len(w)
	if dw == nil && d > 0 {
		// Without a weight gradient rows are independent: split them.
		rows := len(x) / d
		parRows(rows, d, func(lo, hi int) { rmsNormBackwardRows(dx[lo*d:hi*d], nil, dy[lo*d:hi*d], x[lo*d:hi*d], w, eps) })
		return
	}
	rmsNormBackwardRows(dx, dw, dy, x, w, eps)
}

// rmsNormBackwardRows is rmsNormBackward over x's rows in order, dw (when
// given) accumulated row by row.
func rmsNormBackwardRows(dx, dw, dy, x, w []float32, eps float32) {
	d := len(w)
	for o := 0; o+d <= len(x); o += d {
		xr, gr, dxr := x[o:o+d], dy[o:o+d], dx[o:o+d]
		r := rmsScale(xr, eps)
		var s float32
		for i, v := range xr {
			s += float32(float32(gr[i]*w[i]) * v)
		}
		c := float32(float32(r*r) * r * s / float32(d))
		for i, v := range xr {
			dxr[i] += float32(r*float32(w[i]*gr[i])) - float32(v*c)
		}
		if dw != nil {
			for i, v := range xr {
				dw[i] += float32(gr[i] * float32(v*r))
			}
		}
	}
}

// rope holds the rotation of every position: cos and sin of pos·freq_i,
// [positions × headDim/2], and which components of a head form the pairs.
type rope struct {
	cos, sin []float32
	half     int // headDim/2
	// interleaved pairs (2i, 2i+1) as llama2.c and GGUF; otherwise Hugging
	// Face's rotate-half pairs (i, i+headDim/2).
	interleaved bool
}

// apply rotates every head (width 2·half) of row vec at position pos. With
// inverse it applies the transposed rotation, which is the backward pass of
// the forward rotation (a rotation's Jacobian is the rotation itself).
func (r *rope) apply(vec []float32, pos int, inverse bool) {
	h := r.half
	cs, sn := r.cos[pos*h:(pos+1)*h], r.sin[pos*h:(pos+1)*h]
	// Pair i is (i·step, i·step+off) within each head.
	step, off := 2, 1
	if !r.interleaved {
		step, off = 1, h
	}
	for base := 0; base+2*h <= len(vec); base += 2 * h {
		v := vec[base : base+2*h]
		for i := range h {
			a, b := i*step, i*step+off
			c, s := cs[i], sn[i]
			v0, v1 := v[a], v[b]
			if inverse {
				v[a] = float32(v0*c) + float32(v1*s)
				v[b] = float32(v1*c) - float32(v0*s)
			} else {
				v[a] = float32(v0*c) - float32(v1*s)
				v[b] = float32(v0*s) + float32(v1*c)
			}
		}
	}
}

// attnShape is the geometry of causal grouped-query attention over b
// sequences of t positions.
type attnShape struct {
	b, t, heads, kvHeads, hd int
}

func (s attnShape) qStride() int  { return s.heads * s.hd }
func (s attnShape) kvStride() int { return s.kvHeads * s.hd }

// attnForward computes out = softmax(q·kᵀ/√hd)·v causally for every
// sequence and query head, storing the probabilities in p, [b, heads, t, t]
// (row i holds positions 0…i). The order of operations is llama's attend, so
// the output matches the inference prefill bit for bit. keys, when not nil,
// hides key j from query i ≠ j of the same sequence where keys[j] is false
// (a gate's key mask): its score is −∞, its probability 0.
func attnForward(out, p, q, k, v []float32, keys []bool, s attnShape) {
	qs, kvs, hd, t := s.qStride(), s.kvStride(), s.hd, s.t
	scale := tensor.Sqrt32(float32(hd))
	group := s.heads / s.kvHeads
	tensor.Parallel(s.b*s.heads, 1, func(lo, hi int) {
		for job := lo; job < hi; job++ {
			seq, head := job/s.heads, job%s.heads
			kvOff := seq*t*kvs + (head/group)*hd
			for i := range t {
				r := seq*t + i
				qi := q[r*qs+head*hd : r*qs+(head+1)*hd]
				pi := p[(job*t+i)*t : (job*t+i)*t+i+1]
				for j := range pi {
					pi[j] = tensor.Dot(qi, k[kvOff+j*kvs:kvOff+j*kvs+hd]) / scale
					if maskedKey(keys, seq*t, i, j) {
						pi[j] = negInf
					}
				}
				tensor.Softmax(pi)
				o := out[r*qs+head*hd : r*qs+(head+1)*hd]
				clear(o)
				for j, a := range pi {
					vj := v[kvOff+j*kvs : kvOff+j*kvs+hd]
					for c := range o {
						o[c] += float32(a * vj[c])
					}
				}
			}
		}
	})
}

// attnBackward overwrites dq, dk and dv with the gradients of attnForward's
// inputs given dout. One job per (sequence, kv head) owns that head's dk and
// dv rows and processes its query heads in order, so the sums never race and
// never change order. scratch holds b·kvHeads·t floats.
//
// With P the probabilities, S the scaled scores and dP_ij = dout_i·v_j:
// dv_j = Σ_i P_ij·dout_i, dS_ij = P_ij·(dP_ij − Σ_l P_il·dP_il),
// dq_i = Σ_j dS_ij·k_j/√hd, dk_j = Σ_i dS_ij·q_i/√hd.
func attnBackward(dq, dk, dv, dout, p, q, k, v, scratch []float32, s attnShape) {
	qs, kvs, hd, t := s.qStride(), s.kvStride(), s.hd, s.t
	scale := tensor.Sqrt32(float32(hd))
	group := s.heads / s.kvHeads
	tensor.Parallel(s.b*s.kvHeads, 1, func(lo, hi int) {
		for job := lo; job < hi; job++ {
			seq, g := job/s.kvHeads, job%s.kvHeads
			kvOff := seq*t*kvs + g*hd
			for j := range t {
				clear(dk[kvOff+j*kvs : kvOff+j*kvs+hd])
				clear(dv[kvOff+j*kvs : kvOff+j*kvs+hd])
			}
			dp := scratch[job*t : (job+1)*t]
			for head := g * group; head < (g+1)*group; head++ {
				pj := seq*s.heads + head
				for i := range t {
					r := seq*t + i
					pi := p[(pj*t+i)*t : (pj*t+i)*t+i+1]
					do := dout[r*qs+head*hd : r*qs+(head+1)*hd]
					qi := q[r*qs+head*hd : r*qs+(head+1)*hd]
					dqi := dq[r*qs+head*hd : r*qs+(head+1)*hd]
					var sum float32
					for j, a := range pi {
						vj := v[kvOff+j*kvs : kvOff+j*kvs+hd]
						dp[j] = tensor.Dot(do, vj)
						sum += float32(a * dp[j])
						axpy(dv[kvOff+j*kvs:kvOff+j*kvs+hd], a, do)
					}
					clear(dqi)
					for j, a := range pi {
						ds := float32(a*(dp[j]-sum)) / scale
						axpy(dqi, ds, k[kvOff+j*kvs:kvOff+j*kvs+hd])
						axpy(dk[kvOff+j*kvs:kvOff+j*kvs+hd], ds, qi)
					}
				}
			}
		}
	})
}

// swigluBackward turns da (the gradient of a = SiLU(g)·u) into dg, in place,
// and writes du: dg = da·u·σ(g)·(1 + g·(1 − σ(g))), du = da·SiLU(g). sig
// holds σ(g) as swigluFast computed it, or is nil to compute σ as
// tensor.SiLU does.
func swigluBackward(da, du, g, u, sig []float32) {
	parRows(len(g), 1, func(lo, hi int) {
		var sr []float32
		if sig != nil {
			sr = sig[lo:hi]
		}
		swigluBackwardRange(da[lo:hi], du[lo:hi], g[lo:hi], u[lo:hi], sr)
	})
}

func swigluBackwardRange(da, du, g, u, sig []float32) {
	for i, x := range g {
		var s float32
		if sig != nil {
			s = sig[i]
		} else {
			s = 1 / (1 + tensor.Exp32(-x))
		}
		d := da[i]
		du[i] = d * float32(x*s)
		da[i] = float32(float32(d*u[i])*s) * (1 + float32(x*(1-s)))
	}
}

// swigluFast writes a = SiLU(g)·u as tensor.SwiGLU does, but with
// σ(g) = 1/(1+e^(−g)) exponentiated by tensor.FastExp32s, and keeps σ(g) in
// sig for the backward pass, which then needs no exponential at all.
func swigluFast(a, sig, g, u []float32) {
	parRows(len(g), 1, func(lo, hi int) { swigluFastRange(a[lo:hi], sig[lo:hi], g[lo:hi], u[lo:hi]) })
}

func swigluFastRange(a, sig, g, u []float32) {
	sig, u, a = sig[:len(g)], u[:len(g)], a[:len(g)]
	for i, x := range g {
		sig[i] = -x
	}
	tensor.FastExp32s(sig)
	for i, x := range g {
		s := 1 / (1 + sig[i])
		sig[i] = s
		a[i] = float32(x*s) * u[i]
	}
}

// logSumExp returns max and log Σ exp(z − max), in float64 for the loss value.
func logSumExp(z []float32) (float32, float64) {
	mx := z[0]
	for _, v := range z[1:] {
		if v > mx {
			mx = v
		}
	}
	var s float64
	for _, v := range z {
		s += math.Exp(float64(v - mx))
	}
	return mx, math.Log(s)
}

// rowsGrain is the least work, in values, that parRows hands a thread
// (tests lower it to make small shapes split).
var rowsGrain = 1 << 15

// parRows runs fn on contiguous ranges of [0, rows) on every thread, each
// range at least rowsGrain values of width per row. It is for the
// element-wise and per-row steps (norms, RoPE, SwiGLU, adds, the loss of
// each position), whose results do not depend on how rows are split: run
// on one thread they left the other cores idle for a third of a LoRA
// step's wall time.
func parRows(rows, width int, fn func(lo, hi int)) {
	tensor.Parallel(rows, max(1, rowsGrain/max(width, 1)), fn)
}

// normRows is tensor.RMSNormRows with the rows split over threads.
func normRows(out, x, w []float32, eps float32) {
	d := len(w)
	parRows(len(x)/max(d, 1), d, func(lo, hi int) { tensor.RMSNormRows(out[lo*d:hi*d], x[lo*d:hi*d], w, eps) })
}

// addRows is tensor.Add(dst, x) split over threads.
func addRows(dst, x []float32) {
	parRows(len(x), 1, func(lo, hi int) { tensor.Add(dst[lo:hi], x[lo:hi]) })
}

// rows rotates every row of x ([rows × width], row r at position
// r mod t), or rotates back with inverse.
func (r *rope) rows(x []float32, width, t int, inverse bool) {
	parRows(len(x)/width, width, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			r.apply(x[i*width:(i+1)*width], i%t, inverse)
		}
	})
}
