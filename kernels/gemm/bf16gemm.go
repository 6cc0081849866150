package gemm

// The prefill path of MatMulBF16Rounded: a register-blocked tile of 3 rows of
// x by 4 rows of w, each of its 12 results reduced exactly as the dot path
// reduces one (dpbf16Kernel's order), so the two paths, and the Go
// emulation, give the same bits and a row's result stays independent of m.
// What the tile changes is reuse: the dot path loads x and four rows of w for
// every 8 VDPBF16PS and keeps 8 accumulator chains; the tile loads 7 vectors
// for every 12 and keeps 24 chains in flight.

// dpbf16TileKernel sets out[i·ldo+j], i < 3, j < 4, to the dpbf16Kernel dot
// product of x[i·ldx : i·ldx+n] with w[j·ldw : j·ldw+n], n a multiple of 64
// (the caller zero-pads both to it).
type dpbf16TileKernel func(n int, x []uint16, ldx int, w []uint16, ldw int, out []float32, ldo int)

const (
	tileRows = 3 // rows of x per tile
	tileCols = 4 // rows of w per tile
	// tileWBytes is how much of w (as padded bf16 rows) one block sweeps
	// against every tile row of x: it stays in the 1 MiB L2 while x's three
	// rows stream through L1.
	tileWBytes = 512 << 10
)

// matMulBF16Tiles computes out[m×n] from x16 [m×kp] and w [n×ld] (bf16, rows
// zero-padded to kp, a multiple of 64; m ≥ 3, n ≥ 4) with kern, splitting
// the groups of 4 rows of w over threads.
func matMulBF16Tiles(kern dpbf16TileKernel, out []float32, x16 []uint16, w []uint16, m, kp, ld, n, threads int) {
	groups := (n + tileCols - 1) / tileCols
	threads = min(threads, groups)
	block := max(1, tileWBytes/(2*kp*tileCols)) // groups per L2 block
	parallel(threads, func(t int) {
		lo, hi := split(groups, threads, t)
		var scratch [tileRows * tileCols]float32
		for b := lo; b < hi; b += block {
			be := min(hi, b+block)
			for i := 0; i < m; i += tileRows {
				// A ragged last tile row overlaps the previous one: those
				// rows are recomputed with the same bits by this goroutine.
				i0 := min(i, m-tileRows)
				for g := b; g < be; g++ {
					j := g * tileCols
					if j+tileCols <= n {
						kern(kp, x16[i0*kp:], kp, w[j*ld:], ld, out[i0*n+j:], n)
						continue
					}
					// The ragged last group: its overlap with the previous
					// group may belong to another goroutine, so the tile goes
					// through scratch and only its own columns are copied.
					j0 := n - tileCols
					kern(kp, x16[i0*kp:], kp, w[j0*ld:], ld, scratch[:], tileCols)
					for r := range tileRows {
						copy(out[(i0+r)*n+j:(i0+r)*n+n], scratch[r*tileCols+j-j0:(r+1)*tileCols])
					}
				}
			}
		}
	})
}

// padRowsBF16 returns the rows×k matrix src with each row zero-padded to kp
// values (src itself when kp == k).
func padRowsBF16(src []uint16, rows, k, kp int) []uint16 {
	if kp == k {
		return src[:rows*k]
	}
	dst := make([]uint16, rows*kp)
	for r := range rows {
		copy(dst[r*kp:r*kp+k], src[r*k:r*k+k])
	}
	return dst
}
