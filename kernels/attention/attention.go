// Package attention computes causal multi-head attention over whole
// sequences at once, for prefill and calibration capture, flash-attention
// style: tiles of queries against tiles of keys, S = Q·Kᵀ and O += P·V as
// matrix products through kernels/gemm, and an online softmax (a running
// maximum and sum per query row, rescaling O when the maximum grows), so no
// t×t score matrix is ever formed.
//
// The order of operations differs from the per-query loop of run.c that
// llama's Decoder keeps (dot, softmax, weighted sum), so results agree with
// it within rounding, not bit for bit. They are bit-identical for every
// thread count: tile sizes are fixed, every job writes only its own output
// rows and columns, and each product runs on one thread.
//
// Benchmarks against that per-query loop:
//
//	go test -run=NONE -bench=Causal -count=5 ./kernels/attention
package attention

import (
	"fmt"
	"math"
	"runtime"
	"sync/atomic"

	"lrmc/kernels/gemm"
	"lrmc/kernels/parallel"
	"lrmc/kernels/tensor"
)

// Tile sizes, fixed so that every output row's arithmetic is the same
// however the work is split (and so bit-identical for any thread count).
// kTile is a multiple of qTile, so every key tile a query tile visits starts
// at or before its first query and no row is ever wholly masked. Chosen
// with BenchmarkCausal on the shared 2-core AVX-512 host (Qwen3 shape, one
// thread): 64×128 about 28 GFLOP/s, 64×256 the same within noise but more
// masked work wasted on short sequences, 64×64 26, 32×128 22, 128×128 20.
const (
	// qTile query positions per job and head. The heads sharing a kv head
	// are stacked, so a product has (heads/kvHeads)·qTile rows.
	qTile = 64
	// kTile key positions per step of the online softmax.
	kTile = 128
)

// packFloats bounds the packed copy of k (and that of v): 16 MiB each,
// eight sequences of a Qwen3-0.6B layer at t = 512. A variable for tests.
var packFloats = 4 << 20

// Causal computes causal grouped-query attention for b sequences of t
// positions: q is [b·t, heads·hd] row-major, k and v are [b·t, kvHeads·hd],
// and query head h reads kv head h/(heads/kvHeads). It writes out[r, head]
// = Σ_{p ≤ pos(r)} softmax_p(q·k_p/√hd)·v_p, the sum running over r's own
// sequence, into out [b·t, heads·hd]. out must not overlap q, k or v.
//
// Besides O(tile²) scratch per worker it packs k and v (the kv heads made
// contiguous, values transposed per key tile), since gemm's x·wᵀ form needs
// both operands with the reduced dimension contiguous: a few sequences at a
// time, at most packFloats floats each (or one sequence), so the extra
// memory does not grow with b. Work is spread over GOMAXPROCS workers.
// Exponentials are tensor.FastExp32's (within 2 ulps of e^x), eight at a
// time with AVX2, with weights below e^−87 of the row's largest raised to
// that.
//
// It panics if heads is not a positive multiple of kvHeads, a dimension is
// negative, or a slice is shorter than its shape needs.
func Causal(out, q, k, v []float32, b, t, heads, kvHeads, hd int) {
	checkShapes(out, q, k, v, b, t, heads, kvHeads, hd)
	if b == 0 || t == 0 || hd == 0 {
		return
	}
	qd, kvd := heads*hd, kvHeads*hd
	chunk := min(b, max(1, packFloats/(t*kvd)))
	pb := getPacked(chunk * t * kvd)
	defer putPacked(pb)
	kp, vt := pb.kp, pb.vt
	workers := make([]*scratch, runtime.GOMAXPROCS(0))
	for s0 := 0; s0 < b; s0 += chunk {
		s := shape{b: min(chunk, b-s0), t: t, heads: heads, kvHeads: kvHeads, hd: hd, group: heads / kvHeads,
			scale: 1 / tensor.Sqrt32(float32(hd))}
		r0 := s0 * t
		s.pack(kp, vt, k[r0*kvd:], v[r0*kvd:])
		s.run(workers, out[r0*qd:], q[r0*qd:], kp, vt)
	}
}

// packed is Causal's packed k and v, kept between calls: a prefill's or a
// capture's block allocated and zeroed them (up to 2 × 16 MiB) on one
// thread, the others waiting, every call. pack writes every float that run
// reads, so what a previous call left never shows.
type packed struct{ kp, vt []float32 }

// lastPacked holds the buffers of the last call to finish. One slot, not a
// sync.Pool: a pool's per-processor caches missed whenever the calling
// goroutine had moved to another thread since the last call (most calls at
// 2 threads), and each miss allocated again. Concurrent calls each take
// the slot or allocate; one of them puts its buffers back.
var lastPacked atomic.Pointer[packed]

