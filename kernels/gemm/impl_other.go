//go:build !amd64

package gemm

// registerAsm has nothing to add: the assembly kernels are amd64-only.
func registerAsm() {}
