//go:build !amd64

package attention

const useAVX2 = false

// The assembly kernels exist only on amd64; useAVX2 keeps these unreached.

func expShiftAVX2(x *float32, n int, shift float32, sums *[8]float32) { panic(noAsm) }
func maxAVX2(x *float32, n int, init float32) float32                 { panic(noAsm) }
func rescaleAddAVX2(o, x *float32, n int, a float32)                  { panic(noAsm) }

const noAsm = "attention: no assembly kernels on this architecture"
