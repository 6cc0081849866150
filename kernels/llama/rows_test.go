package llama

import (
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"

	"lrmc/kernels/attention"
)

// withGrain runs f with parallelGrain set to g and GOMAXPROCS to procs.
func withGrain(g, procs int, f func()) {
	oldG, oldP := parallelGrain, runtime.GOMAXPROCS(procs)
	defer func() { parallelGrain = oldG; runtime.GOMAXPROCS(oldP) }()
	parallelGrain = g
	f()
}

// TestRowsSplitBitIdentical: with the grain lowered to one float, so that
// every norm, rotation, SwiGLU, residual add and bias add is split into
// uneven ranges over 3 goroutines, every variant's prefill (biases, q/k
// norms, both rotary styles, llama3 scaling, per-block widths) and its
// batched forks give the same bits as the same calls on one thread, where
// nothing is split.
func TestRowsSplitBitIdentical(t *testing.T) {
	for name, c := range variants {
		m := randModel(c, 31)
		const b, T = 2, 13
		tokens := randTokens(b*T, c.Vocab, 32)
		forks := []Fork{{Context: tokens[:5], Branches: [][]int32{tokens[5:8], tokens[8:9]}}}
		var one, split, fOne, fSplit []float32
		withGrain(1, 1, func() { one, fOne = m.Forward(tokens, b, T), m.ForwardForks(forks) })
		withGrain(1, 3, func() { split, fSplit = m.Forward(tokens, b, T), m.ForwardForks(forks) })
		if len(one) != b*T*c.Vocab || len(fOne) != (1+3+1)*c.Dim {
			t.Fatalf("%s: %d logits, %d fork floats", name, len(one), len(fOne))
		}
		for i := range one {
			if math.Float32bits(one[i]) != math.Float32bits(split[i]) {
				t.Fatalf("%s: logit %d: %g on one thread, %g split", name, i, one[i], split[i])
			}
		}
		for i := range fOne {
			if math.Float32bits(fOne[i]) != math.Float32bits(fSplit[i]) {
				t.Fatalf("%s: fork float %d: %g on one thread, %g split", name, i, fOne[i], fSplit[i])
			}
		}
	}
}

// TestRowHelpersMatchSerial checks each helper against a plain serial loop
// written here (not through kernels/tensor): RMSNorm per row, SiLU(g)·u and
// the sum, on sizes whose split leaves a short last range.
func TestRowHelpersMatchSerial(t *testing.T) {
	const rows, d = 7, 5
	x := make([]float32, rows*d)
	w := make([]float32, d)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)*0.7)) * 3
	}
	for i := range w {
		w[i] = 0.5 + float32(i)/4
	}
	wantNorm := make([]float32, len(x))
	for r := range rows {
		var ss float32
		for _, v := range x[r*d : (r+1)*d] {
			ss += v * v
		}
		inv := 1 / float32(math.Sqrt(float64(ss/d+1e-5)))
		for j, v := range x[r*d : (r+1)*d] {
			wantNorm[r*d+j] = w[j] * (inv * v)
		}
	}
	gate, up := append([]float32(nil), x...), make([]float32, len(x))
	for i := range up {
		up[i] = float32(i%9) - 4
	}
	wantGLU, wantAdd := make([]float32, len(x)), make([]float32, len(x))
	for i, g := range gate {
		wantGLU[i] = g * float32(1/(1+math.Exp(-float64(g)))) * up[i]
		wantAdd[i] = x[i] + up[i]
	}
	withGrain(3, 3, func() {
		got := make([]float32, len(x))
		normRows(got, x, w, 1e-5)
		for i := range got {
			if got[i] != wantNorm[i] {
				t.Fatalf("normRows[%d] = %g, want %g", i, got[i], wantNorm[i])
			}
		}
		swiGLU(gate, up)
		for i := range gate {
			if math.Abs(float64(gate[i]-wantGLU[i])) > 1e-6*(1+math.Abs(float64(wantGLU[i]))) {
				t.Fatalf("swiGLU[%d] = %g, want %g", i, gate[i], wantGLU[i])
			}
		}
		sum := append([]float32(nil), x...)
		add(sum, up)
		for i := range sum {
			if sum[i] != wantAdd[i] {
				t.Fatalf("add[%d] = %g, want %g", i, sum[i], wantAdd[i])
			}
		}
	})
}

