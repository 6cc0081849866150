package dynamic

import "math"

// gumbel is the Gumbel(0, 1) noise of logit idx of the router deciding part
// of layer li, for row row on micro-step step: −log(−log u) with u uniform
// in (0, 1) drawn from a hash of (seed, step, layer, part, idx, row). Being
// a pure function of those, the forward pass, backward's recompute and a
// run resumed from a checkpoint (which restores the micro-step counter)
// draw the same noise, whatever GOMAXPROCS is.
func gumbel(seed, step uint64, li int, part Part, idx, row int) float64 {
	h := mix64(mix64(seed^0x67756d62656c) + step)
	h = mix64(h + uint64(li)<<8 + uint64(part)<<4 + uint64(idx))
	h = mix64(h + uint64(row))
	u := (float64(h>>11) + 0.5) / (1 << 53)
	return -math.Log(-math.Log(u))
}

// mix64 is SplitMix64's finalizer.
func mix64(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
