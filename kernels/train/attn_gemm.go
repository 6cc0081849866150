package train

import (
	"runtime"
	"sync"
	"sync/atomic"

	"lrmc/kernels/gemm"
	"lrmc/kernels/tensor"
)

// attnBlock is the number of query rows attnGEMM handles per product. Row
// block I (rows [i0, i1)) only meets keys [0, i1), so blocks skip most of
// the score work above the diagonal: with t = 4·attnBlock they do 5/8 of
// the full t×t products, and half as t grows, while each product stays
// large enough for gemm's packed kernels.
const attnBlock = 64

// attnGEMM is causal grouped-query attention computed with matrix products
// through kernels/gemm, a block of query rows at a time against the keys it
// can see. Heads are strided inside q, k and v rows, so each is gathered
// into a contiguous panel, and transposed where gemm's x·wᵀ form needs the
// other orientation.
//
// A head's probabilities are kept block by block, block I as a dense
// [i1−i0, i1] matrix (zero above the diagonal) at offset off[I]: the
// forward pass multiplies block I by the first i1 values, and the backward
// pass gathers the column blocks it needs from them.
//
// The (sequence, head) jobs of the forward pass and the (sequence, kv head)
// jobs of the backward pass run in parallel, each product on one thread:
// with head sizes of 8 to 128 one head's products are too small to split
// well, while a batch has tens of heads. Every job writes only its own
// output rows and columns, and its scratch is overwritten before it is
// read, so results do not depend on which worker ran a job nor on how
// many workers there are.
type attnGEMM struct {
	s   attnShape
	rb  []int // row-block bounds: 0, attnBlock, 2·attnBlock, …, t
	off []int // offset of each block inside a head's probabilities
	// work holds one scratch per worker, as many as GOMAXPROCS was when the
	// Net was built (PeakBytes counts the same number).
	work []*attnScratch
}

// attnScratch is one worker's buffers.
type attnScratch struct {
	// [t, hd] panels: a query head, the kv head's keys and values, the
	// output gradient, the kv head's gradient accumulators, a product.
	qh, kg, vg, doh, dkg, dvg, th []float32
	xT                            []float32 // a transposed panel, [hd, ≤t]
	ds                            []float32 // a head's score gradients, laid out as the probabilities
	cT                            []float32 // a transposed column block, [≤attnBlock, ≤t]
}

func newAttnGEMM(s attnShape, alloc func(int) []float32) *attnGEMM {
	a := &attnGEMM{s: s, work: make([]*attnScratch, attnWorkers())}
	size := 0
	for i0 := 0; i0 < s.t; i0 += attnBlock {
		a.rb = append(a.rb, i0)
		a.off = append(a.off, size)
		size += (min(i0+attnBlock, s.t) - i0) * min(i0+attnBlock, s.t)
	}
	a.rb = append(a.rb, s.t)
	th := s.t * s.hd
	for i := range a.work {
		a.work[i] = &attnScratch{
			qh: alloc(th), kg: alloc(th), vg: alloc(th), doh: alloc(th), dkg: alloc(th), dvg: alloc(th), th: alloc(th),
			xT: alloc(th), ds: alloc(size), cT: alloc(min(attnBlock, s.t) * s.t)}
	}
	return a
}

// attnWorkers is how many workers attention uses, and so how many scratch
// sets New allocates.
func attnWorkers() int { return runtime.GOMAXPROCS(0) }

// run calls fn for every job in [0, jobs), spread over the workers, which
// take the next job as they finish one. threads is the parallelism each
// product may use: more than 1 only when there are fewer jobs than
// processors.
func (a *attnGEMM) run(jobs int, fn func(job int, w *attnScratch, threads int)) {
	procs := runtime.GOMAXPROCS(0)
	workers := min(len(a.work), procs, jobs)
	threads := max(1, procs/max(1, jobs))
	var next atomic.Int64
	body := func(w *attnScratch) {
		for {
			j := int(next.Add(1) - 1)
			if j >= jobs {
				return
			}
			fn(j, w, threads)
		}
	}
	var wg sync.WaitGroup
	for _, w := range a.work[1:workers] {
		wg.Go(func() { body(w) })
	}
	body(a.work[0])
	wg.Wait()
}