// TestScratchReuseBitIdentical: a block's reused working buffers hold
// whatever the previous call left (here NaN, in buffers larger than the
// call needs), and nothing of it may show: Forward, ForwardForks and
// MLPDelta give the bits of a run whose buffers were fresh.
func TestScratchReuseBitIdentical(t *testing.T) {
	nan := float32(math.NaN())
	poison := func() {
		var held []*scratch
		for range 4 {
			s := getScratch()
			for j := range s.bufs {
				s.get(j, 1<<14)
				for i := range s.bufs[j] {
					s.bufs[j][i] = nan
				}
			}
			held = append(held, s)
		}
		for _, s := range held {
			scratchPool.Put(s)
		}
	}
	for name, c := range variants {
		m := randModel(c, 41)
		const b, T = 2, 11
		tokens := randTokens(b*T, c.Vocab, 42)
		forks := []Fork{{Context: tokens[:4], Branches: [][]int32{tokens[4:7], tokens[7:8]}}}
		h := m.Embed(tokens, nil)
		run := func() (logits, fork, mlp []float32) {
			mlp = make([]float32, len(h))
			m.MLPDelta(0, mlp, h, b*T)
			return m.Forward(tokens, b, T), m.ForwardForks(forks), mlp
		}
		scratchPool.reset() // fresh buffers
		l0, f0, d0 := run()
		poison()
		l1, f1, d1 := run()
		for _, p := range []struct {
			what      string
			want, got []float32
		}{{"logits", l0, l1}, {"forks", f0, f1}, {"MLPDelta", d0, d1}} {
			for i := range p.want {
				if math.Float32bits(p.want[i]) != math.Float32bits(p.got[i]) {
					t.Fatalf("%s: %s[%d] = %g after reuse, %g fresh", name, p.what, i, p.got[i], p.want[i])
				}
			}
		}
	}
}

// TestRopeCacheServesOnlyItsKey: the cached rotary table is reused for a
// range of positions it covers and the same frequencies, and never for
// another theta, head width or scaling: rotations interleaved across such
// configurations equal those made from a fresh table.
func TestRopeCacheServesOnlyItsKey(t *testing.T) {
	base := variants["qwen2"]
	other := base
	other.RopeTheta = 500000
	wide := base
	wide.HeadSize = 2 * base.HeadDim()
	scaled := base
	scaled.RopeScaling = RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8}
	for step, r := range []struct {
		c      Config
		lo, hi int
	}{{base, 0, 12}, {base, 3, 9}, {other, 3, 9}, {base, 0, 12}, {wide, 0, 12}, {scaled, 0, 12}, {base, 5, 20}, {base, 0, 4}} {
		got := cachedRopeTable(r.c, r.lo, r.hi)
		want := newRopeTable(r.c, r.lo, r.hi)
		for p := r.lo; p < r.hi; p++ {
			for _, style := range []RopeStyle{RopeInterleaved, RopeHalf} {
				v := make([]float32, 2*want.half)
				for i := range v {
					v[i] = float32(i+1) / 3
				}
				u := append([]float32(nil), v...)
				got.rotate(v, p, style)
				want.rotate(u, p, style)
				for i := range v {
					if math.Float32bits(v[i]) != math.Float32bits(u[i]) {
						t.Fatalf("step %d (theta %g, head %d, %q), position %d: element %d = %g from the cache, %g fresh",
							step, r.c.RopeTheta, r.c.HeadDim(), r.c.RopeScaling.Type, p, i, v[i], u[i])
					}
				}
			}
		}
	}
}

// TestBlockIntoIsBlock: BlockInto writes Block's bits into the caller's
// buffer (whatever it held before) and rejects a buffer of another length.
func TestBlockIntoIsBlock(t *testing.T) {
	for name, c := range variants {
		m := randModel(c, 51)
		const b, T = 2, 9
		h := m.Embed(randTokens(b*T, c.Vocab, 52), nil)
		want := m.Block(1, h, b, T)
		dst := make([]float32, len(h))
		for i := range dst {
			dst[i] = float32(math.NaN())
		}
		if got := m.BlockInto(nil, dst, 1, h, b, T); &got[0] != &dst[0] {
			t.Fatalf("%s: BlockInto returned another slice than dst", name)
		}
		for i := range want {
			if math.Float32bits(dst[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s: BlockInto[%d] = %g, Block %g", name, i, dst[i], want[i])
			}
		}
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "dst holds 5 floats") {
			t.Fatalf("BlockInto with a short dst: panic %v", r)
		}
	}()
	m := randModel(variants["qwen2"], 1)
	m.BlockInto(nil, make([]float32, 5), 0, make([]float32, variants["qwen2"].Dim), 1, 1)
}

