package dynamic

import (
	"fmt"

	"lrmc/kernels/attention"
	"lrmc/kernels/llama"
	"lrmc/kernels/tensor"
)

// Model is a llama model with routers: its forward passes skip, for every
// token, the parts its routers (or a fixed Mask) say it skips, and do none
// of their multiply-adds. See Forward and Decoder.
type Model struct {
	LM      *llama.Model
	Routers *Routers
	// Mask, when set, replaces the routers' decisions: the method (hence
	// the KV rule and whether whole blocks are decided) still comes from
	// Routers, every scale is 1, and no router runs. For tests and
	// ablations.
	Mask Mask
}

// Mask is a fixed decision: whether the token at position pos of sequence
// seq runs part p of layer i. For a method that decides whole blocks
// (D-LLM) only Attn is asked, and the answer holds for the MLP too.
type Mask func(layer int, p Part, seq, pos int) bool

// New pairs a model with routers, checking that they fit it.
func New(lm *llama.Model, rs *Routers) (*Model, error) {
	if err := rs.Validate(len(lm.Layers), lm.Config.Dim); err != nil {
		return nil, err
	}
	return &Model{LM: lm, Routers: rs}, nil
}

// Result is a pass's output.
type Result struct {
	// Logits are [rows, Vocab]: every position (Forward) or each
	// sequence's last (ForwardLast).
	Logits []float32
	Stats  Stats
	// Exec says, per layer and part and per token (row b·t of the pass),
	// whether the token ran the part.
	Exec [][2][]bool
}

// Forward runs b sequences of t tokens (tokens [b·t], sequence-major,
// positions 0…t−1 each) and returns the logits at every position.
//
// Per layer it decides every token's attention on the block input (Decide,
// or Mask), gathers the tokens that run it, computes their queries, keys,
// values, attention and output projection only, and adds the output,
// times the decision's scale (MoD's r), back into their rows; then the
// same for the MLP on the residual after attention. Which keys a kept
// token sees is the method's KV rule: KVAbsent, the keys of the tokens of
// its sequence that ran the layer's attention, itself included (causal,
// at their original rotary positions); KVFromInput, every earlier token's
// key and value, projected from its normed block input whether it ran the
// attention or not. With every token running every part the logits are
// llama.Model.Forward's bit for bit.
func (dm *Model) Forward(tokens []int32, b, t int) *Result {
	h, res := dm.run(tokens, b, t, nil)
	res.Logits = dm.LM.Logits(h, b, t)
	res.Stats.HeadMACs = int64(b*t) * dm.headMACs()
	return res
}

// ForwardLast is Forward returning only each sequence's last position's
// logits, [b, Vocab], as a runtime that goes on to generate computes them
// (the classifier runs on b rows, not b·t).
func (dm *Model) ForwardLast(tokens []int32, b, t int) *Result {
	if t < 1 {
		panic(fmt.Sprintf("dynamic: ForwardLast: sequences of %d tokens have no last position", t))
	}
	h, res := dm.run(tokens, b, t, nil)
	d := dm.LM.Config.Dim
	last := make([]float32, b*d)
	for s := range b {
		copy(last[s*d:(s+1)*d], h[((s+1)*t-1)*d:(s+1)*t*d])
	}
	res.Logits = dm.LM.Logits(last, b, 1)
	res.Stats.HeadMACs = int64(b) * dm.headMACs()
	return res
}

func (dm *Model) headMACs() int64 {
	return int64(dm.LM.Config.Dim) * int64(dm.LM.Config.Vocab)
}

// kvSink receives, per layer, the rotated keys and values [rows, KVDim] a
// pass leaves in that layer and the row (of the b·t) each belongs to, in
// increasing order (Decoder.Prefill fills its caches from them).
type kvSink func(layer int, k, v []float32, rows []int)