// gatherHead copies head columns [off, off+hd) of t rows of stride width
// from src into dst [t, hd].
func gatherHead(dst, src []float32, row0, t, stride, off, hd int) {
	for i := range t {
		copy(dst[i*hd:(i+1)*hd], src[(row0+i)*stride+off:(row0+i)*stride+off+hd])
	}
}

func scatterHead(dst, src []float32, row0, t, stride, off, hd int) {
	for i := range t {
		copy(dst[(row0+i)*stride+off:(row0+i)*stride+off+hd], src[i*hd:(i+1)*hd])
	}
}

// panelT writes rows [lo, hi) of the [t, hd] panel x transposed into dst,
// [hd, hi−lo]: the w operand of a product contracting over those rows.
func panelT(dst, x []float32, lo, hi, hd int) []float32 {
	n := hi - lo
	transpose(dst, n, x[lo*hd:], hd, n, hd)
	return dst[:hd*n]
}

// softmaxScaled replaces x by softmax(x·scale), exponentiating
// (x − max)·scale with tensor.FastExp32sSum.
func softmaxScaled(x []float32, scale float32) {
	// A plain comparison, not the max builtin, whose NaN and signed-zero
	// rules compile to a much slower sequence.
	mx := x[0]
	for _, v := range x[1:] {
		if v > mx {
			mx = v
		}
	}
	inv := 1 / tensor.FastExp32sSum(x, mx, scale)
	for i, v := range x {
		x[i] = v * inv
	}
}

// block returns block I of a head's probabilities (or score gradients) h,
// with its row range and width.
func (a *attnGEMM) block(h []float32, I int) (blk []float32, i0, i1 int) {
	i0, i1 = a.rb[I], a.rb[I+1]
	return h[a.off[I] : a.off[I]+(i1-i0)*i1], i0, i1
}

// columnT gathers columns [j0, j1) of the blocks I ≥ J of h, transposed,
// into w.cT: rows j ∈ [j0, j1), columns i ∈ [j0, t).
func (a *attnGEMM) columnT(w *attnScratch, h []float32, J int) []float32 {
	j0, j1, t := a.rb[J], a.rb[J+1], a.s.t
	n := t - j0
	for I := J; I < len(a.off); I++ {
		blk, i0, i1 := a.block(h, I)
		transpose(w.cT[i0-j0:], n, blk[j0:], i1, i1-i0, j1-j0)
	}
	return w.cT[:(j1-j0)*n]
}

// forward is attnForward's contract (the key mask included), with
// FastExp32 in the softmax and p laid out block by block (see attnGEMM).
func (a *attnGEMM) forward(out, p, q, k, v []float32, keys []bool) {
	a.attend(out, p, q, k, v, keys, true)
}

// weighted recomputes forward's output from the probabilities it left in p.
func (a *attnGEMM) weighted(out, p, v []float32) { a.attend(out, p, nil, nil, v, nil, false) }

// attend computes out = P·V, and first P from q and k when scores is set.
func (a *attnGEMM) attend(out, p, q, k, v []float32, keys []bool, scores bool) {
	s := a.s
	qs, kvs, hd, t := s.qStride(), s.kvStride(), s.hd, s.t
	scale := 1 / tensor.Sqrt32(float32(hd))
	group := s.heads / s.kvHeads
	a.run(s.b*s.heads, func(job int, w *attnScratch, threads int) {
		seq, head := job/s.heads, job%s.heads
		g := head / group
		gatherHead(w.vg, v, seq*t, t, kvs, g*hd, hd)
		if scores {
			gatherHead(w.kg, k, seq*t, t, kvs, g*hd, hd)
			gatherHead(w.qh, q, seq*t, t, qs, head*hd, hd)
		}
		ph := p[job*t*t : (job+1)*t*t]
		for I := range a.off {
			pI, i0, i1 := a.block(ph, I)
			rows := i1 - i0
			if scores {
				gemm.MatMulThreads(pI, w.qh[i0*hd:i1*hd], w.kg, rows, hd, i1, threads)
				for r := range rows {
					row := pI[r*i1 : (r+1)*i1]
					if keys != nil {
						for j := range i0 + r {
							if maskedKey(keys, seq*t, i0+r, j) {
								row[j] = negInf
							}
						}
					}
					softmaxScaled(row[:i0+r+1], scale)
					clear(row[i0+r+1:])
				}
			}
			gemm.MatMulThreads(w.th[i0*hd:i1*hd], pI, panelT(w.xT, w.vg, 0, i1, hd), rows, i1, hd, threads)
		}
		scatterHead(out, w.th, seq*t, t, qs, head*hd, hd)
	})
}

