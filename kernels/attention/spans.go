package attention

import (
	"fmt"
	"runtime"
	"sync/atomic"

	"lrmc/kernels/parallel"
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
	sh.runSpans(out, q, kp, vt, packed)
}

// runSpans computes every (query tile, span, kv head) job of spans, whose
// keys and values are packed in kp and vt, handing jobs out from a shared
// counter, each span's last (costliest) tiles first.
func (sh shape) runSpans(out, q, kp, vt []float32, spans []span) {
	type job struct{ span, g, qt int }
	var jobs []job
	for i, sp := range spans {
		for qt := (sp.t+qTile-1)/qTile - 1; qt >= 0; qt-- {
			for g := range sh.kvHeads {
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
			sh.job(w, out, q, kp, vt, spans[jb.span], jb.g, jb.qt)
		}
	}
	parallel.Run(workers, func(int) { work() })
}

// CausalAt computes causal attention for chosen query positions of b
// sequences of t keys each: k and v are [b·t, kvHeads·hd] as for Causal,
// and q [nq, heads·hd] holds only the queries, sequence by sequence — rows
// qoff[s]…qoff[s+1]−1 belong to sequence s (qoff has b+1 entries, starting
// at 0), at strictly increasing positions qpos[j] < t. Query j sees its
// sequence's keys 0…qpos[j]; out [nq, heads·hd] receives one row per query.
// Tiles, online softmax and exponentials are Causal's: with every position
// queried it computes Causal's result bit for bit. It is the attention of
// tokens that run a block while the tokens that skip it still leave keys
// and values (kernels/dynamic's KVFromInput rule). Keys and values of all b
// sequences are packed at once.
func CausalAt(out, q, k, v []float32, b, t int, qoff []int, qpos []int32, heads, kvHeads, hd int) {
	if b < 0 || t < 0 || hd < 0 || heads < 1 || kvHeads < 1 || heads%kvHeads != 0 {
		panic(fmt.Sprintf("attention: CausalAt: b=%d t=%d hd=%d, or %d query heads do not divide into %d kv heads", b, t, hd, heads, kvHeads))
	}
	if kvn := b * t * kvHeads * hd; len(k) < kvn || len(v) < kvn {
		panic(fmt.Sprintf("attention: CausalAt: k holds %d and v %d floats, b=%d × t=%d rows of %d need %d", len(k), len(v), b, t, kvHeads*hd, kvn))
	}
	if len(qoff) != b+1 || qoff[0] != 0 || qoff[b] != len(qpos) {
		panic(fmt.Sprintf("attention: CausalAt: qoff has %d entries for %d sequences and %d queries", len(qoff), b, len(qpos)))
	}
	nq := len(qpos)
	if len(q) < nq*heads*hd || len(out) < nq*heads*hd {
		panic(fmt.Sprintf("attention: CausalAt: q holds %d and out %d floats, %d queries need %d", len(q), len(out), nq, nq*heads*hd))
	}
	for s := range b {
		for j := qoff[s]; j < qoff[s+1]; j++ {
			if qpos[j] < 0 || int(qpos[j]) >= t || (j > qoff[s] && qpos[j] <= qpos[j-1]) {
				panic(fmt.Sprintf("attention: CausalAt: query %d of sequence %d is at position %d (t=%d, positions must increase)", j, s, qpos[j], t))
			}
		}
	}
	if nq == 0 || hd == 0 {
		return
	}
	sh := shape{b: b, t: t, heads: heads, kvHeads: kvHeads, hd: hd, group: heads / kvHeads,
		scale: 1 / tensor.Sqrt32(float32(hd))}
	kvd := kvHeads * hd
	kp, vt := make([]float32, b*t*kvd), make([]float32, b*t*kvd)
	sh.pack(kp, vt, k, v)
	var spans []span
	for s := range b {
		if n := qoff[s+1] - qoff[s]; n > 0 {
			spans = append(spans, span{row: qoff[s], t: n, keys: t, packed: s * kvHeads * t * hd, qpos: qpos[qoff[s]:qoff[s+1]]})
		}
	}
	sh.runSpans(out, q, kp, vt, spans)
}
