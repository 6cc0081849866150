package tensor

import "golang.org/x/sys/cpu"

// useSwiGLUAVX512 selects swiGLUAVX512. Go's math.Exp takes its FMA path
// exactly when the CPU has AVX and FMA; the kernel reproduces that path
// only, so it runs only where math.Exp runs it too (and AVX-512 is there).
var useSwiGLUAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX && cpu.X86.HasFMA

// swiGLUAVX512 is swiGLUGo on gate[:n], up[:n] for n a multiple of 8 (the
// remainder is left alone).
//
//go:noescape
func swiGLUAVX512(gate, up *float32, n int)

// swiGLUVector runs the vector kernel on the longest multiple-of-8 prefix
// and returns how many elements it did.
func swiGLUVector(gate, up []float32) int {
	n := len(gate) &^ 7
	if !useSwiGLUAVX512 || n == 0 {
		return 0
	}
	swiGLUAVX512(&gate[0], &up[0], n)
	return n
}
