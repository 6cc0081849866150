package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"lrmc/kernels/gemm"
	"lrmc/kernels/tensor"
)

// Each op's backward is checked on its own against central differences of a
// float64 forward written here from the op's definition. The scalar
// differentiated is Σ c ⊙ output for a fixed random c (which is then the
// output gradient). Tolerances are relative to the largest gradient entry:
// float32 backward passes land within a few 1e-6 of it.

func randF32(r *rand.Rand, n int, sd float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(sd * r.NormFloat64())
	}
	return v
}

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// checkGrad compares got with central differences of f over every element
// of x (float64 copy of the float32 input), h = 1e-6.
func checkGrad(t *testing.T, what string, got []float32, x []float64, f func() float64, tol float64) float64 {
	t.Helper()
	var gmax, worst float64
	for _, g := range got {
		gmax = math.Max(gmax, math.Abs(float64(g)))
	}
	for i := range x {
		v := x[i]
		x[i] = v + 1e-6
		lp := f()
		x[i] = v - 1e-6
		lm := f()
		x[i] = v
		fd := (lp - lm) / 2e-6
		e := math.Abs(float64(got[i])-fd) / gmax
		worst = math.Max(worst, e)
		if e > tol {
			t.Errorf("%s[%d]: gradient %.8g, finite difference %.8g", what, i, got[i], fd)
			return worst
		}
	}
	return worst
}

func dot64(c, y []float64) float64 {
	var s float64
	for i := range c {
		s += c[i] * y[i]
	}
	return s
}

func TestMatMulDXDW(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, s := range [][3]int{{1, 1, 1}, {3, 5, 7}, {9, 4, 33}, {64, 48, 80}, {5, 300, 2}} {
		m, n, k := s[0], s[1], s[2]
		dy, w, x := randF32(r, m*n, 1), randF32(r, n*k, 1), randF32(r, m*k, 1)
		init := randF32(r, max(m*k, n*k), 1)
		dx := append([]float32(nil), init[:m*k]...)
		dw := append([]float32(nil), init[:n*k]...)
		MatMulDX(dx, dy, w, m, n, k)
		MatMulDW(dw, dy, x, m, n, k)
		for i := range m {
			for p := range k {
				// Documented order: onto the old value, j = 0, 1, … in turn.
				acc := init[i*k+p]
				for j := range n {
					acc += float32(dy[i*n+j] * w[j*k+p])
				}
				if dx[i*k+p] != acc {
					t.Fatalf("%v: dx[%d,%d] = %g, sequential sum %g", s, i, p, dx[i*k+p], acc)
				}
			}
		}
		for j := range n {
			for p := range k {
				acc := init[j*k+p]
				for i := range m {
					acc += float32(dy[i*n+j] * x[i*k+p])
				}
				if dw[j*k+p] != acc {
					t.Fatalf("%v: dw[%d,%d] = %g, sequential sum %g", s, j, p, dw[j*k+p], acc)
				}
			}
		}
		// Thread count does not matter.
		for _, procs := range []int{1, 3} {
			old := runtime.GOMAXPROCS(procs)
			dx2 := append([]float32(nil), init[:m*k]...)
			dw2 := append([]float32(nil), init[:n*k]...)
			MatMulDX(dx2, dy, w, m, n, k)
			MatMulDW(dw2, dy, x, m, n, k)
			runtime.GOMAXPROCS(old)
			for i := range dx2 {
				if dx2[i] != dx[i] {
					t.Fatalf("%v GOMAXPROCS=%d: dx differs at %d", s, procs, i)
				}
			}
			for i := range dw2 {
				if dw2[i] != dw[i] {
					t.Fatalf("%v GOMAXPROCS=%d: dw differs at %d", s, procs, i)
				}
			}
		}
	}
}

func TestRMSNormBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	const rows, d, eps = 3, 12, 1e-5
	x, w, c := randF32(r, rows*d, 1), randF32(r, d, 1), randF32(r, rows*d, 1)
	dx, dw := make([]float32, rows*d), make([]float32, d)
	rmsNormBackward(dx, dw, c, x, w, eps)
	X, W, C := f64(x), f64(w), f64(c)
	f := func() float64 {
		var s float64
		for o := 0; o < len(X); o += d {
			var ss float64
			for _, v := range X[o : o+d] {
				ss += v * v
			}
			rs := 1 / math.Sqrt(ss/d+eps)
			for i := range d {
				s += C[o+i] * W[i] * X[o+i] * rs
			}
		}
		return s
	}
	t.Logf("rmsnorm: dx error %.2g, dw error %.2g", checkGrad(t, "dx", dx, X, f, 1e-5), checkGrad(t, "dw", dw, W, f, 1e-5))
}

func TestRopeBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	const hd, heads, pos = 8, 2, 5
	for _, interleaved := range []bool{true, false} {
		rp := rope{cos: make([]float32, (pos+1)*hd/2), sin: make([]float32, (pos+1)*hd/2), half: hd / 2, interleaved: interleaved}
		for i := range rp.cos {
			a := r.Float64() * 6
			rp.cos[i], rp.sin[i] = float32(math.Cos(a)), float32(math.Sin(a))
		}
		v, c := randF32(r, heads*hd, 1), randF32(r, heads*hd, 1)
		g := append([]float32(nil), c...)
		rp.apply(g, pos, true)
		V, C := f64(v), f64(c)
		f := func() float64 {
			out := make([]float64, len(V))
			for h := 0; h < len(V); h += hd {
				for i := range hd / 2 {
					a, b := h+2*i, h+2*i+1
					if !interleaved {
						a, b = h+i, h+i+hd/2
					}
					co, si := float64(rp.cos[pos*hd/2+i]), float64(rp.sin[pos*hd/2+i])
					out[a], out[b] = V[a]*co-V[b]*si, V[a]*si+V[b]*co
				}
			}
			return dot64(C, out)
		}
		t.Logf("rope interleaved=%v: error %.2g", interleaved, checkGrad(t, "dv", g, V, f, 1e-6))
	}
}

func TestAttentionBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	s := attnShape{b: 2, t: 5, heads: 4, kvHeads: 2, hd: 6}
	rows := s.b * s.t
	q, k, v := randF32(r, rows*s.qStride(), 1), randF32(r, rows*s.kvStride(), 1), randF32(r, rows*s.kvStride(), 1)
	c := randF32(r, rows*s.qStride(), 1)
	out, p := make([]float32, rows*s.qStride()), make([]float32, s.b*s.heads*s.t*s.t)
	attnForward(out, p, q, k, v, nil, s)
	dq, dk, dv := make([]float32, len(q)), make([]float32, len(k)), make([]float32, len(v))
	attnBackward(dq, dk, dv, c, p, q, k, v, make([]float32, s.b*s.kvHeads*s.t), s)
	Q, K, Vv, C := f64(q), f64(k), f64(v), f64(c)
	f := func() float64 {
		var total float64
		qs, kvs, hd := s.qStride(), s.kvStride(), s.hd
		for seq := range s.b {
			for h := range s.heads {
				g := h / (s.heads / s.kvHeads)
				for i := range s.t {
					sc := make([]float64, i+1)
					var sum float64
					for j := range sc {
						for e := range hd {
							sc[j] += Q[(seq*s.t+i)*qs+h*hd+e] * K[(seq*s.t+j)*kvs+g*hd+e]
						}
						sc[j] = math.Exp(sc[j] / math.Sqrt(float64(hd)))
						sum += sc[j]
					}
					for j := range sc {
						for e := range hd {
							total += C[(seq*s.t+i)*qs+h*hd+e] * sc[j] / sum * Vv[(seq*s.t+j)*kvs+g*hd+e]
						}
					}
				}
			}
		}
		return total
	}
	t.Logf("attention: dq %.2g, dk %.2g, dv %.2g", checkGrad(t, "dq", dq, Q, f, 1e-5),
		checkGrad(t, "dk", dk, K, f, 1e-5), checkGrad(t, "dv", dv, Vv, f, 1e-5))
}

// TestSwiGLUBackward checks the backward pass with σ computed as
// tensor.SiLU does and with the σ swigluFast keeps, whose forward must stay
// within float32 rounding of tensor.SwiGLU.
func TestSwiGLUBackward(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	g, u, c := randF32(r, 20, 2), randF32(r, 20, 1), randF32(r, 20, 1)
	exact := append([]float32(nil), g...)
	tensor.SwiGLU(exact, u)
	a, sig := make([]float32, 20), make([]float32, 20)
	swigluFast(a, sig, g, u)
	for i := range a {
		if d := math.Abs(float64(a[i] - exact[i])); d > 4e-7*math.Abs(float64(exact[i])) {
			t.Fatalf("swigluFast[%d] = %g, tensor.SwiGLU %g", i, a[i], exact[i])
		}
	}
	for _, s := range [][]float32{nil, sig} {
		dg := append([]float32(nil), c...)
		du := make([]float32, 20)
		swigluBackward(dg, du, g, u, s)
		G, U, C := f64(g), f64(u), f64(c)
		f := func() float64 {
			var s float64
			for i := range G {
				s += C[i] * G[i] / (1 + math.Exp(-G[i])) * U[i]
			}
			return s
		}
		t.Logf("swiglu (kept σ: %v): dg %.2g, du %.2g", s != nil, checkGrad(t, "dg", dg, G, f, 1e-6), checkGrad(t, "du", du, U, f, 1e-6))
	}
}