// run is the pass up to the hidden state leaving the last block.
func (dm *Model) run(tokens []int32, b, t int, kv kvSink) ([]float32, *Result) {
	lm := dm.LM
	n := b * t
	if b < 0 || t < 0 || len(tokens) != n {
		panic(fmt.Sprintf("dynamic: Forward: %d tokens, want b=%d × t=%d", len(tokens), b, t))
	}
	layers := len(lm.Layers)
	res := &Result{Stats: newStats(layers), Exec: make([][2][]bool, layers)}
	h := lm.Embed(tokens, nil)
	p := pass{dm: dm, b: b, t: t, n: n, scale: make([]float32, n), scratch: make([]float32, 2*n)}
	for i := range layers {
		st := &res.Stats.Layers[i]
		ea := make([]bool, n)
		p.decide(i, Attn, h, ea, &st[Attn])
		p.attention(i, h, ea, &st[Attn], kv)
		em := ea
		if dm.Routers.Method.Whole() {
			st[MLP].Tokens = int64(n)
		} else {
			em = make([]bool, n)
			p.decide(i, MLP, h, em, &st[MLP])
		}
		p.mlp(i, h, em, &st[MLP])
		res.Exec[i] = [2][]bool{ea, em}
	}
	return h, res
}

// pass is one Forward's shape and scratch.
type pass struct {
	dm             *Model
	b, t, n        int
	scale, scratch []float32
}

// decide fills exec and p.scale for part pt of layer i from the rows x.
func (p *pass) decide(i int, pt Part, x []float32, exec []bool, st *PartStats) {
	st.Tokens += int64(p.n)
	if p.dm.Mask != nil {
		for r := range p.n {
			exec[r], p.scale[r] = p.dm.Mask(i, pt, r/p.t, r%p.t), 1
		}
		return
	}
	p.dm.Routers.Decide(i, pt, x, p.n, exec, p.scale, p.scratch)
	st.RouterMACs += int64(p.n) * routerMACs(p.dm.Routers, i, pt)
}

// routerMACs is the multiply-adds per token of the routers deciding part
// pt of layer i (a scale router, MoD's, runs on every token too).
func routerMACs(rs *Routers, i int, pt Part) int64 {
	decide, scale := rs.Router(i, pt)
	var n int64
	for _, r := range []*Router{decide, scale} {
		if r != nil {
			n += int64(r.Dim * r.Out)
		}
	}
	return n
}

// executed lists the rows whose exec is set.
func executed(exec []bool) []int {
	var idx []int
	for r, e := range exec {
		if e {
			idx = append(idx, r)
		}
	}
	return idx
}

// gather copies rows idx of x (rows of width w) into a new slice, or
// returns x itself when idx is every row.
func gather(x []float32, idx []int, w int) []float32 {
	if len(idx)*w == len(x) {
		return x
	}
	g := make([]float32, len(idx)*w)
	for j, r := range idx {
		copy(g[j*w:(j+1)*w], x[r*w:(r+1)*w])
	}
	return g
}

// scatterAdd adds scale[r]·delta[j] into row r = idx[j] of h (rows of width
// w). The product is rounded before the sum (no fused multiply-add), so a
// scale of 1 adds delta exactly as the dense residual does.
func scatterAdd(h, delta []float32, idx []int, scale []float32, w int) {
	tensor.Parallel(len(idx), 64, func(lo, hi int) {
		for j := lo; j < hi; j++ {
			r := idx[j]
			row, d, s := h[r*w:(r+1)*w], delta[j*w:(j+1)*w], scale[r]
			if s == 1 {
				tensor.Add(row, d)
				continue
			}
			for e, x := range d {
				row[e] += float32(s * x)
			}
		}
	})
}

// attention runs layer i's attention for the rows exec marks and adds it
// into h.
func (p *pass) attention(i int, h []float32, exec []bool, st *PartStats, kv kvSink) {
	c := p.dm.LM.Config.Layer(i)
	mc := layerMACs(c)
	idx := executed(exec)
	st.Executed += int64(len(idx))
	for r := range p.n {
		st.DenseMACs += mc.dense(r%p.t + 1)
	}
	var att []float32
	if p.dm.Routers.Method.KVRule() == KVAbsent {
		att = p.keptOnly(i, h, idx, st, kv)
	} else {
		att = p.fromInput(i, h, idx, st, kv)
	}
	if len(idx) == 0 {
		return
	}
	o := make([]float32, len(idx)*c.Dim)
	p.dm.LM.AttnOutput(i, o, att, len(idx))
	scatterAdd(h, o, idx, p.scale, c.Dim)
}

