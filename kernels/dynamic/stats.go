package dynamic

import "lrmc/kernels/llama"

// PartStats counts what one part (attention or MLP) of one layer did over
// the tokens of a pass. MACs are multiply-adds: of the projections a token
// runs and of its attention (scores and weighted sum over the keys it
// sees); norms, rotary embeddings and softmax are not counted.
type PartStats struct {
	Tokens   int64 // tokens the part was decided for
	Executed int64 // tokens that ran it
	// MACs the part ran; DenseMACs the dense model runs for the same
	// tokens (every token runs every part and sees every earlier key).
	MACs, DenseMACs int64
	// RouterMACs are the routers' multiply-adds deciding the part.
	RouterMACs int64
}

// SkipRatio is the realised fraction of tokens that skipped the part (0
// when it decided none).
func (p PartStats) SkipRatio() float64 {
	if p.Tokens == 0 {
		return 0
	}
	return 1 - float64(p.Executed)/float64(p.Tokens)
}

func (p *PartStats) add(o PartStats) {
	p.Tokens += o.Tokens
	p.Executed += o.Executed
	p.MACs += o.MACs
	p.DenseMACs += o.DenseMACs
	p.RouterMACs += o.RouterMACs
}

// Stats are a pass's counts per layer and part, and the classifier's.
type Stats struct {
	Layers   [][2]PartStats // [layer][Attn or MLP]
	HeadMACs int64          // the classifier's multiply-adds (the same dense)
}

func newStats(layers int) Stats { return Stats{Layers: make([][2]PartStats, layers)} }

// Add adds o's counts to s (which grows to o's layers).
func (s *Stats) Add(o *Stats) {
	if len(s.Layers) < len(o.Layers) {
		s.Layers = append(s.Layers, make([][2]PartStats, len(o.Layers)-len(s.Layers))...)
	}
	for i := range o.Layers {
		s.Layers[i][Attn].add(o.Layers[i][Attn])
		s.Layers[i][MLP].add(o.Layers[i][MLP])
	}
	s.HeadMACs += o.HeadMACs
}

// Blocks sums the blocks' counts: MACs run (routers included), and the
// dense model's.
func (s *Stats) Blocks() (macs, dense int64) {
	for _, l := range s.Layers {
		for _, p := range l {
			macs += p.MACs + p.RouterMACs
			dense += p.DenseMACs
		}
	}
	return macs, dense
}

// SkippedCompute is the realised fraction of the blocks' dense
// multiply-adds that were not run, the routers' own cost subtracted.
func (s *Stats) SkippedCompute() float64 {
	macs, dense := s.Blocks()
	if dense == 0 {
		return 0
	}
	return 1 - float64(macs)/float64(dense)
}

// Total is every multiply-add of the pass (blocks, routers, classifier)
// and the dense model's count for the same tokens.
func (s *Stats) Total() (macs, dense int64) {
	macs, dense = s.Blocks()
	return macs + s.HeadMACs, dense + s.HeadMACs
}

// macs are a layer's per-token multiply-add counts.
type macs struct {
	q, kv, o, mlp int64 // projections of one token
	att           int64 // attention per key seen
}

func layerMACs(c llama.Config) macs {
	d, qd, kvd, hid := int64(c.Dim), int64(c.QDim()), int64(c.KVDim()), int64(c.HiddenDim)
	return macs{q: d * qd, kv: 2 * d * kvd, o: qd * d, mlp: 3 * d * hid, att: 2 * qd}
}

// dense is the attention's dense count for a token seeing keys keys.
func (m macs) dense(keys int) int64 { return m.q + m.kv + m.o + m.att*int64(keys) }
