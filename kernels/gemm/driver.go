package gemm

import (
	"sync"
	"unsafe"
)

// gemvMaxRows is the largest m sent down the matrix-vector path. Below it,
// packing all of w costs more than the product saves: each group of four w
// rows is read from memory once and then, from L1, dotted with every row of
// x. Measured on 1024×3072 with AVX-512 (GFLOP per CPU-second, packed path
// vs this one): m = 2: 4.7 vs 20; m = 8: 20 vs 48; m = 16: 31 vs 50;
// m = 24–32 about even; m = 48: 65 vs 54.
const gemvMaxRows = 16

// elem is a storage type of w: float32, or the bit patterns of a 16-bit
// float format (bf16, f16) that the kernels widen to float32 as they read.
type elem interface{ float32 | uint16 }

// wkernels are an implementation's ways of reading w stored as T.
type wkernels[T elem] struct {
	// dots is the matrix-vector kernel reading rows of w as stored. It must
	// return the float32 dots' bits on the widened rows. If nil, gemv widens
	// each group of four rows into scratch and runs the float32 one.
	dots dotsFunc[T]
	// widen sets dst[i] = float32(src[i]) exactly; nil for float32.
	widen func(dst []float32, src []T)
}

// matMul is the float32 product (method form for benchmarks of modified
// copies of an implementation).
func (im *impl) matMul(out, x, w []float32, m, k, n, threads int) {
	matMul(im, wkernels[float32]{dots: im.dots}, out, x, w, m, k, n, threads)
}

// matMul splits the product between threads and runs each part. Small m
// streams w once through dots; otherwise parts are contiguous ranges of
// mr-tall panels of x when x has more rows than w (or n is too narrow to
// split), else of nr-wide panels of w, so no two parts write the same output
// and each packs its own panels.
// Both paths compute in float32 whatever T is: a 16-bit w is widened in the
// dot kernel's registers or while packing, so the result is bit-identical to
// the float32 product on the widened w.
func matMul[T elem](im *impl, wk wkernels[T], out, x []float32, w []T, m, k, n, threads int) {
	threads = max(1, min(threads, 2*m*n*k/minFlopsPerThread))
	if m <= gemvMaxRows {
		gemv(im, wk, out, x, w, m, k, n, threads)
		return
	}
	packed(im, out, x, m, k, n, threads, func(ws *workspace, j, rows, pc, kc int) {
		packB(im, wk, ws, w[j*k:], k, rows, pc, kc)
	})
}

// packWFunc packs columns [pc, pc+kc) of rows [j, j+rows) of the product's
// w, seen as [n×k] whatever its storage, into ws.b as packPanels lays out
// nr-wide micro-panels.
type packWFunc func(ws *workspace, j, rows, pc, kc int)

// packed runs the blocked product out[m×n] = x·wᵀ split between threads,
// w read only through packW.
func packed(im *impl, out, x []float32, m, k, n, threads int, packW packWFunc) {
	nPanels := (n + im.nr - 1) / im.nr
	mPanels := (m + im.mr - 1) / im.mr
	switch {
	case threads > 1 && m > n && mPanels >= threads:
		// Each part packs the whole of the operand it does not split: all
		// of x when w's rows are split, all of w when x's are. Packing is a
		// transpose, slow next to the kernel, so split the side whose
		// partner is smaller: a prefill's narrow key and value projections
		// (n 192 against 512 rows) by rows of x.
		parallel(threads, func(t int) {
			lo, hi := split(mPanels, threads, t)
			i0, i1 := lo*im.mr, min(hi*im.mr, m)
			gemm(im, out[i0*n:], n, x[i0*k:i1*k], i1-i0, k, 0, n, packW)
		})
	case nPanels >= threads:
		parallel(threads, func(t int) {
			lo, hi := split(nPanels, threads, t)
			j0, j1 := lo*im.nr, min(hi*im.nr, n)
			gemm(im, out[j0:], n, x, m, k, j0, j1-j0, packW)
		})
	default:
		threads = min(threads, mPanels)
		parallel(threads, func(t int) {
			lo, hi := split(mPanels, threads, t)
			i0, i1 := lo*im.mr, min(hi*im.mr, m)
			gemm(im, out[i0*n:], n, x[i0*k:i1*k], i1-i0, k, 0, n, packW)
		})
	}
}

