// Package sample picks the next token from a vector of logits: greedily, or
// by seeded temperature and nucleus (top-p) sampling with llama2.c's rules.
package sample

import (
	"math/rand/v2"
	"sort"

	"lrmc/kernels/tensor"
)

// Argmax returns the index of the largest logit, the lowest index on ties
// (NaNs are never chosen over a number that comes first).
func Argmax(logits []float32) int32 {
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	return int32(best)
}

// Sampler draws tokens from logits. It is deterministic for a given seed and
// sequence of calls, and not safe for concurrent use.
type Sampler struct {
	temperature float32
	topP        float32
	rng         *rand.Rand
	probs       []float32
	order       []int32
}

// New returns a sampler. Temperature 0 means greedy (Argmax, and the random
// stream is never consumed). Otherwise the logits are divided by temperature
// and softmaxed; topP in (0, 1) restricts the draw to the smallest set of
// most probable tokens whose mass exceeds topP, any other topP samples the
// full distribution. The random stream is math/rand/v2's PCG seeded with
// (seed, seed): one float32 coin per draw.
func New(temperature, topP float32, seed uint64) *Sampler {
	return &Sampler{temperature: temperature, topP: topP, rng: rand.New(rand.NewPCG(seed, seed))}
}

// Sample picks a token. logits is not modified.
func (s *Sampler) Sample(logits []float32) int32 {
	if s.temperature == 0 {
		return Argmax(logits)
	}
	s.probs = append(s.probs[:0], logits...)
	for i := range s.probs {
		s.probs[i] /= s.temperature
	}
	tensor.Softmax(s.probs)
	coin := s.rng.Float32()
	if s.topP <= 0 || s.topP >= 1 {
		return sampleMult(s.probs, coin)
	}
	return s.sampleTopP(coin)
}

// sampleMult returns the first index whose cumulative probability exceeds
// coin (the last index if rounding leaves the total below coin).
func sampleMult(probs []float32, coin float32) int32 {
	var cdf float32
	for i, p := range probs {
		cdf += p
		if coin < cdf {
			return int32(i)
		}
	}
	return int32(len(probs) - 1)
}

// sampleTopP is run.c's sample_topp: tokens below (1-topP)/(n-1) cannot be in
// the nucleus and are dropped before sorting; the rest are sorted by falling
// probability (ties by rising index, so the order is deterministic where
// run.c's qsort is not), cut after the mass first exceeds topP, and sampled
// with the coin scaled to the kept mass.
func (s *Sampler) sampleTopP(coin float32) int32 {
	n := len(s.probs)
	cutoff := (1 - s.topP) / float32(n-1)
	s.order = s.order[:0]
	for i, p := range s.probs {
		if p >= cutoff {
			s.order = append(s.order, int32(i))
		}
	}
	if len(s.order) == 0 {
		return Argmax(s.probs)
	}
	sort.SliceStable(s.order, func(a, b int) bool { return s.probs[s.order[a]] > s.probs[s.order[b]] })
	var cum float32
	last := len(s.order) - 1
	for i, id := range s.order {
		cum += s.probs[id]
		if cum > s.topP {
			last = i
			break
		}
	}
	r := coin * cum
	var cdf float32
	for _, id := range s.order[:last+1] {
		cdf += s.probs[id]
		if r < cdf {
			return id
		}
	}
	return s.order[last]
}
