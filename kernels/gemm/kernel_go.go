package gemm

// goImpl is the portable implementation: the same packed driver around a
// 2×4 scalar kernel. It is the fallback where no assembly kernel applies and
// exercises the driver on every architecture. (A 4×4 tile was a third slower:
// sixteen accumulators plus operands overflow the fifteen float registers the
// Go compiler allocates, and it spills inside the loop.)
var goImpl = &impl{
	name: "go", mr: 2, nr: 4, kc: 256, mc: 128, nc: 1024,
	kernel: goKernel,
	dots:   goDots,
	// No fused 16-bit dot: gemv widens four rows and runs goDots.
	bf16: wkernels[uint16]{widen: widenBF16Go},
	f16:  wkernels[uint16]{widen: widenF16Go},
}

func goKernel(kc int, a, b, c []float32, ldc int, accum bool) {
	a, b = a[:kc*2], b[:kc*4]
	c0, c1 := c[:4:4], c[ldc:ldc+4:ldc+4]
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	for p := range kc {
		ap, bp := a[2*p:2*p+2:2*p+2], b[4*p:4*p+4:4*p+4]
		a0, a1 := ap[0], ap[1]
		b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
	}
	if accum {
		c00 += c0[0]
		c01 += c0[1]
		c02 += c0[2]
		c03 += c0[3]
		c10 += c1[0]
		c11 += c1[1]
		c12 += c1[2]
		c13 += c1[3]
	}
	c0[0], c0[1], c0[2], c0[3] = c00, c01, c02, c03
	c1[0], c1[1], c1[2], c1[3] = c10, c11, c12, c13
}

// goDots runs goDot4 on successive groups of four rows; a ragged last group
// repeats its last row and discards the surplus sums.
func goDots(out, x, w []float32, ld int) {
	k := len(x)
	row := func(r int) []float32 { return w[r*ld : r*ld+k] }
	var acc [4]float32
	for j := 0; j < len(out); j += 4 {
		last := min(j+4, len(out)) - 1
		goDot4(x, row(j), row(min(j+1, last)), row(min(j+2, last)), row(min(j+3, last)), &acc)
		copy(out[j:last+1], acc[:])
	}
}

// goDot4 keeps two interleaved partial sums per row (even and odd p) to
// shorten the dependency chains, then adds them.
func goDot4(x, w0, w1, w2, w3 []float32, out *[4]float32) {
	k := len(x)
	w0, w1, w2, w3 = w0[:k], w1[:k], w2[:k], w3[:k]
	var s0, s1, s2, s3, t0, t1, t2, t3 float32
	p := 0
	for ; p+2 <= k; p += 2 {
		x0, x1 := x[p], x[p+1]
		s0 += x0 * w0[p]
		t0 += x1 * w0[p+1]
		s1 += x0 * w1[p]
		t1 += x1 * w1[p+1]
		s2 += x0 * w2[p]
		t2 += x1 * w2[p+1]
		s3 += x0 * w3[p]
		t3 += x1 * w3[p+1]
	}
	if p < k {
		s0 += x[p] * w0[p]
		s1 += x[p] * w1[p]
		s2 += x[p] * w2[p]
		s3 += x[p] * w3[p]
	}
	*out = [4]float32{s0 + t0, s1 + t1, s2 + t2, s3 + t3}
}
