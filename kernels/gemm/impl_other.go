//go:build !amd64 || purego

package gemm

// registerAsm has nothing to add: the assembly kernels are amd64-only, and
// the purego build tag leaves them out (to test the portable path on amd64).
func registerAsm() {}
