//go:build !amd64

package attention

const useAVX2 = false

func expShiftAVX2(x *float32, n int, shift float32) {
	panic("attention: no AVX2 kernel on this architecture")
}