// TestPutScratchDropsLargeBuffers: buffers of 8 MiB and more are not kept
// for the next call (they would raise the collector's heap goal for the
// rest of a capture); smaller ones are.
func TestPutScratchDropsLargeBuffers(t *testing.T) {
	s := new(scratch)
	s.get(0, maxPooledFloats)
	s.get(1, maxPooledFloats-1)
	putScratch(s)
	if s.bufs[0] != nil || cap(s.bufs[1]) != maxPooledFloats-1 {
		t.Fatalf("after putScratch: buffer 0 cap %d (want dropped), buffer 1 cap %d (want kept)", cap(s.bufs[0]), cap(s.bufs[1]))
	}
}

// TestBlockIntoWorkspace: one Workspace carried across calls of different
// layers and sizes (as a capture op carries it over its batches) gives
// Block's bits, whatever the previous call left in its buffers (here NaN
// poured into every one of them).
func TestBlockIntoWorkspace(t *testing.T) {
	for name, c := range variants {
		m := randModel(c, 61)
		ws := &Workspace{}
		for _, call := range []struct{ layer, b, t int }{{0, 3, 9}, {1, 1, 4}, {1, 2, 11}, {0, 1, 1}, {1, 3, 9}} {
			for _, s := range []*scratch{&ws.block, &ws.mlp} {
				for _, buf := range s.bufs {
					for i := range buf[:cap(buf)] {
						buf[:cap(buf)][i] = float32(math.NaN())
					}
				}
			}
			h := m.Embed(randTokens(call.b*call.t, c.Vocab, uint64(call.b*100+call.t)), nil)
			want := m.Block(call.layer, h, call.b, call.t)
			got := m.BlockInto(ws, make([]float32, len(h)), call.layer, h, call.b, call.t)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s %+v: BlockInto with a workspace [%d] = %g, Block %g", name, call, i, got[i], want[i])
				}
			}
		}
		if cap(ws.block.bufs[0]) == 0 || cap(ws.mlp.bufs[1]) == 0 {
			t.Fatalf("%s: the workspace kept no buffers", name)
		}
	}
}

// TestBlockIsItsParts: Block, whose row-wise steps are fused (q/k norms
// with the rotary embedding, residual add with the MLP norm), gives the
// bits of the exported parts run one after another, each its own parallel
// loop, for every variant (biases, q/k norms, both rotary styles), on one
// thread and split into uneven ranges over 3.
func TestBlockIsItsParts(t *testing.T) {
	for name, c := range variants {
		m := randModel(c, 71)
		const b, T = 2, 11
		h := m.Embed(randTokens(b*T, c.Vocab, 72), nil)
		for _, procs := range []int{1, 3} {
			withGrain(1, procs, func() {
				for i := range m.Layers {
					lc := m.Config.Layer(i)
					n, d := b*T, lc.Dim
					xb := make([]float32, n*d)
					m.AttnNorm(i, xb, h)
					q, k, v := make([]float32, n*lc.QDim()), make([]float32, n*lc.KVDim()), make([]float32, n*lc.KVDim())
					m.Query(i, q, xb, n)
					m.KeyValue(i, k, v, xb, n)
					pos := func(r int) int { return r % T }
					m.Rotate(i, q, n, pos)
					m.Rotate(i, k, n, pos)
					att := make([]float32, n*lc.QDim())
					attention.Causal(att, q, k, v, b, T, lc.Heads, lc.KVHeads, lc.HeadDim())
					want := make([]float32, n*d)
					m.AttnOutput(i, want, att, n)
					for j := range want {
						want[j] += h[j]
					}
					delta := make([]float32, n*d)
					m.MLPDelta(i, delta, want, n)
					for j := range want {
						want[j] += delta[j]
					}
					got := m.Block(i, h, b, T)
					for j := range want {
						if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
							t.Fatalf("%s layer %d, %d threads: Block[%d] = %g, its parts %g", name, i, procs, j, got[j], want[j])
						}
					}
				}
			})
		}
	}
}