// keptOnly is KVAbsent's attention: the kept rows idx of h are normed and
// projected, and each attends causally to its own sequence's kept rows, at
// their positions. It returns the attention outputs [len(idx), QDim].
func (p *pass) keptOnly(i int, h []float32, idx []int, st *PartStats, kv kvSink) []float32 {
	lm, t := p.dm.LM, p.t
	c := lm.Config.Layer(i)
	mc, ne := layerMACs(c), len(idx)
	if ne == 0 {
		return nil
	}
	pos := func(j int) int { return idx[j] % t }
	xb := make([]float32, ne*c.Dim)
	lm.AttnNorm(i, xb, gather(h, idx, c.Dim))
	q, att := make([]float32, ne*c.QDim()), make([]float32, ne*c.QDim())
	k, v := make([]float32, ne*c.KVDim()), make([]float32, ne*c.KVDim())
	lm.Query(i, q, xb, ne)
	lm.KeyValue(i, k, v, xb, ne)
	lm.Rotate(i, q, ne, pos)
	lm.Rotate(i, k, ne, pos)
	// One causal span per sequence over its kept rows, which idx lists in
	// order.
	var spans []attention.Span
	for j0 := 0; j0 < ne; {
		j1 := j0
		for j1 < ne && idx[j1]/t == idx[j0]/t {
			j1++
		}
		spans = append(spans, attention.Span{Row: j0, Len: j1 - j0})
		for keys := 1; keys <= j1-j0; keys++ {
			st.MACs += mc.q + mc.kv + mc.o + mc.att*int64(keys)
		}
		j0 = j1
	}
	if len(spans) == 1 {
		// One sequence: Causal, the same bits as its span, with a faster
		// packing of the values.
		attention.Causal(att, q, k, v, 1, ne, c.Heads, c.KVHeads, c.HeadDim())
	} else {
		attention.Spans(att, q, k, v, spans, c.Heads, c.KVHeads, c.HeadDim())
	}
	if kv != nil {
		kv(i, k, v, idx)
	}
	return att
}

// fromInput is KVFromInput's attention: every row's key and value are
// projected from its normed block input, and only the kept rows idx run
// their query and attend, causally, to every earlier row of their
// sequence. It returns the attention outputs [len(idx), QDim].
func (p *pass) fromInput(i int, h []float32, idx []int, st *PartStats, kv kvSink) []float32 {
	lm, t, n := p.dm.LM, p.t, p.n
	c := lm.Config.Layer(i)
	mc, ne := layerMACs(c), len(idx)
	xb := make([]float32, n*c.Dim)
	lm.AttnNorm(i, xb, h)
	k, v := make([]float32, n*c.KVDim()), make([]float32, n*c.KVDim())
	lm.KeyValue(i, k, v, xb, n)
	lm.Rotate(i, k, n, func(r int) int { return r % t })
	st.MACs += int64(n) * mc.kv
	if kv != nil {
		all := make([]int, n)
		for r := range all {
			all[r] = r
		}
		kv(i, k, v, all)
	}
	if ne == 0 {
		return nil
	}
	q, att := make([]float32, ne*c.QDim()), make([]float32, ne*c.QDim())
	lm.Query(i, q, gather(xb, idx, c.Dim), ne)
	lm.Rotate(i, q, ne, func(j int) int { return idx[j] % t })
	qoff := make([]int, p.b+1)
	qpos := make([]int32, ne)
	for j, r := range idx {
		qoff[r/t+1]++
		qpos[j] = int32(r % t)
		st.MACs += mc.q + mc.o + mc.att*int64(r%t+1)
	}
	for s := range p.b {
		qoff[s+1] += qoff[s]
	}
	attention.CausalAt(att, q, k, v, p.b, t, qoff, qpos, c.Heads, c.KVHeads, c.HeadDim())
	return att
}

// mlp runs layer i's MLP for the rows exec marks and adds it into h.
func (p *pass) mlp(i int, h []float32, exec []bool, st *PartStats) {
	lm := p.dm.LM
	c := lm.Config.Layer(i)
	mc := layerMACs(c)
	idx := executed(exec)
	ne := len(idx)
	st.Executed += int64(ne)
	st.DenseMACs += int64(p.n) * mc.mlp
	st.MACs += int64(ne) * mc.mlp
	if ne == 0 {
		return
	}
	delta := make([]float32, ne*c.Dim)
	lm.MLPDelta(i, delta, gather(h, idx, c.Dim), ne)
	scatterAdd(h, delta, idx, p.scale, c.Dim)
}
