package attention

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"lrmc/kernels/tensor"
)

// Span is a run of query rows that attends to a prefix of other rows and,
// causally, to itself: row Row+i sees key rows Prefix…Prefix+PrefixLen−1
// and Row…Row+i, as if they were one sequence at positions 0…PrefixLen+i.
// The choices of a multiple-choice item are spans that share their
// context's rows as a prefix.
type Span struct {
	Row, Len          int
	Prefix, PrefixLen int
}

// Spans computes grouped-query attention for every span's rows of q
// [rows, heads·hd] against k and v [rows, kvHeads·hd], into the same rows
// of out, with Causal's tiles, online softmax and exponentials: a span
// without a prefix is a sequence of Causal, bit for bit. Rows outside every
// span are left alone; spans must not share rows. Results do not depend on
// the thread count: each job (query tile, span, kv head) runs on one
// thread and writes only its own rows and heads.
//
// The keys and values a span sees are packed, prefix first, as Causal
// packs a sequence, so memory grows with Σ (PrefixLen+Len)·kvHeads·hd.
func Spans(out, q, k, v []float32, spans []Span, heads, kvHeads, hd int) {
	if heads < 1 || kvHeads < 1 || heads%kvHeads != 0 || hd < 0 {
		panic(fmt.Sprintf("attention: Spans: %d query heads do not divide into %d kv heads (hd %d)", heads, kvHeads, hd))
	}
	rows := 0
	packed := make([]span, len(spans))
	total := 0
	for i, s := range spans {
		if s.Row < 0 || s.Len < 1 || s.Prefix < 0 || s.PrefixLen < 0 {
			panic(fmt.Sprintf("attention: Spans: span %d is %+v", i, s))
		}
		rows = max(rows, s.Row+s.Len, s.Prefix+s.PrefixLen)
		packed[i] = span{row: s.Row, t: s.Len, keys: s.PrefixLen + s.Len, packed: total}
		total += packed[i].keys * kvHeads * hd
	}
	checkShapes(out, q, k, v, 1, rows, heads, kvHeads, hd)
	if len(spans) == 0 || hd == 0 {
		return
	}
	sh := shape{heads: heads, kvHeads: kvHeads, hd: hd, group: heads / kvHeads, scale: 1 / tensor.Sqrt32(float32(hd))}
	kp, vt := make([]float32, total), make([]float32, total)
	kvd := kvHeads * hd
	// Pack as Causal's pack lays out one sequence: keys [kvHeads, keys, hd],
	// values per key tile transposed to [hd, cols].
	tensor.Parallel(len(spans)*kvHeads, 1, func(lo, hi int) {
		for job := lo; job < hi; job++ {
			s, sp, g := spans[job/kvHeads], packed[job/kvHeads], job%kvHeads
			base := sp.packed + g*sp.keys*hd
			for p := range sp.keys {
				src := s.Prefix + p
				if p >= s.PrefixLen {
					src = s.Row + p - s.PrefixLen
				}
				copy(kp[base+p*hd:base+(p+1)*hd], k[src*kvd+g*hd:src*kvd+(g+1)*hd])
				k0 := p / kTile * kTile
				cols := min(kTile, sp.keys-k0)
				blk := vt[base+k0*hd:]
				for d, x := range v[src*kvd+g*hd : src*kvd+(g+1)*hd] {
					blk[d*cols+p-k0] = x
				}
			}
		}
	})
	type job struct{ span, g, qt int }
	var jobs []job
	for i, sp := range packed {
		for qt := (sp.t+qTile-1)/qTile - 1; qt >= 0; qt-- {
			for g := range kvHeads {
				jobs = append(jobs, job{i, g, qt})
			}
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(jobs))
	var next atomic.Int64
	work := func() {
		var w *scratch
		for {
			j := int(next.Add(1) - 1)
			if j >= len(jobs) {
				return
			}
			if w == nil {
				w = newScratch(sh)
			}
			jb := jobs[j]
			sh.job(w, out, q, kp, vt, packed[jb.span], jb.g, jb.qt)
		}
	}
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
}