// gemv computes out[m×n] = x·wᵀ for a few rows of x by dot products. Every
// output element is the dot kernel's result for one row of x and one row of
// w, which depends on nothing else, so it is the same whatever m (up to
// gemvMaxRows) and thread count. Each thread takes a contiguous range of
// rows of w. For one row of x (decode) the range is a single kernel call;
// for more, w is walked four rows at a time, and each group, read from
// memory once, is dotted with every row of x from L1.
func gemv[T elem](im *impl, wk wkernels[T], out, x []float32, w []T, m, k, n, threads int) {
	const group = 4
	groups := (n + group - 1) / group
	threads = min(threads, groups)
	parallel(threads, func(t int) {
		lo, hi := split(groups, threads, t)
		j0, j1 := lo*group, min(hi*group, n)
		if wk.dots == nil {
			// No kernel reads T: widen each group into scratch.
			wide := make([]float32, group*k)
			for j := j0; j < j1; j += group {
				cols := min(group, j1-j)
				for i := range cols {
					wk.widen(wide[i*k:(i+1)*k], w[(j+i)*k:(j+i+1)*k])
				}
				for i := range m {
					im.dots(out[i*n+j:i*n+j+cols], x[i*k:i*k+k], wide, k)
				}
			}
			return
		}
		if m == 1 {
			wk.dots(out[j0:j1], x[:k], w[j0*k:], k)
			return
		}
		for j := j0; j < j1; j += group {
			cols := min(group, j1-j)
			for i := range m {
				wk.dots(out[i*n+j:i*n+j+cols], x[i*k:i*k+k], w[j*k:], k)
			}
		}
	})
}

// workspace holds one thread's packed panels and the scratch tile used for
// ragged edges. Pooled: the packed buffers are large and reused on every call.
type workspace struct {
	a, b, tile []float32
	wide       []float32 // one B micro-panel's rows widened from 16 bits
}

var workspaces sync.Pool

// grow returns buf resized to n floats, reallocating (64-byte aligned, so
// vector loads of a micro-panel never straddle cache lines) if too small.
func grow(buf []float32, n int) []float32 {
	if cap(buf) >= n {
		return buf[:n]
	}
	const align = 64 / 4
	raw := make([]float32, n+align)
	off := int(uintptr(unsafe.Pointer(&raw[0]))%64) / 4
	if off != 0 {
		off = align - off
	}
	return raw[off : off+n : off+n]
}

// gemm computes c = x·wᵀ for x [m×k] and w [n×k] (both row-major, stride k),
// writing rows of c with stride ldc. It is the classic five-loop blocking:
// blocks of nc rows of w and kc columns of k are packed into B micro-panels,
// blocks of mc rows of x into A micro-panels, and the micro-kernel sweeps the
// tiles. The kc blocks are visited in ascending order and each tile's block
// sum is added to c in that order, which fixes every element's rounding.
//
// It computes the n columns from j0 on: w's rows j0…j0+n−1, packed by packW.
func gemm(im *impl, c []float32, ldc int, x []float32, m, k, j0, n int, packW packWFunc) {
	ws, _ := workspaces.Get().(*workspace)
	if ws == nil {
		ws = new(workspace)
	}
	defer workspaces.Put(ws)
	mr, nr := im.mr, im.nr
	ws.tile = grow(ws.tile, mr*nr)

	for jc := 0; jc < n; jc += im.nc {
		nc := min(im.nc, n-jc)
		ncPad := (nc + nr - 1) / nr * nr
		for pc := 0; pc < k; pc += im.kc {
			kc := min(im.kc, k-pc)
			accum := pc > 0
			ws.b = grow(ws.b, ncPad*kc)
			packW(ws, j0+jc, nc, pc, kc)
			for ic := 0; ic < m; ic += im.mc {
				mc := min(im.mc, m-ic)
				mcPad := (mc + mr - 1) / mr * mr
				ws.a = grow(ws.a, mcPad*kc)
				packPanels(ws.a, x[ic*k:], k, mc, pc, kc, mr, im.transpose8, im.transpose4)
				for jr := 0; jr < nc; jr += nr {
					bp := ws.b[jr*kc : (jr+nr)*kc]
					cols := min(nr, nc-jr)
					for ir := 0; ir < mc; ir += mr {
						ap := ws.a[ir*kc : (ir+mr)*kc]
						rows := min(mr, mc-ir)
						ct := c[(ic+ir)*ldc+jc+jr:]
						if rows == mr && cols == nr {
							im.kernel(kc, ap, bp, ct, ldc, accum)
							continue
						}
						// Ragged edge: the kernel writes a full tile to scratch
						// and only the valid part is merged, with the same
						// single rounded add the kernel uses in place.
						im.kernel(kc, ap, bp, ws.tile, nr, false)
						for i := range rows {
							dst := ct[i*ldc : i*ldc+cols]
							src := ws.tile[i*nr : i*nr+cols]
							if accum {
								for j := range dst {
									dst[j] += src[j]
								}
							} else {
								copy(dst, src)
							}
						}
					}
				}
			}
		}
	}
}

