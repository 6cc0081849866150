package gemm

import (
	"fmt"
	"sort"
	"sync/atomic"
)

// kernelFunc computes one mr×nr tile of C from a packed A micro-panel
// (kc steps of mr floats) and a packed B micro-panel (kc steps of nr floats):
// c[i·ldc+j] = Σ_p a[p·mr+i]·b[p·nr+j], added to c when accum is true. The sum
// starts from zero, not from c, so a tile written through a scratch buffer
// rounds exactly like one written in place.
type kernelFunc func(kc int, a, b, c []float32, ldc int, accum bool)

// dotsFunc sets out[r] = Σ_{p<len(x)} x[p]·w[r·ld+p] for r < len(out): the
// dot products of x with len(out) rows of w that lie ld elements apart.
type dotsFunc[T elem] func(out, x []float32, w []T, ld int)

// impl is one implementation: a micro-kernel with its tile shape and cache
// blocking, and the dot kernel of the matrix-vector path (m ≤ gemvMaxRows).
type impl struct {
	name   string
	mr, nr int // micro-tile rows (of x) and columns (of wᵀ)
	// kc is the depth of one packed block. It is fixed per implementation and
	// independent of the thread split, which is what makes results
	// thread-count independent. One B micro-panel (kc·nr·4 bytes: 16 KiB for
	// AVX2, 32 KiB for AVX-512) is reused against every A micro-panel of the
	// block, from L1 or, where L1 is too small, from L2, which feeds it with
	// bandwidth to spare (a 12×32 tile does 24 FMAs per 128 bytes of B).
	kc int
	// mc rows of x are packed at a time (mc·kc·4 bytes, sized for the 1 MiB
	// L2); nc rows of w per packed B block (streamed, one micro-panel at a
	// time, from L3).
	mc, nc int
	kernel kernelFunc
	dots   dotsFunc[float32]
	// transpose8 and transpose4 speed up packing; nil packs in scalar Go.
	transpose8, transpose4 transposeFunc
	// bf16 and f16 read a w of 16-bit floats (MatMulBF16, MatMulF16).
	bf16, f16 wkernels[uint16]
	// dpbf16 is MatMulBF16Rounded's kernel; nil runs its Go emulation.
	dpbf16 dpbf16Kernel
	// dpbf16Tile is MatMulBF16Rounded's kernel for m ≥ 3 (bf16gemm.go);
	// nil runs every m through dpbf16, with the same bits.
	dpbf16Tile dpbf16TileKernel
}

var (
	impls  = map[string]*impl{}
	active atomic.Pointer[impl] // the implementation MatMul uses
)

// register makes im selectable; the last registered usable one becomes the
// default, so registration goes from slowest to fastest.
func register(im *impl) {
	impls[im.name] = im
	active.Store(im)
}

func current() *impl { return active.Load() }

// Impl returns the name of the implementation MatMul uses now.
func Impl() string { return current().name }

// Impls lists the implementations usable on this machine, sorted by name.
// "go" is always present; "avx2" and "avx512" need amd64 with the matching CPU
// and operating-system support.
func Impls() []string {
	names := make([]string, 0, len(impls))
	for name := range impls {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// SetImpl forces the implementation named name ("go", "avx2" or "avx512"),
// for tests and benchmarks, and returns a function that restores the previous
// one. It is process-wide: do not call it while other goroutines multiply.
// It returns an error if name is unknown or unsupported here.
func SetImpl(name string) (restore func(), err error) {
	im, ok := impls[name]
	if !ok {
		return nil, fmt.Errorf("gemm: implementation %q not available (have %v)", name, Impls())
	}
	prev := active.Swap(im)
	return func() { active.Store(prev) }, nil
}

func init() {
	register(goImpl)
	registerAsm()
}
