package train

import (
	"lrmc/kernels/gemm"
	"lrmc/kernels/tensor"
)

// attnGEMM is causal grouped-query attention computed with matrix products
// through kernels/gemm, one (sequence, head) at a time, gemm threading each
// product: the whole t×t score matrix is formed and the part above the
// diagonal discarded, which wastes half the score work but runs it at the
// packed kernel's speed. Heads are strided inside q, k and v rows, so each
// is gathered into a contiguous panel (and transposed where gemm's x·wᵀ
// form needs the other orientation) in scratch allocated once.
type attnGEMM struct {
	s attnShape
	// [t, hd] panels: a query head, the kv head, its values, the output
	// gradient, the kv head's gradient accumulators, a product.
	qh, kg, vg, doh, dkg, dvg, th []float32
	// [hd, t] transposed panels.
	vgT, kgT, qhT, dohT []float32
	// [t, t] score-shaped scratch.
	sc, sc2 []float32
}

func newAttnGEMM(s attnShape, alloc func(int) []float32) *attnGEMM {
	th, tt := s.t*s.hd, s.t*s.t
	return &attnGEMM{s: s,
		qh: alloc(th), kg: alloc(th), vg: alloc(th), doh: alloc(th), dkg: alloc(th), dvg: alloc(th), th: alloc(th),
		vgT: alloc(th), kgT: alloc(th), qhT: alloc(th), dohT: alloc(th),
		sc: alloc(tt), sc2: alloc(tt)}
}

// gather copies head columns [off, off+hd) of t rows of stride width from
// src into dst [t, hd], and its transpose into dstT [hd, t] when not nil.
func gatherHead(dst, dstT, src []float32, row0, t, stride, off, hd int) {
	for i := range t {
		r := src[(row0+i)*stride+off : (row0+i)*stride+off+hd]
		if dst != nil {
			copy(dst[i*hd:(i+1)*hd], r)
		}
		if dstT != nil {
			for e, v := range r {
				dstT[e*t+i] = v
			}
		}
	}
}

func scatterHead(dst, src []float32, row0, t, stride, off, hd int) {
	for i := range t {
		copy(dst[(row0+i)*stride+off:(row0+i)*stride+off+hd], src[i*hd:(i+1)*hd])
	}
}

func transposeSquare(dst, src []float32, t int) { transpose(dst, t, src, t, t, t) }

// forward is attnForward's contract (p holds every row's probabilities,
// zero above the diagonal).
func (a *attnGEMM) forward(out, p, q, k, v []float32) {
	s := a.s
	qs, kvs, hd, t := s.qStride(), s.kvStride(), s.hd, s.t
	scale := tensor.Sqrt32(float32(hd))
	group := s.heads / s.kvHeads
	for seq := range s.b {
		for head := range s.heads {
			g := head / group
			if head%group == 0 {
				gatherHead(a.kg, nil, k, seq*t, t, kvs, g*hd, hd)
				gatherHead(nil, a.vgT, v, seq*t, t, kvs, g*hd, hd)
			}
			gatherHead(a.qh, nil, q, seq*t, t, qs, head*hd, hd)
			ph := p[(seq*s.heads+head)*t*t : (seq*s.heads+head+1)*t*t]
			gemm.MatMul(ph, a.qh, a.kg, t, hd, t)
			for i := range t {
				row := ph[i*t : (i+1)*t]
				for j := range row[:i+1] {
					row[j] /= scale
				}
				tensor.Softmax(row[:i+1])
				clear(row[i+1:])
			}
			gemm.MatMul(a.th, ph, a.vgT, t, t, hd)
			scatterHead(out, a.th, seq*t, t, qs, head*hd, hd)
		}
	}
}

// backward is attnBackward's contract.
func (a *attnGEMM) backward(dq, dk, dv, dout, p, q, k, v []float32) {
	s := a.s
	qs, kvs, hd, t := s.qStride(), s.kvStride(), s.hd, s.t
	scale := tensor.Sqrt32(float32(hd))
	group := s.heads / s.kvHeads
	for seq := range s.b {
		for g := range s.kvHeads {
			gatherHead(a.vg, nil, v, seq*t, t, kvs, g*hd, hd)
			gatherHead(nil, a.kgT, k, seq*t, t, kvs, g*hd, hd)
			clear(a.dkg)
			clear(a.dvg)
			for head := g * group; head < (g+1)*group; head++ {
				ph := p[(seq*s.heads+head)*t*t : (seq*s.heads+head+1)*t*t]
				gatherHead(nil, a.qhT, q, seq*t, t, qs, head*hd, hd)
				gatherHead(a.doh, a.dohT, dout, seq*t, t, qs, head*hd, hd)
				// dV += Pᵀ·dO.
				transposeSquare(a.sc2, ph, t)
				gemm.MatMul(a.th, a.sc2, a.dohT, t, t, hd)
				tensor.Add(a.dvg, a.th)
				// dP = dO·Vᵀ, then dS = P⊙(dP − rowsum(P⊙dP))/√hd.
				gemm.MatMul(a.sc, a.doh, a.vg, t, hd, t)
				for i := range t {
					pi, di := ph[i*t:(i+1)*t], a.sc[i*t:(i+1)*t]
					var sum float32
					for j, pj := range pi[:i+1] {
						sum += float32(pj * di[j])
					}
					for j, pj := range pi[:i+1] {
						di[j] = float32(pj*(di[j]-sum)) / scale
					}
					clear(di[i+1:])
				}
				// dQ = dS·K, dK += dSᵀ·Q.
				gemm.MatMul(a.th, a.sc, a.kgT, t, t, hd)
				scatterHead(dq, a.th, seq*t, t, qs, head*hd, hd)
				transposeSquare(a.sc2, a.sc, t)
				gemm.MatMul(a.th, a.sc2, a.qhT, t, t, hd)
				tensor.Add(a.dkg, a.th)
			}
			scatterHead(dk, a.dkg, seq*t, t, kvs, g*hd, hd)
			scatterHead(dv, a.dvg, seq*t, t, kvs, g*hd, hd)
		}
	}
}