// packB packs columns [pc, pc+kc) of the first rows rows of w (row stride
// k) into ws.b as packPanels does, widening a 16-bit w on the way: the rows
// of one micro-panel are widened into ws.wide (nr·kc floats, L1-sized) and
// packed from there, so the panels are exactly those of the widened matrix.
// This is the only place the packed path reads w.
func packB[T elem](im *impl, wk wkernels[T], ws *workspace, w []T, k, rows, pc, kc int) {
	nr := im.nr
	if w32, ok := any(w).([]float32); ok {
		packPanels(ws.b, w32, k, rows, pc, kc, nr, im.transpose8, im.transpose4)
		return
	}
	ws.wide = grow(ws.wide, nr*kc)
	for j := 0; j < rows; j += nr {
		cols := min(nr, rows-j)
		for i := range cols {
			src := w[(j+i)*k+pc:]
			wk.widen(ws.wide[i*kc:(i+1)*kc], src[:kc])
		}
		packPanels(ws.b[j*kc:(j+nr)*kc], ws.wide, kc, cols, 0, kc, nr, im.transpose8, im.transpose4)
	}
}

// transposeFunc writes column p < n of the g rows at src (row stride ld) to
// dst[p·ldd : p·ldd+g], for a fixed group size g; n is a positive multiple
// of g.
type transposeFunc func(n int, src []float32, ld int, dst []float32, ldd int)

// packPanels packs columns [p0, p0+kc) of the first rows rows of src (row
// stride ld) into k-major micro-panels of width rows each: panel q holds, for
// p = 0..kc-1, the width values src[q·width+i][p0+p], i = 0..width-1, in
// dst[q·width·kc + p·width + i]. Rows past rows are zero, so edge tiles need
// no special kernel. Both x (width mr) and w (width nr) go through here, a
// 16-bit w by way of packB.
//
// Packing is a transpose, slow in scalar code (about 1 GB/s), so groups of 8
// and then 4 rows go through the transpose kernels when the implementation
// has them; ragged rows and the last kc mod 8 (or 4) columns are moved one by
// one.
func packPanels(dst, src []float32, ld, rows, p0, kc, width int, t8, t4 transposeFunc) {
	for q := 0; q*width < rows; q++ {
		panel := dst[q*width*kc : (q+1)*width*kc]
		for i := 0; i < width; {
			r := q*width + i
			g, t := 1, transposeFunc(nil)
			switch {
			case r >= rows:
				for p := range kc {
					panel[p*width+i] = 0
				}
				i++
				continue
			case t8 != nil && kc >= 8 && i+8 <= width && r+8 <= rows:
				g, t = 8, t8
			case t4 != nil && kc >= 4 && i+4 <= width && r+4 <= rows:
				g, t = 4, t4
			}
			done := 0
			if t != nil {
				done = kc - kc%g
				t(done, src[r*ld+p0:], ld, panel[i:], width)
			}
			for ii := range g {
				row := src[(r+ii)*ld+p0 : (r+ii)*ld+p0+kc]
				for p := done; p < kc; p++ {
					panel[p*width+i+ii] = row[p]
				}
			}
			i += g
		}
	}
}
