// Package calib draws calibration windows from a token stream: fixed-length,
// non-overlapping chunks chosen by a seeded generator whose output is fixed by
// this package's code, not by the Go release, so a recipe's seed names the
// same calibration tokens forever.
package calib

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
)

// pcgStream is PCG's second seed word (its stream selector), fixed so that
// the recipe's seed alone picks the windows. It spells "lrmc-cal" in ASCII.
const pcgStream uint64 = 0x6c726d632d63616c

// Windows cuts stream into floor(len(stream)/seqLen) non-overlapping chunks
// (chunk c is stream[c·seqLen : (c+1)·seqLen]; a short tail is dropped),
// chooses samples of them without replacement, and returns them concatenated
// in the chosen order: a new [samples × seqLen] slice.
//
// The choice is a partial Fisher–Yates shuffle of the chunk indices 0..n-1:
// for i = 0 … samples-1, swap position i with position i + u(n-i), where u(m)
// is uniform on [0, m), and take positions 0 … samples-1. u(m) draws
// x = PCG.Uint64() from math/rand/v2's NewPCG(seed, 0x6c726d632d63616c) (the
// PCG-DXSM generator, whose sequence Go pins in its tests) and maps it to
// the high word of the 128-bit product x·m, rejecting x whose low word is below
// 2⁶⁴ mod m (Lemire's method), so it is exactly uniform. Both steps are
// written out here rather than left to rand.Rand, whose methods are free to
// change their algorithms.
func Windows(stream []int32, samples, seqLen int, seed uint64) ([]int32, error) {
	if samples < 1 {
		return nil, fmt.Errorf("calibration needs at least 1 window, got %d", samples)
	}
	if seqLen < 1 {
		return nil, fmt.Errorf("calibration windows need at least 1 token, got a length of %d", seqLen)
	}
	n := len(stream) / seqLen
	if n < samples {
		return nil, fmt.Errorf("calibration needs %d %s of %d tokens but the data gives only %d (%d tokens)",
			samples, plural(samples, "window"), seqLen, n, len(stream))
	}
	out := make([]int32, 0, samples*seqLen)
	for _, c := range choose(n, samples, seed) {
		out = append(out, stream[c*seqLen:(c+1)*seqLen]...)
	}
	return out, nil
}

// choose returns k distinct indices from [0, n) in a seeded random order, as
// Windows documents.
func choose(n, k int, seed uint64) []int {
	return shuffle(n, k, rand.NewPCG(seed, pcgStream))
}

// Permutation returns a random permutation of [0, n) drawn the way Windows
// draws its windows, from PCG stream number stream under seed: the same on
// every machine and Go release. Training uses it to order its batches.
func Permutation(n int, seed, stream uint64) []int {
	return shuffle(n, n, rand.NewPCG(seed, stream))
}

// shuffle runs the first k steps of a forward Fisher–Yates shuffle of
// [0, n) and returns the k indices it fixed.
func shuffle(n, k int, src *rand.PCG) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	for i := range k {
		j := i + int(uniform(src, uint64(n-i)))
		idx[i], idx[j] = idx[j], idx[i]
	}
	return idx[:k]
}

// uniform returns a uniformly distributed integer in [0, m), m > 0, by
// Lemire's multiply-and-reject method.
func uniform(src *rand.PCG, m uint64) uint64 {
	hi, lo := bits.Mul64(src.Uint64(), m)
	if lo < m {
		threshold := -m % m // 2⁶⁴ mod m
		for lo < threshold {
			hi, lo = bits.Mul64(src.Uint64(), m)
		}
	}
	return hi
}

// plural returns word, with an "s" unless n is 1.
func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
