package attention

import "golang.org/x/sys/cpu"

// useAVX2 selects expShiftAVX2; x/sys/cpu reports AVX2 only when the OS
// saves the YMM registers.
var useAVX2 = cpu.X86.HasAVX2

// expShiftAVX2 is expShiftGo on x[:n], eight lanes at a time; n must be a
// multiple of 8.
//
//go:noescape
func expShiftAVX2(x *float32, n int, shift float32)
