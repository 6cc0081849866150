package llama

import (
	"fmt"

	"lrmc/kernels/attention"
)

// Fork is a context and branches that each continue it: a branch's tokens
// sit at positions len(Context)… and see the whole context and their own
// branch's earlier tokens, never another branch's. Scoring the choices of a
// multiple-choice item is a fork: one context, one branch per choice.
type Fork struct {
	Context  []int32
	Branches [][]int32
}

// rows is the fork's context and branch tokens.
func (f Fork) rows() int {
	n := len(f.Context)
	for _, b := range f.Branches {
		n += len(b)
	}
	return n
}

// ForwardForks runs forks through the model in one batched pass: every
// projection and MLP is one GEMM over all rows of all forks, each context
// attends causally to itself (as Block does, flash style), and each branch
// token attends to its context and its branch's earlier tokens, both through
// kernels/attention's tiles (Spans). So a context is computed once
// however many branches follow it, and short branches of many forks fill
// the GEMMs that a token-by-token decode would run one row at a time.
//
// It returns the hidden state leaving the last block (before the final
// norm; see Logits) of the rows whose logits predict something: for each
// fork in turn, its last context position, then every token of every branch
// in order; [rows, Dim]. Results depend only on the forks and on how many
// rows the pass holds in all (the GEMM reduces a row of a batch of up to 16
// rows in another order than in a larger one), never on the thread count.
//
// It panics on an empty context or a fork longer than the model's context;
// branches may be empty.
func (m *Model) ForwardForks(forks []Fork) []float32 {
	c := m.Config
	var tokens []int32
	var pos []int32
	starts := make([]int, len(forks)) // first row of each fork
	for fi, f := range forks {
		n := len(f.Context)
		if n == 0 {
			panic(fmt.Sprintf("llama: ForwardForks: fork %d has an empty context", fi))
		}
		starts[fi] = len(tokens)
		tokens = append(tokens, f.Context...)
		for p := range n {
			pos = append(pos, int32(p))
		}
		for bi, b := range f.Branches {
			if n+len(b) > c.SeqLen {
				panic(fmt.Sprintf("llama: ForwardForks: fork %d branch %d reaches position %d, past the model's %d", fi, bi, n+len(b), c.SeqLen))
			}
			tokens = append(tokens, b...)
			for j := range b {
				pos = append(pos, int32(n+j))
			}
		}
	}
	h := m.Embed(tokens, nil)
	for i := range m.Layers {
		h = m.blockRows(i, h, nil, len(tokens), func(r int) int { return int(pos[r]) }, nil, nil, func(att, q, k, v []float32) {
			m.forkAttention(i, att, q, k, v, forks, starts)
		})
	}
	d := c.Dim
	var out []float32
	for fi, f := range forks {
		r := starts[fi] + len(f.Context)
		out = append(out, h[(r-1)*d:r*d]...)
		out = append(out, h[r*d:(starts[fi]+f.rows())*d]...)
	}
	return out
}

// forkAttention is ForwardForks' attention over its packed rows: each
// context a span of its own, each branch a span after its context.
func (m *Model) forkAttention(layer int, att, q, k, v []float32, forks []Fork, starts []int) {
	c := m.Config.Layer(layer)
	var spans []attention.Span
	for fi, f := range forks {
		r0, n := starts[fi], len(f.Context)
		spans = append(spans, attention.Span{Row: r0, Len: n})
		b0 := r0 + n
		for _, b := range f.Branches {
			if len(b) > 0 {
				spans = append(spans, attention.Span{Row: b0, Len: len(b), Prefix: r0, PrefixLen: n})
			}
			b0 += len(b)
		}
	}
	attention.Spans(att, q, k, v, spans, c.Heads, c.KVHeads, c.HeadDim())
}