// getPacked returns buffers of n floats each, with undefined contents.
func getPacked(n int) *packed {
	pb := lastPacked.Swap(nil)
	if pb == nil {
		pb = new(packed)
	}
	if cap(pb.kp) < n {
		pb.kp, pb.vt = make([]float32, n), make([]float32, n)
	}
	pb.kp, pb.vt = pb.kp[:n], pb.vt[:n]
	return pb
}

// putPacked keeps pb for the next call unless it is larger than
// packFloats bounds (one very long sequence): such a call is rare, and
// buffers held between calls raise the heap the collector lets grow.
func putPacked(pb *packed) {
	if cap(pb.kp) <= packFloats {
		lastPacked.Store(pb)
	}
}

func checkShapes(out, q, k, v []float32, b, t, heads, kvHeads, hd int) {
	if b < 0 || t < 0 || hd < 0 {
		panic(fmt.Sprintf("attention: negative dimension b=%d t=%d hd=%d", b, t, hd))
	}
	if heads < 1 || kvHeads < 1 || heads%kvHeads != 0 {
		panic(fmt.Sprintf("attention: %d query heads do not divide into %d kv heads", heads, kvHeads))
	}
	n := b * t
	for _, c := range []struct {
		name  string
		have  int
		width int
	}{{"out", len(out), heads * hd}, {"q", len(q), heads * hd}, {"k", len(k), kvHeads * hd}, {"v", len(v), kvHeads * hd}} {
		if c.have < n*c.width {
			panic(fmt.Sprintf("attention: %s holds %d floats, b=%d × t=%d rows of %d need %d",
				c.name, c.have, b, t, c.width, n*c.width))
		}
	}
}

// shape is one call's dimensions.
type shape struct {
	b, t, heads, kvHeads, hd int
	group                    int     // query heads per kv head
	scale                    float32 // 1/√hd, applied to q while packing
}

// pack copies k into kp [b, kvHeads, t, hd], so every key tile of a kv head
// is a contiguous [cols, hd] matrix, and v into vt [b, kvHeads, tiles] of
// [hd, cols] blocks, each key tile's values transposed (cols is kTile except
// in a ragged last tile). Both are read by every query tile of every head in
// the group, so they are packed once, in parallel over (sequence, kv head).
func (s shape) pack(kp, vt, k, v []float32) {
	hd, t, kvd := s.hd, s.t, s.kvHeads*s.hd
	tensor.Parallel(s.b*s.kvHeads, 1, func(lo, hi int) {
		for job := lo; job < hi; job++ {
			seq, g := job/s.kvHeads, job%s.kvHeads
			base := job * t * hd // same index as (seq·kvHeads + g)·t·hd
			for p := range t {
				src := (seq*t+p)*kvd + g*hd
				copy(kp[base+p*hd:base+(p+1)*hd], k[src:src+hd])
			}
			for k0 := 0; k0 < t; k0 += kTile {
				cols := min(kTile, t-k0)
				blk := vt[base+k0*hd : base+(k0+cols)*hd]
				transpose(blk, v[(seq*t+k0)*kvd+g*hd:], cols, hd, kvd)
			}
		}
	})
}

// transpose writes the [rows, cols] matrix at src (row stride ld)
// transposed into dst [cols, rows]. Four source rows go at a time, so each
// store writes four adjacent floats instead of one per cache line.
func transpose(dst, src []float32, rows, cols, ld int) {
	j := 0
	for ; j+4 <= rows; j += 4 {
		r0 := src[j*ld:][:cols]
		r1 := src[(j+1)*ld:][:cols]
		r2 := src[(j+2)*ld:][:cols]
		r3 := src[(j+3)*ld:][:cols]
		for d := range r0 {
			o := dst[d*rows+j:][:4]
			o[0], o[1], o[2], o[3] = r0[d], r1[d], r2[d], r3[d]
		}
	}
	for ; j < rows; j++ {
		for d, x := range src[j*ld:][:cols] {
			dst[d*rows+j] = x
		}
	}
}

// scratch is one worker's buffers, all O(tile²): rows = group·qTile.
type scratch struct {
	qs    []float32 // [rows, hd] stacked, scaled query rows
	sc    []float32 // [rows, kTile] scores, then probabilities
	pv    []float32 // [rows, hd] one tile's P·V
	o     []float32 // [rows, hd] running unnormalized output
	m, l  []float32 // [rows] running maximum and sum of exponentials
	alpha []float32 // [rows] this step's rescaling of o
}

func newScratch(s shape) *scratch {
	rows := s.group * qTile
	return &scratch{
		qs: make([]float32, rows*s.hd), sc: make([]float32, rows*kTile),
		pv: make([]float32, rows*s.hd), o: make([]float32, rows*s.hd),
		m: make([]float32, rows), l: make([]float32, rows), alpha: make([]float32, rows),
	}
}

