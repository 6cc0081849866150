package attention

import "golang.org/x/sys/cpu"

// useAVX2 selects expShiftAVX2; x/sys/cpu reports AVX2 only when the OS
// saves the YMM registers.
var useAVX2 = cpu.X86.HasAVX2

// The kernels below take n, a multiple of 8, elements.

// expShiftAVX2 is expShiftGo on x[:n], eight lanes at a time, leaving each
// lane's sum in index order in sums.
//
//go:noescape
func expShiftAVX2(x *float32, n int, shift float32, sums *[8]float32)

// maxAVX2 is the largest of init and x[:n].
//
//go:noescape
func maxAVX2(x *float32, n int, init float32) float32

// rescaleAddAVX2 sets o[i] = o[i]·a + x[i], product and sum each rounded.
//
//go:noescape
func rescaleAddAVX2(o, x *float32, n int, a float32)
