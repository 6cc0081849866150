package dynamic

import (
	"fmt"
	"slices"

	"lrmc/kernels/llama"
	"lrmc/kernels/tensor"
)

// Decoder runs a routed model one token at a time over per-layer
// key/value caches. A part a token skips runs no matrix product for it.
// Under KVAbsent a layer's cache holds entries only for the tokens that ran
// its attention, so caches differ in length from layer to layer; under
// KVFromInput every token's key and value are projected and cached, and
// only the skipping token's query, attention and output projection are
// not run. It is not safe for concurrent use.
type Decoder struct {
	dm     *Model
	maxSeq int
	// Per layer: the cached rotated keys and values [entries, KVDim] and
	// the position of each entry (increasing).
	k, v [][]float32
	pos  [][]int32
	st   Stats
	// Exec holds the last Step's decisions, [layer][Attn or MLP].
	Exec [][2]bool
	// Scratch, reused every step.
	xb, q, att, o, scores []float32
}

// NewDecoder makes a decoder for positions 0…maxSeq−1.
func (dm *Model) NewDecoder(maxSeq int) *Decoder {
	c, layers := dm.LM.Config, len(dm.LM.Layers)
	maxQ := 0
	for i := range layers {
		maxQ = max(maxQ, c.Layer(i).QDim())
	}
	return &Decoder{
		dm: dm, maxSeq: maxSeq,
		k: make([][]float32, layers), v: make([][]float32, layers), pos: make([][]int32, layers),
		st: newStats(layers), Exec: make([][2]bool, layers),
		xb: make([]float32, c.Dim), q: make([]float32, maxQ), att: make([]float32, maxQ), o: make([]float32, c.Dim),
	}
}

// Stats are the counts of every token fed so far (Prefill and Step).
func (d *Decoder) Stats() *Stats { return &d.st }

// Entries is the number of key/value entries layer i's cache holds.
func (d *Decoder) Entries(i int) int { return len(d.pos[i]) }

// forget drops the cache entries at positions from on.
func (d *Decoder) forget(from int) {
	for i := range d.pos {
		kvd := d.dm.LM.Config.Layer(i).KVDim()
		n := len(d.pos[i])
		for n > 0 && int(d.pos[i][n-1]) >= from {
			n--
		}
		d.pos[i], d.k[i], d.v[i] = d.pos[i][:n], d.k[i][:n*kvd], d.v[i][:n*kvd]
	}
}