// TestRowLoss checks one position's cross-entropy, KL at temperature 2 with
// the full teacher and with a renormalized top-3 teacher: values and logit
// gradients.
func TestRowLoss(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	const vocab, target, temp = 9, 4, 2.0
	z, tz := randF32(r, vocab, 2), randF32(r, vocab, 2)
	top := TopK(tz, 1, vocab, 3)
	lsm := func(x []float64, t float64) []float64 {
		var s float64
		for _, v := range x {
			s += math.Exp(v / t)
		}
		out := make([]float64, len(x))
		for i, v := range x {
			out[i] = v/t - math.Log(s)
		}
		return out
	}
	for _, c := range []struct {
		name    string
		obj     Objective
		teacher teacherRowT
	}{
		{"ce", Objective{CE: 1}, teacherRowT{}},
		{"ce+kl-full", Objective{CE: 0.3, KL: 0.7, Temperature: temp}, teacherRowT{logits: tz}},
		{"kl-top3", Objective{KL: 1, Temperature: temp}, teacherRowT{ids: top.Index, logits: top.Logits}},
	} {
		Z := f64(z)
		loss := func() (ce, kl float64) {
			ce = -lsm(Z, 1)[target]
			lq := lsm(Z, temp)
			if c.teacher.logits == nil {
				return ce, 0
			}
			lp := lsm(f64(c.teacher.logits), temp)
			for j := range lp {
				id := j
				if c.teacher.ids != nil {
					id = int(c.teacher.ids[j])
				}
				kl += math.Exp(lp[j]) * (lp[j] - lq[id])
			}
			return ce, kl * temp * temp
		}
		f := func() float64 { ce, kl := loss(); return float64(c.obj.CE)*ce + float64(c.obj.KL)*kl }
		g := append([]float32(nil), z...)
		ce, kl := rowLoss(g, target, c.teacher, c.obj, c.obj.temperature(), c.obj.CE, c.obj.KL*c.obj.temperature(), true)
		wce, wkl := loss()
		if math.Abs(ce-wce) > 1e-6 || math.Abs(kl-wkl) > 1e-6 {
			t.Errorf("%s: ce %.9g kl %.9g, float64 %.9g %.9g", c.name, ce, kl, wce, wkl)
		}
		t.Logf("%s: gradient error %.2g", c.name, checkGrad(t, c.name, g, Z, f, 1e-6))
	}
	if top.Index[0] != int32(argmaxAbsPos(tz)) {
		t.Errorf("top-1 id %d is not the argmax", top.Index[0])
	}
}