// backward is attnBackward's contract, over attnGEMM.forward's p.
//
// Per head, block I of query rows: dP_I = dO_I·V[0:i1]ᵀ, then
// dS_I = P_I⊙(dP_I − rowsum(P_I⊙dP_I))/√hd and dQ_I = dS_I·K[0:i1]; per
// column block J of keys, from the blocks I ≥ J: dV_J += P[:, J]ᵀ·dO[j0:]
// and dK_J += dS[:, J]ᵀ·Q[j0:].
func (a *attnGEMM) backward(dq, dk, dv, dout, p, q, k, v []float32) {
	s := a.s
	qs, kvs, hd, t := s.qStride(), s.kvStride(), s.hd, s.t
	scale := 1 / tensor.Sqrt32(float32(hd))
	group := s.heads / s.kvHeads
	a.run(s.b*s.kvHeads, func(job int, w *attnScratch, threads int) {
		seq, g := job/s.kvHeads, job%s.kvHeads
		gatherHead(w.vg, v, seq*t, t, kvs, g*hd, hd)
		gatherHead(w.kg, k, seq*t, t, kvs, g*hd, hd)
		clear(w.dkg)
		clear(w.dvg)
		for head := g * group; head < (g+1)*group; head++ {
			ph := p[(seq*s.heads+head)*t*t : (seq*s.heads+head+1)*t*t]
			gatherHead(w.qh, q, seq*t, t, qs, head*hd, hd)
			gatherHead(w.doh, dout, seq*t, t, qs, head*hd, hd)
			for I := range a.off {
				pI, i0, i1 := a.block(ph, I)
				dI, _, _ := a.block(w.ds, I)
				rows := i1 - i0
				gemm.MatMulThreads(dI, w.doh[i0*hd:i1*hd], w.vg, rows, hd, i1, threads)
				for r := range rows {
					n := i0 + r + 1
					pi, di := pI[r*i1:r*i1+n], dI[r*i1:(r+1)*i1]
					var sum float32
					for j, pj := range pi {
						sum += float32(pj * di[j])
					}
					for j, pj := range pi {
						di[j] = float32(pj*(di[j]-sum)) * scale
					}
					clear(di[n:])
				}
				gemm.MatMulThreads(w.th[i0*hd:i1*hd], dI, panelT(w.xT, w.kg, 0, i1, hd), rows, i1, hd, threads)
			}
			scatterHead(dq, w.th, seq*t, t, qs, head*hd, hd)
			for J := range a.off {
				j0, j1 := a.rb[J], a.rb[J+1]
				cols, n := j1-j0, t-j0
				prod := w.th[:cols*hd]
				gemm.MatMulThreads(prod, a.columnT(w, ph, J), panelT(w.xT, w.doh, j0, t, hd), cols, n, hd, threads)
				tensor.Add(w.dvg[j0*hd:j1*hd], prod)
				gemm.MatMulThreads(prod, a.columnT(w, w.ds, J), panelT(w.xT, w.qh, j0, t, hd), cols, n, hd, threads)
				tensor.Add(w.dkg[j0*hd:j1*hd], prod)
			}
		}
		scatterHead(dk, w.dkg, seq*t, t, kvs, g*hd, hd)
		scatterHead(dv, w.dvg, seq*t, t, kvs, g*hd, hd)
	})
}
