package gemm

// goImpl is the portable implementation: the same packed driver around a
// 4×4 scalar kernel (sixteen accumulators fit the sixteen SSE registers
// the Go compiler uses). It is the reference for the driver logic on every
// architecture and the fallback where no assembly kernel applies.
var goImpl = &impl{
	name: "go", mr: 4, nr: 4, kc: 256, mc: 128, nc: 1024,
	kernel: goKernel,
	dot4:   goDot4,
}

func goKernel(kc int, a, b, c []float32, ldc int, accum bool) {
	a, b = a[:kc*4], b[:kc*4]
	_ = c[3*ldc+3]
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	var c20, c21, c22, c23, c30, c31, c32, c33 float32
	for p := 0; p < len(a); p += 4 {
		ap, bp := a[p:p+4:p+4], b[p:p+4:p+4]
		a0, a1, a2, a3 := ap[0], ap[1], ap[2], ap[3]
		b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	acc := [4][4]float32{
		{c00, c01, c02, c03},
		{c10, c11, c12, c13},
		{c20, c21, c22, c23},
		{c30, c31, c32, c33},
	}
	for i := range acc {
		row := c[i*ldc : i*ldc+4]
		for j, v := range acc[i] {
			if accum {
				row[j] += v
			} else {
				row[j] = v
			}
		}
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