// run computes every (query tile, sequence, kv head) job. Jobs cost in
// proportion to their query tile's index (causal masking skips later key
// tiles), so they are handed out largest first from a shared counter; which
// worker runs a job does not change its arithmetic. Worker i uses
// workers[i] as its scratch, allocating it on first use.
func (s shape) run(workers []*scratch, out, q, kp, vt []float32) {
	nq := (s.t + qTile - 1) / qTile
	per := s.b * s.kvHeads
	jobs := nq * per
	var next atomic.Int64
	work := func(i int) {
		if workers[i] == nil {
			workers[i] = newScratch(s)
		}
		w := workers[i]
		for {
			j := int(next.Add(1) - 1)
			if j >= jobs {
				return
			}
			qt := nq - 1 - j/per
			seq, g := (j%per)/s.kvHeads, (j%per)%s.kvHeads
			s.job(w, out, q, kp, vt, span{row: seq * s.t, t: s.t, keys: s.t, packed: seq * s.kvHeads * s.t * s.hd}, g, qt)
		}
	}
	parallel.Run(min(len(workers), jobs), work)
}

// span is one job's run of queries: t query rows from row (of q and out)
// at positions keys−t…keys−1 (or, when qpos is set, at the increasing
// positions qpos[0…t−1]), attending to keys packed (as pack lays one
// sequence out) from index packed of kp and vt. A sequence of Causal is a
// span with keys = t.
type span struct {
	row, t, keys, packed int
	qpos                 []int32
}

// at is the position of query p of the span.
func (sp span) at(p int) int {
	if sp.qpos != nil {
		return int(sp.qpos[p])
	}
	return sp.keys - sp.t + p
}

// job computes query tile qt of span sp for the query heads of kv head g,
// stacked: stacked row r is head g·group + r/qn at query q0 + r%qn.
func (s shape) job(w *scratch, out, q, kp, vt []float32, sp span, g, qt int) {
	hd, qd := s.hd, s.heads*s.hd
	q0 := qt * qTile
	qn := min(qTile, sp.t-q0)
	rows := s.group * qn
	for r := range rows {
		h, p := g*s.group+r/qn, q0+r%qn
		src := q[(sp.row+p)*qd+h*hd:][:hd]
		dst := w.qs[r*hd : (r+1)*hd]
		for i, x := range src {
			dst[i] = x * s.scale
		}
	}
	qs, o, pv := w.qs[:rows*hd], w.o[:rows*hd], w.pv[:rows*hd]
	m, l, alpha := w.m[:rows], w.l[:rows], w.alpha[:rows]
	clear(o)
	clear(l)
	for r := range m {
		m[r] = float32(math.Inf(-1))
	}
	base := sp.packed + g*sp.keys*hd
	// Key tiles starting after the tile's last query are fully masked and
	// skipped.
	for k0 := 0; k0 <= sp.at(q0+qn-1); k0 += kTile {
		cols := min(kTile, sp.keys-k0)
		sc := w.sc[:rows*cols]
		gemm.MatMulThreads(sc, qs, kp[base+k0*hd:], rows, hd, cols, 1)
		for r := range rows {
			// Keys past this row's position are masked: only a tile that
			// reaches beyond the tile's first query has any (with qpos, a
			// tile may lie wholly past a query: softmaxStep skips it).
			visible := min(cols, sp.at(q0+r%qn)-k0+1)
			alpha[r] = softmaxStep(sc[r*cols:(r+1)*cols], visible, &m[r], &l[r])
		}
		gemm.MatMulThreads(pv, sc, vt[base+k0*hd:], rows, cols, hd, 1)
		for r := range rows {
			rescaleAdd(o[r*hd:(r+1)*hd], pv[r*hd:(r+1)*hd], alpha[r])
		}
	}
	for r := range rows {
		h, p := g*s.group+r/qn, q0+r%qn
		dst := out[(sp.row+p)*qd+h*hd:][:hd]
		// One division per row, not per element (a divide costs several
		// multiplies); the product adds one rounding.
		inv := 1 / l[r]
		for i, x := range o[r*hd : (r+1)*hd] {
			dst[i] = x * inv
		}
	}
}

// softmaxStep turns one row of scores into unnormalized probabilities for
// the online softmax: the first visible entries become e^(s − m') with m' the
// new running maximum *m, the rest (masked keys) zero. It adds their sum to
// the running sum *l after rescaling it, and returns the factor e^(m − m')
// by which the row's output so far must be rescaled too. visible < 1 leaves
// the running state alone and returns 1.
func softmaxStep(row []float32, visible int, m, l *float32) float32 {
	if visible < 1 {
		clear(row)
		return 1
	}
	vis := row[:visible]
	mx := rowMax(vis, *m)
	sum := expShiftSum(vis, mx)
	clear(row[visible:])
	alpha := float32(1)
	if mx != *m {
		// e^(−∞) = 0 on the first visible tile, where o and l are zero.
		alpha = tensor.FastExp32(*m - mx)
	}
	*m = mx
	*l = *l*alpha + sum
	return alpha
}