// Step feeds token at position pos and returns the logits for the next
// token, [Vocab]. Positions 0…pos−1 must have been fed before; feeding pos
// again forgets it and what came after. The decisions are Decide's (or
// the Mask's, as sequence 0) on this token's hidden state, as Forward
// takes them. With every token running every part the logits are
// llama.Decoder.Step's bit for bit.
func (d *Decoder) Step(token int32, pos int) []float32 {
	dm, lm := d.dm, d.dm.LM
	if pos < 0 || pos >= d.maxSeq {
		panic(fmt.Sprintf("dynamic: Decoder.Step: position %d outside [0, %d)", pos, d.maxSeq))
	}
	d.forget(pos)
	x := lm.Embed([]int32{token}, nil)
	var exec [1]bool
	var scale [1]float32
	var scratch [2]float32
	decide := func(i int, p Part, st *PartStats) bool {
		st.Tokens++
		if dm.Mask != nil {
			exec[0], scale[0] = dm.Mask(i, p, 0, pos), 1
		} else {
			dm.Routers.Decide(i, p, x, 1, exec[:], scale[:], scratch[:])
			st.RouterMACs += routerMACs(dm.Routers, i, p)
		}
		if exec[0] {
			st.Executed++
		}
		return exec[0]
	}
	rotateAt := func(int) int { return pos }
	for i := range lm.Layers {
		c := lm.Config.Layer(i)
		d.growScores(pos + 1)
		mc, st := layerMACs(c), &d.st.Layers[i]
		qd, kvd, hd, dim := c.QDim(), c.KVDim(), c.HeadDim(), c.Dim

		// Attention.
		ea := decide(i, Attn, &st[Attn])
		st[Attn].DenseMACs += mc.dense(pos + 1)
		fromInput := dm.Routers.Method.KVRule() == KVFromInput
		if ea || fromInput {
			lm.AttnNorm(i, d.xb, x)
			n := len(d.pos[i])
			d.k[i] = slices.Grow(d.k[i], kvd)[:(n+1)*kvd]
			d.v[i] = slices.Grow(d.v[i], kvd)[:(n+1)*kvd]
			d.pos[i] = append(d.pos[i], int32(pos))
			krow, vrow := d.k[i][n*kvd:], d.v[i][n*kvd:]
			lm.KeyValue(i, krow, vrow, d.xb, 1)
			lm.Rotate(i, krow, 1, rotateAt)
			st[Attn].MACs += mc.kv
		}
		if ea {
			q, att := d.q[:qd], d.att[:qd]
			lm.Query(i, q, d.xb, 1)
			lm.Rotate(i, q, 1, rotateAt)
			keys, kvMul := len(d.pos[i]), c.Heads/c.KVHeads
			for h := range c.Heads {
				off := (h / kvMul) * hd
				llama.Attend(att[h*hd:(h+1)*hd], q[h*hd:(h+1)*hd], d.k[i][off:], d.v[i][off:], keys, kvd, d.scores)
			}
			lm.AttnOutput(i, d.o, att, 1)
			addScaled(x, d.o, scale[0])
			st[Attn].MACs += mc.q + mc.o + mc.att*int64(keys)
		}

		// MLP: D-LLM's block decision holds for it.
		em := ea
		if !dm.Routers.Method.Whole() {
			em = decide(i, MLP, &st[MLP])
		} else {
			st[MLP].Tokens++
			if em {
				st[MLP].Executed++
			}
		}
		st[MLP].DenseMACs += mc.mlp
		if em {
			lm.MLPDelta(i, d.o[:dim], x, 1)
			addScaled(x, d.o, scale[0])
			st[MLP].MACs += mc.mlp
		}
		d.Exec[i] = [2]bool{ea, em}
	}
	d.st.HeadMACs += d.dm.headMACs()
	return lm.Logits(x, 1, 1)
}

func (d *Decoder) growScores(n int) {
	if len(d.scores) < n {
		d.scores = make([]float32, max(n, 2*len(d.scores)))
	}
}

// addScaled adds s·delta into x, rounding the product first (scale 1 adds
// delta exactly, as the dense residual does).
func addScaled(x, delta []float32, s float32) {
	if s == 1 {
		tensor.Add(x, delta)
		return
	}
	for e, v := range delta[:len(x)] {
		x[e] += float32(s * v)
	}
}

// Prefill feeds tokens at positions 0…len(tokens)−1 in one batched,
// compute-skipping pass (Forward's), keeps the keys and values the KV rule
// leaves in each layer, and returns the logits for the next token; Step
// continues from len(tokens). The logits match Step's to float32 rounding,
// not bit for bit (the attention sums in another order).
func (d *Decoder) Prefill(tokens []int32) []float32 {
	n := len(tokens)
	if n == 0 || n > d.maxSeq {
		panic(fmt.Sprintf("dynamic: Decoder.Prefill: %d tokens outside [1, %d]", n, d.maxSeq))
	}
	d.forget(0)
	h, res := d.dm.run(tokens, 1, n, func(i int, k, v []float32, rows []int) {
		d.k[i] = append(d.k[i], k...)
		d.v[i] = append(d.v[i], v...)
		for _, r := range rows {
			d.pos[i] = append(d.pos[i], int32(r))
		}
	})
	dim := d.dm.LM.Config.Dim
	res.Stats.HeadMACs = d.dm.headMACs()
	d.st.Add(&res.Stats)
	for i := range d.Exec {
		d.Exec[i] = [2]bool{res.Exec[i][Attn][n-1], res.Exec[i][MLP][n-1]}
	}
	return d.dm.LM.Logits(h[(n-1)*dim:], 1, 1)
}