func argmaxAbsPos(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// TestLoRADropoutMasks checks the masks' rate and that they depend on the
// seed, micro-step, layer and module only.
func TestLoRADropoutMasks(t *testing.T) {
	d := newDropout(7, 0.25, 3, 1, modV)
	var zero int
	const n = 100000
	for i := range n {
		switch f := d.factor(i); f {
		case 0:
			zero++
		case float32(1 / 0.75):
		default:
			t.Fatalf("factor %g", f)
		}
	}
	if rate := float64(zero) / n; math.Abs(rate-0.25) > 0.005 {
		t.Fatalf("drop rate %g, want 0.25", rate)
	}
	same, other := newDropout(7, 0.25, 3, 1, modV), newDropout(7, 0.25, 4, 1, modV)
	var diff int
	for i := range 1000 {
		if same.factor(i) != d.factor(i) {
			t.Fatal("same key, different mask")
		}
		if other.factor(i) != d.factor(i) {
			diff++
		}
	}
	if diff < 200 {
		t.Fatalf("next micro-step's mask differs in only %d of 1000", diff)
	}
	// The bulk forms hash once per four elements and must agree with factor,
	// also on a ragged tail.
	x := randF32(rand.New(rand.NewPCG(9, 9)), 1003, 1)
	got, acc := make([]float32, len(x)), make([]float32, len(x))
	d.apply(got, x)
	d.addScaled(acc, x)
	for i, v := range x {
		if want := v * d.factor(i); got[i] != want || acc[i] != want {
			t.Fatalf("element %d: apply %g, addScaled %g, x·factor %g", i, got[i], acc[i], want)
		}
	}
}

// TestGEMMProducts compares the gemm-backed products, with slices small
// enough that dX and dW are built from several (also ragged) pieces, with
// the exact ones, and checks that they too are deterministic.
func TestGEMMProducts(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for _, s := range [][3]int{{1, 3, 2}, {7, 45, 13}, {33, 100, 17}, {64, 9, 70}} {
		m, n, k := s[0], s[1], s[2]
		g := &gemmProducts{chunk: 8 * max(k, m)}
		g.t1, g.t2, g.tmp = make([]float32, g.chunk), make([]float32, m*k), make([]float32, max(g.chunk, m*k))
		dy, w, x := randF32(r, m*n, 1), randF32(r, n*k, 1), randF32(r, m*k, 1)
		init := randF32(r, max(m*k, n*k, m*n), 1)
		for _, c := range []struct {
			name             string
			run              func(p products, out []float32)
			size, contracted int
		}{
			{"dx", func(p products, out []float32) { p.dx(out, dy, w, m, n, k) }, m * k, n},
			{"dw", func(p products, out []float32) { p.dw(out, dy, x, m, n, k) }, n * k, m},
			{"forward", func(p products, out []float32) { p.forward(out, x, w, m, k, n) }, m * n, k},
		} {
			want := append([]float32(nil), init[:c.size]...)
			got := append([]float32(nil), init[:c.size]...)
			again := append([]float32(nil), init[:c.size]...)
			c.run(exactProducts{}, want)
			c.run(g, got)
			c.run(g, again)
			for i := range want {
				// Both round each of the `contracted` terms: a few ulps of √n·|terms|.
				if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*float64(c.contracted) {
					t.Fatalf("%v %s[%d]: gemm %g, exact %g", s, c.name, i, got[i], want[i])
				}
				if math.Float32bits(got[i]) != math.Float32bits(again[i]) {
					t.Fatalf("%v %s[%d]: gemm not deterministic", s, c.name, i)
				}
			}
		}
	}
}

// TestGEMMDXBitsOfTransposedSlices pins dX = dY·W, now read from W as
// stored (gemm.MatMulNN), to the bits it had when each slice of W's rows
// was transposed and multiplied with gemm.MatMul: the same slices, the same
// order, the same sums, on gemm's matrix-vector path (m ≤ 16) and its
// packed one, with one slice, several, and a ragged last one.
func TestGEMMDXBitsOfTransposedSlices(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for _, s := range [][4]int{{5, 40, 24, 3}, {40, 300, 24, 8}, {64, 301, 40, 4}, {70, 96, 200, 1}, {33, 1000, 72, 1 << 10}} {
		m, n, k, slices := s[0], s[1], s[2], s[3]
		g := &gemmProducts{chunk: slices * max(k, m)}
		g.t1, g.t2, g.tmp = make([]float32, g.chunk), make([]float32, m*k), make([]float32, max(g.chunk, m*k))
		dy, w := randF32(r, m*n, 1), randF32(r, n*k, 1)
		got := randF32(r, m*k, 1)
		want := append([]float32(nil), got...)
		g.dx(got, dy, w, m, n, k)
		step := max(1, g.chunk/max(k, m))
		for j0 := 0; j0 < n; j0 += step {
			c := min(j0+step, n) - j0
			dyJ, wt, out := make([]float32, m*c), make([]float32, k*c), make([]float32, m*k)
			for i := range m {
				copy(dyJ[i*c:(i+1)*c], dy[i*n+j0:])
			}
			for j := range c {
				for p := range k {
					wt[p*c+j] = w[(j0+j)*k+p]
				}
			}
			gemm.MatMul(out, dyJ, wt, m, c, k)
			for i, v := range out {
				want[i] += v
			}
		}
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("m %d n %d k %d, %d-row slices: dx[%d] = %g, transposed slices give %g", m, n, k, step, i, got[i], want[i])
			}
		}
	}
}

// TestAttnGEMMMatchesExact compares the blocked gemm attention with
// attnForward and attnBackward on a shape of three row blocks (the last
// ragged): probabilities, outputs and all three input gradients must agree
// to float32 rounding, the blocks' upper triangles must be zero, and the
// number of workers must not change a bit.
func TestAttnGEMMMatchesExact(t *testing.T) {
	for _, hd := range []int{8, 32} {
		t.Run(fmt.Sprintf("hd=%d", hd), func(t *testing.T) { attnGEMMMatchesExact(t, hd) })
	}
}

