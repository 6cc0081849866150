package train

import (
	"runtime"
	"sync"
	"sync/atomic"

	"lrmc/kernels/gemm"
	"lrmc/kernels/tensor"
)

// attnGEMM is causal grouped-query attention computed with matrix products
// through kernels/gemm: the whole t×t score matrix of a (sequence, head) is
// formed and the part above the diagonal discarded, which wastes half the
// score work but runs it at the packed kernel's speed. Heads are strided
// inside q, k and v rows, so each is gathered into a contiguous panel (and
// transposed where gemm's x·wᵀ form needs the other orientation).
//
// The (sequence, head) jobs of the forward pass and the (sequence, kv head)
// jobs of the backward pass run in parallel, each product on one thread:
// with head sizes of 8 to 128 one head's products are too small to split
// well, while a batch has tens of heads. Every job writes only its own
// output rows and columns, and its scratch is overwritten before it is
// read, so results do not depend on which worker ran a job nor on how
// many workers there are.
type attnGEMM struct {
	s attnShape
	// work holds one scratch per worker, as many as GOMAXPROCS was when the
	// Net was built (PeakBytes counts the same number).
	work []*attnScratch
}

// attnScratch is one worker's buffers.
type attnScratch struct {
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
	a := &attnGEMM{s: s, work: make([]*attnScratch, attnWorkers())}
	for i := range a.work {
		a.work[i] = &attnScratch{
			qh: alloc(th), kg: alloc(th), vg: alloc(th), doh: alloc(th), dkg: alloc(th), dvg: alloc(th), th: alloc(th),
			vgT: alloc(th), kgT: alloc(th), qhT: alloc(th), dohT: alloc(th),
			sc: alloc(tt), sc2: alloc(tt)}
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

// gather copies head columns [off, off+hd) of t rows of stride width from
// src into dst [t, hd], and its transpose into dstT [hd, t] when not nil.
func gatherHead(dst, dstT, src []float32, row0, t, stride, off, hd int) {
	if dst != nil {
		for i := range t {
			copy(dst[i*hd:(i+1)*hd], src[(row0+i)*stride+off:(row0+i)*stride+off+hd])
		}
	}
	if dstT != nil {
		transpose(dstT, t, src[row0*stride+off:], stride, t, hd)
	}
}

func scatterHead(dst, src []float32, row0, t, stride, off, hd int) {
	for i := range t {
		copy(dst[(row0+i)*stride+off:(row0+i)*stride+off+hd], src[i*hd:(i+1)*hd])
	}
}

func transposeSquare(dst, src []float32, t int) { transpose(dst, t, src, t, t, t) }

// softmaxScaled replaces x by softmax(x·scale): (x − max)·scale
// exponentiated with tensor.FastExp32s, the sum taken in index order.
func softmaxScaled(x []float32, scale float32) {
	mx := x[0]
	for _, v := range x[1:] {
		mx = max(mx, v)
	}
	for i, v := range x {
		x[i] = float32((v - mx) * scale)
	}
	tensor.FastExp32s(x)
	var sum float32
	for _, v := range x {
		sum += v
	}
	inv := 1 / sum
	for i, v := range x {
		x[i] = v * inv
	}
}

// forward is attnForward's contract (p holds every row's probabilities,
// zero above the diagonal), with FastExp32 in the softmax.
func (a *attnGEMM) forward(out, p, q, k, v []float32) {
	s := a.s
	qs, kvs, hd, t := s.qStride(), s.kvStride(), s.hd, s.t
	scale := 1 / tensor.Sqrt32(float32(hd))
	group := s.heads / s.kvHeads
	a.run(s.b*s.heads, func(job int, w *attnScratch, threads int) {
		seq, head := job/s.heads, job%s.heads
		g := head / group
		gatherHead(w.kg, nil, k, seq*t, t, kvs, g*hd, hd)
		gatherHead(nil, w.vgT, v, seq*t, t, kvs, g*hd, hd)
		gatherHead(w.qh, nil, q, seq*t, t, qs, head*hd, hd)
		ph := p[job*t*t : (job+1)*t*t]
		gemm.MatMulThreads(ph, w.qh, w.kg, t, hd, t, threads)
		for i := range t {
			row := ph[i*t : (i+1)*t]
			softmaxScaled(row[:i+1], scale)
			clear(row[i+1:])
		}
		gemm.MatMulThreads(w.th, ph, w.vgT, t, t, hd, threads)
		scatterHead(out, w.th, seq*t, t, qs, head*hd, hd)
	})
}

// backward is attnBackward's contract.
func (a *attnGEMM) backward(dq, dk, dv, dout, p, q, k, v []float32) {
	s := a.s
	qs, kvs, hd, t := s.qStride(), s.kvStride(), s.hd, s.t
	scale := 1 / tensor.Sqrt32(float32(hd))
	group := s.heads / s.kvHeads
	a.run(s.b*s.kvHeads, func(job int, w *attnScratch, threads int) {
		seq, g := job/s.kvHeads, job%s.kvHeads
		gatherHead(w.vg, nil, v, seq*t, t, kvs, g*hd, hd)
		gatherHead(nil, w.kgT, k, seq*t, t, kvs, g*hd, hd)
		clear(w.dkg)
		clear(w.dvg)
		for head := g * group; head < (g+1)*group; head++ {
			ph := p[(seq*s.heads+head)*t*t : (seq*s.heads+head+1)*t*t]
			gatherHead(nil, w.qhT, q, seq*t, t, qs, head*hd, hd)
			gatherHead(w.doh, w.dohT, dout, seq*t, t, qs, head*hd, hd)
			// dV += Pᵀ·dO.
			transposeSquare(w.sc2, ph, t)
			gemm.MatMulThreads(w.th, w.sc2, w.dohT, t, t, hd, threads)
			tensor.Add(w.dvg, w.th)
			// dP = dO·Vᵀ, then dS = P⊙(dP − rowsum(P⊙dP))/√hd.
			gemm.MatMulThreads(w.sc, w.doh, w.vg, t, hd, t, threads)
			for i := range t {
				pi, di := ph[i*t:(i+1)*t], w.sc[i*t:(i+1)*t]
				var sum float32
				for j, pj := range pi[:i+1] {
					sum += float32(pj * di[j])
				}
				for j, pj := range pi[:i+1] {
					di[j] = float32(pj*(di[j]-sum)) * scale
				}
				clear(di[i+1:])
			}
			// dQ = dS·K, dK += dSᵀ·Q.
			gemm.MatMulThreads(w.th, w.sc, w.kgT, t, t, hd, threads)
			scatterHead(dq, w.th, seq*t, t, qs, head*hd, hd)
			transposeSquare(w.sc2, w.sc, t)
			gemm.MatMulThreads(w.th, w.sc2, w.qhT, t, t, hd, threads)
			tensor.Add(w.dkg, w.th)
		}
		scatterHead(dk, w.dkg, seq*t, t, kvs, g*hd, hd)
		scatterHead(dv, w.dvg, seq*t, t, kvs, g*hd, hd)
	})
}