func attnGEMMMatchesExact(t *testing.T, hd int) {
	r := rand.New(rand.NewPCG(6, 6))
	s := attnShape{b: 2, t: 2*attnBlock + 22, heads: 4, kvHeads: 2, hd: hd}
	rows := s.b * s.t
	q, k, v := randF32(r, rows*s.qStride(), 1), randF32(r, rows*s.kvStride(), 1), randF32(r, rows*s.kvStride(), 1)
	dout := randF32(r, rows*s.qStride(), 1)
	pLen := s.b * s.heads * s.t * s.t
	out, p := make([]float32, rows*s.qStride()), make([]float32, pLen)
	attnForward(out, p, q, k, v, nil, s)
	dq, dk, dv := make([]float32, len(q)), make([]float32, len(k)), make([]float32, len(v))
	attnBackward(dq, dk, dv, dout, p, q, k, v, make([]float32, s.b*s.kvHeads*s.t), s)

	// Built and run with 1, 2 and 3 workers: the same bits every time.
	var a *attnGEMM
	var gout, gp, gdq, gdk, gdv []float32
	for _, procs := range []int{1, 2, 3} {
		old := runtime.GOMAXPROCS(procs)
		a = newAttnGEMM(s, func(n int) []float32 { return make([]float32, n) })
		o, pp := make([]float32, len(out)), make([]float32, pLen)
		a.forward(o, pp, q, k, v, nil)
		d1, d2, d3 := make([]float32, len(q)), make([]float32, len(k)), make([]float32, len(v))
		a.backward(d1, d2, d3, dout, pp, q, k, v)
		runtime.GOMAXPROCS(old)
		if gout == nil {
			gout, gp, gdq, gdk, gdv = o, pp, d1, d2, d3
			continue
		}
		for i, pair := range [][2][]float32{{o, gout}, {pp, gp}, {d1, gdq}, {d2, gdk}, {d3, gdv}} {
			for j := range pair[0] {
				if math.Float32bits(pair[0][j]) != math.Float32bits(pair[1][j]) {
					t.Fatalf("GOMAXPROCS=%d: result %d differs at %d: %g, GOMAXPROCS=1 gives %g", procs, i, j, pair[0][j], pair[1][j])
				}
			}
		}
	}

	for h := range s.b * s.heads {
		ph, gh := p[h*s.t*s.t:(h+1)*s.t*s.t], gp[h*s.t*s.t:(h+1)*s.t*s.t]
		for I := range a.off {
			blk, i0, i1 := a.block(gh, I)
			for i := i0; i < i1; i++ {
				for j := range i1 {
					got, want := blk[(i-i0)*i1+j], float32(0)
					if j <= i {
						want = ph[i*s.t+j]
					}
					if math.Abs(float64(got-want)) > 1e-6 {
						t.Fatalf("head %d: P[%d,%d] = %g, exact %g", h, i, j, got, want)
					}
				}
			}
		}
	}
	for _, c := range []struct {
		name      string
		got, want []float32
	}{{"out", gout, out}, {"dq", gdq, dq}, {"dk", gdk, dk}, {"dv", gdv, dv}} {
		var scale float64
		for _, w := range c.want {
			scale = math.Max(scale, math.Abs(float64(w)))
		}
		for i := range c.want {
			if d := math.Abs(float64(c.got[i] - c.want[i])); d > 2e-5*scale {
				t.Fatalf("%s[%d] = %g, exact %g (max |%s| %g)", c.name, i, c.got[i], c.want[i], c.name, scale)
			}
		}
	}
}

// TestParTranspose checks the tiled transpose, split over 1 and 3 threads
// down to single tiles, against the plain definition, on shapes with
// ragged tiles and row strides wider than the block transposed.
func TestParTranspose(t *testing.T) {
	defer func(g int) { rowsGrain = g }(rowsGrain)
	rowsGrain = 1
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, s := range [][4]int{{1, 1, 1, 1}, {37, 70, 75, 45}, {64, 96, 96, 64}, {5, 129, 133, 9}} {
		r, c, ss, ds := s[0], s[1], s[2], s[3]
		src := make([]float32, r*ss)
		for i := range src {
			src[i] = float32(i) + 0.5
		}
		for _, procs := range []int{1, 3} {
			runtime.GOMAXPROCS(procs)
			dst := make([]float32, c*ds)
			for i := range dst {
				dst[i] = -1
			}
			parTranspose(dst, ds, src, ss, r, c)
			for j := range c {
				for i := range ds {
					want := float32(-1) // outside the r columns: untouched
					if i < r {
						want = src[i*ss+j]
					}
					if dst[j*ds+i] != want {
						t.Fatalf("%v on %d threads: dst[%d][%d] = %g, want %g", s, procs, j, i, dst[j*ds+i], want)
					}
				}
			}
		}
	}
}
