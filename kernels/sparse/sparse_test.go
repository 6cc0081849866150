package sparse

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func randMatrix(r *rand.Rand, rows, cols int) []float32 {
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(r.NormFloat64())
	}
	return w
}

// bruteMask is an independent reference of "prune the k lowest scores of a
// group, ties to the lower index": a weight is pruned when fewer than k
// members of its group rank before it.
func bruteMask(score []float64, groups [][]int, k func(size int) int) []bool {
	mask := make([]bool, len(score))
	for _, g := range groups {
		for a, i := range g {
			before := 0
			for b, j := range g {
				if score[j] < score[i] || (score[j] == score[i] && b < a) {
					before++
				}
			}
			mask[i] = before < k(len(g))
		}
	}
	return mask
}

func rowGroups(rows, cols, width int) [][]int {
	var gs [][]int
	for r := range rows {
		for c := 0; c < cols; c += width {
			var g []int
			for j := c; j < c+width; j++ {
				g = append(g, r*cols+j)
			}
			gs = append(gs, g)
		}
	}
	return gs
}

func TestParseNM(t *testing.T) {
	p, err := ParseNM("2:4")
	if err != nil || p.N != 2 || p.M != 4 || p.Ratio != 0.5 || p.String() != "2:4" {
		t.Fatalf("2:4 = %+v, %v", p, err)
	}
	for s, want := range map[string]string{
		"2/4": "is not N:M", "4:4": "needs 1 ≤ N < M", "0:4": "needs 1 ≤ N < M", "a:4": "is not N:M",
	} {
		if _, err := ParseNM(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", s, err, want)
		}
	}
	for _, r := range []float64{-0.1, 1, math.NaN()} {
		if _, err := Unstructured(r); err == nil || !strings.Contains(err.Error(), "outside [0, 1)") {
			t.Errorf("ratio %v: %v", r, err)
		}
	}
}

// TestMagnitudeAndWandaBruteForce: the masks equal a float64 brute-force
// ranking at the references' granularity (layer for magnitude, row for
// Wanda, group of 4 for 2:4), on a tiny matrix with deliberate ties.
func TestMagnitudeAndWandaBruteForce(t *testing.T) {
	const rows, cols = 5, 12
	r := rand.New(rand.NewPCG(1, 1))
	w := randMatrix(r, rows, cols)
	w[3], w[7], w[20] = 0.5, -0.5, 0.5 // ties in |w|
	norm := make([]float64, cols)
	for j := range norm {
		norm[j] = math.Exp(r.NormFloat64())
	}
	norm[4] = norm[5]
	mag, wanda := make([]float64, len(w)), make([]float64, len(w))
	for i, v := range w {
		mag[i] = math.Abs(float64(v))
		wanda[i] = math.Abs(float64(v)) * norm[i%cols]
	}
	all := [][]int{{}}
	for i := range w {
		all[0] = append(all[0], i)
	}
	nm, _ := ParseNM("2:4")
	for _, ratio := range []float64{0, 0.3, 0.5, 0.75} {
		p, _ := Unstructured(ratio)
		got, err := Magnitude(w, rows, cols, p)
		if err != nil {
			t.Fatal(err)
		}
		want := bruteMask(mag, all, func(n int) int { return int(float64(n) * ratio) })
		if !slices.Equal(got, want) {
			t.Fatalf("magnitude %v: mask %v, brute force %v", ratio, got, want)
		}
		got, err = Wanda(w, rows, cols, norm, p)
		if err != nil {
			t.Fatal(err)
		}
		want = bruteMask(wanda, rowGroups(rows, cols, cols), func(n int) int { return int(float64(n) * ratio) })
		if !slices.Equal(got, want) {
			t.Fatalf("wanda %v: mask %v, brute force %v", ratio, got, want)
		}
	}
	got, _ := Magnitude(w, rows, cols, nm)
	if want := bruteMask(mag, rowGroups(rows, cols, 4), func(int) int { return 2 }); !slices.Equal(got, want) {
		t.Fatalf("magnitude 2:4: mask %v, brute force %v", got, want)
	}
	got, _ = Wanda(w, rows, cols, norm, nm)
	if want := bruteMask(wanda, rowGroups(rows, cols, 4), func(int) int { return 2 }); !slices.Equal(got, want) {
		t.Fatalf("wanda 2:4: mask %v, brute force %v", got, want)
	}
	// Wanda differs from magnitude exactly because of the norms.
	p, _ := Unstructured(0.5)
	m1, _ := Magnitude(w, rows, cols, p)
	m2, _ := Wanda(w, rows, cols, norm, p)
	if slices.Equal(m1, m2) {
		t.Fatal("wanda and magnitude chose the same weights despite non-uniform input norms")
	}
}

// countZeros returns the zero count of every group of width consecutive
// columns of every row.
func countZeros(w []float32, rows, cols, width int) []int {
	var out []int
	for r := range rows {
		for c := 0; c < cols; c += width {
			n := 0
			for _, v := range w[r*cols+c : r*cols+c+width] {
				if v == 0 {
					n++
				}
			}
			out = append(out, n)
		}
	}
	return out
}

// TestCounts: 2:4 leaves exactly 2 non-zeros in every group of 4 under all
// three methods; unstructured pruning zeroes exactly ⌊ratio·n⌋ weights per
// layer (magnitude), per row (Wanda), per block of 128 columns (SparseGPT).
func TestCounts(t *testing.T) {
	const rows, cols = 20, 200 // two SparseGPT blocks: 128 and 72 columns
	r := rand.New(rand.NewPCG(2, 2))
	w := randMatrix(r, rows, cols)
	x := correlatedInputs(r, 400, cols)
	g := gram(x, cols)
	norm := make([]float64, cols)
	for j := range norm {
		norm[j] = math.Sqrt(g[j*cols+j])
	}
	nm, _ := ParseNM("2:4")
	for _, method := range []string{"magnitude", "wanda", "sparsegpt"} {
		for _, p := range []Pattern{nm, {Ratio: 0.5}, {Ratio: 0.37}} {
			pruned := slices.Clone(w)
			switch method {
			case "magnitude":
				m, err := Magnitude(pruned, rows, cols, p)
				if err != nil {
					t.Fatal(err)
				}
				Apply(pruned, m)
			case "wanda":
				m, err := Wanda(pruned, rows, cols, norm, p)
				if err != nil {
					t.Fatal(err)
				}
				Apply(pruned, m)
			case "sparsegpt":
				if _, err := SparseGPT(pruned, rows, cols, g, p, SparseGPTOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			switch {
			case p.NM():
				for i, z := range countZeros(pruned, rows, cols, 4) {
					if z != 2 {
						t.Fatalf("%s 2:4: group %d has %d zeros", method, i, z)
					}
				}
			case method == "magnitude":
				if z := countZeros(pruned, 1, rows*cols, rows*cols)[0]; z != int(float64(rows*cols)*p.Ratio) {
					t.Fatalf("magnitude %v: %d zeros in the layer", p.Ratio, z)
				}
			case method == "wanda":
				for i, z := range countZeros(pruned, rows, cols, cols) {
					if z != int(float64(cols)*p.Ratio) {
						t.Fatalf("wanda %v: row %d has %d zeros", p.Ratio, i, z)
					}
				}
			case method == "sparsegpt":
				for _, blk := range [][2]int{{0, 128}, {128, 200}} {
					z := 0
					for r := range rows {
						for c := blk[0]; c < blk[1]; c++ {
							if pruned[r*cols+c] == 0 {
								z++
							}
						}
					}
					if want := int(float64(rows*(blk[1]-blk[0])) * p.Ratio); z != want {
						t.Fatalf("sparsegpt %v: columns %v have %d zeros, want %d", p.Ratio, blk, z, want)
					}
				}
			}
		}
	}
}

// correlatedInputs draws tokens × cols activations with correlated
// channels of very different scales, like a transformer's.
func correlatedInputs(r *rand.Rand, tokens, cols int) []float64 {
	const k = 6
	basis := make([]float64, k*cols)
	for i := range basis {
		basis[i] = r.NormFloat64()
	}
	scale := make([]float64, cols)
	for j := range scale {
		scale[j] = math.Exp(1.5 * r.NormFloat64())
	}
	x := make([]float64, tokens*cols)
	for t := range tokens {
		z := make([]float64, k)
		for i := range z {
			z[i] = r.NormFloat64()
		}
		for j := range cols {
			v := 0.3 * r.NormFloat64()
			for i := range z {
				v += z[i] * basis[i*cols+j]
			}
			x[t*cols+j] = v * scale[j]
		}
	}
	return x
}

// gram returns XᵀX (the scale does not matter to SparseGPT).
func gram(x []float64, cols int) []float64 {
	g := make([]float64, cols*cols)
	for t := 0; t < len(x); t += cols {
		for i := range cols {
			for j := range cols {
				g[i*cols+j] += x[t+i] * x[t+j]
			}
		}
	}
	return g
}

// reconError is ‖(W − Ŵ)Xᵀ‖²_F in float64.
func reconError(w, pruned []float32, x []float64, rows, cols int) float64 {
	var e float64
	for t := 0; t < len(x); t += cols {
		for r := range rows {
			var d float64
			for j := range cols {
				d += (float64(w[r*cols+j]) - float64(pruned[r*cols+j])) * x[t+j]
			}
			e += d * d
		}
	}
	return e
}

// TestSparseGPTBeatsMagnitudeAndWanda: on one layer and one calibration
// set, SparseGPT's reconstruction error ‖WX − ŴX‖² is below Wanda's and
// magnitude's at the same sparsity, unstructured 50% and 2:4.
func TestSparseGPTBeatsMagnitudeAndWanda(t *testing.T) {
	const rows, cols, tokens = 32, 64, 512
	r := rand.New(rand.NewPCG(3, 3))
	w := randMatrix(r, rows, cols)
	x := correlatedInputs(r, tokens, cols)
	g := gram(x, cols)
	norm := make([]float64, cols)
	for j := range norm {
		norm[j] = math.Sqrt(g[j*cols+j])
	}
	nm, _ := ParseNM("2:4")
	for _, p := range []Pattern{{Ratio: 0.5}, nm} {
		errOf := map[string]float64{}
		for _, method := range []string{"magnitude", "wanda", "sparsegpt"} {
			pruned := slices.Clone(w)
			var mask []bool
			var err error
			switch method {
			case "magnitude":
				mask, err = Magnitude(pruned, rows, cols, p)
			case "wanda":
				mask, err = Wanda(pruned, rows, cols, norm, p)
			case "sparsegpt":
				_, err = SparseGPT(pruned, rows, cols, g, p, SparseGPTOptions{})
			}
			if err != nil {
				t.Fatal(err)
			}
			if mask != nil {
				Apply(pruned, mask)
			}
			errOf[method] = reconError(w, pruned, x, rows, cols)
		}
		t.Logf("%s: ‖WX−ŴX‖² magnitude %.4g, wanda %.4g, sparsegpt %.4g", p, errOf["magnitude"], errOf["wanda"], errOf["sparsegpt"])
		if !(errOf["sparsegpt"] < errOf["wanda"] && errOf["sparsegpt"] < errOf["magnitude"]) {
			t.Fatalf("%s: SparseGPT's error %g is not below Wanda's %g and magnitude's %g", p, errOf["sparsegpt"], errOf["wanda"], errOf["magnitude"])
		}
	}
}

// refSparseGPT is a straightforward float64 OBS pruner written from the
// paper's equations, for comparison: H⁻¹ by Gauss–Jordan elimination, its
// upper Cholesky factor by the textbook recurrence, and after each column
// the error spread at once over every later column (no lazy block
// updates). The mask is chosen as SparseGPT chooses it: per block of bs
// columns over all rows (unstructured) or per group of M when its first
// column is reached (N:M).
func refSparseGPT(w []float32, rows, cols int, h []float64, p Pattern, bs int) []float64 {
	H := slices.Clone(h)
	W := make([]float64, len(w))
	var mean float64
	for i := range cols {
		if H[i*cols+i] == 0 {
			H[i*cols+i] = 1
			for r := range rows {
				w[r*cols+i] = 0
			}
		}
		mean += H[i*cols+i]
	}
	for i, v := range w {
		W[i] = float64(v)
	}
	for i := range cols {
		H[i*cols+i] += 0.01 * mean / float64(cols)
	}
	// Gauss–Jordan inverse.
	a := slices.Clone(H)
	inv := make([]float64, cols*cols)
	for i := range cols {
		inv[i*cols+i] = 1
	}
	for c := range cols {
		piv := a[c*cols+c]
		for j := range cols {
			a[c*cols+j] /= piv
			inv[c*cols+j] /= piv
		}
		for r := range cols {
			if r == c {
				continue
			}
			f := a[r*cols+c]
			for j := range cols {
				a[r*cols+j] -= f * a[c*cols+j]
				inv[r*cols+j] -= f * inv[c*cols+j]
			}
		}
	}
	// Upper Cholesky: inv = UᵀU.
	U := make([]float64, cols*cols)
	for i := range cols {
		s := inv[i*cols+i]
		for k := range i {
			s -= U[k*cols+i] * U[k*cols+i]
		}
		U[i*cols+i] = math.Sqrt(s)
		for j := i + 1; j < cols; j++ {
			s := inv[i*cols+j]
			for k := range i {
				s -= U[k*cols+i] * U[k*cols+j]
			}
			U[i*cols+j] = s / U[i*cols+i]
		}
	}
	mask := make([]bool, len(W))
	for c := range cols {
		if !p.NM() && c%bs == 0 {
			n := min(bs, cols-c)
			var score []float64
			var idx []int
			for r := range rows {
				for j := c; j < c+n; j++ {
					d := U[j*cols+j]
					score = append(score, W[r*cols+j]*W[r*cols+j]/(d*d))
					idx = append(idx, len(idx))
				}
			}
			bm := bruteMask(score, [][]int{idx}, func(k int) int { return int(float64(k) * p.Ratio) })
			for r := range rows {
				copy(mask[r*cols+c:r*cols+c+n], bm[r*n:(r+1)*n])
			}
		}
		for r := range rows {
			if p.NM() && c%p.M == 0 {
				var score []float64
				var idx []int
				for j := c; j < c+p.M; j++ {
					score = append(score, W[r*cols+j]*W[r*cols+j]/(U[j*cols+j]*U[j*cols+j]))
					idx = append(idx, len(idx))
				}
				copy(mask[r*cols+c:], bruteMask(score, [][]int{idx}, func(int) int { return p.M - p.N }))
			}
			q := W[r*cols+c]
			if mask[r*cols+c] {
				q = 0
			}
			e := (W[r*cols+c] - q) / U[c*cols+c]
			for j := c + 1; j < cols; j++ {
				W[r*cols+j] -= e * U[c*cols+j]
			}
			W[r*cols+c] = q
		}
	}
	return W
}

// TestSparseGPTMatchesReference: the blocked, lazily updated kernel agrees
// with the straightforward float64 OBS re-implementation, mask for mask and
// weight for weight (to float32 rounding), with a dead input, over several
// blocks, unstructured and 2:4.
func TestSparseGPTMatchesReference(t *testing.T) {
	const rows, cols, tokens = 9, 40, 200
	r := rand.New(rand.NewPCG(4, 4))
	w := randMatrix(r, rows, cols)
	x := correlatedInputs(r, tokens, cols)
	for t := 0; t < len(x); t += cols {
		x[t+11] = 0 // input 11 is dead
	}
	g := gram(x, cols)
	nm, _ := ParseNM("2:4")
	for _, c := range []struct {
		p  Pattern
		bs int
	}{{Pattern{Ratio: 0.5}, 8}, {Pattern{Ratio: 0.3}, 16}, {Pattern{Ratio: 0.6}, 128}, {nm, 8}, {nm, 128}} {
		got := slices.Clone(w)
		if _, err := SparseGPT(got, rows, cols, g, c.p, SparseGPTOptions{BlockSize: c.bs}); err != nil {
			t.Fatal(err)
		}
		want := refSparseGPT(slices.Clone(w), rows, cols, g, c.p, c.bs)
		for i := range got {
			if (got[i] == 0) != (want[i] == 0) {
				t.Fatalf("%s block %d: weight %d is %g, reference %g", c.p, c.bs, i, got[i], want[i])
			}
			if math.Abs(float64(got[i])-want[i]) > 1e-5*(1+math.Abs(want[i])) {
				t.Fatalf("%s block %d: weight %d is %g, reference %g", c.p, c.bs, i, got[i], want[i])
			}
		}
		for rr := range rows {
			if got[rr*cols+11] != 0 {
				t.Fatalf("%s: dead input 11 of row %d kept %g", c.p, rr, got[rr*cols+11])
			}
		}
	}
}

// TestSparseGPTDeterministic: the same inputs give bit-identical weights on
// one thread and on many.
func TestSparseGPTDeterministic(t *testing.T) {
	const rows, cols = 48, 64
	r := rand.New(rand.NewPCG(5, 5))
	w := randMatrix(r, rows, cols)
	g := gram(correlatedInputs(r, 300, cols), cols)
	run := func(procs int) []float32 {
		prev := runtime.GOMAXPROCS(procs)
		defer runtime.GOMAXPROCS(prev)
		out := slices.Clone(w)
		if _, err := SparseGPT(out, rows, cols, g, Pattern{Ratio: 0.5}, SparseGPTOptions{BlockSize: 16}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	a, b := run(1), run(4)
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			t.Fatalf("weight %d: %g on 1 thread, %g on 4", i, a[i], b[i])
		}
	}
}

func TestRejects(t *testing.T) {
	w := make([]float32, 2*6)
	for i := range w {
		w[i] = float32(i + 1)
	}
	nm, _ := ParseNM("2:4")
	if _, err := Magnitude(w, 2, 6, nm); err == nil || !strings.Contains(err.Error(), "magnitude: 2:4 sparsity needs the input width to be a multiple of 4, got 6") {
		t.Errorf("width: %v", err)
	}
	bad := slices.Clone(w)
	bad[7] = float32(math.Inf(1))
	if _, err := Wanda(bad, 2, 6, make([]float64, 6), Pattern{Ratio: 0.5}); err == nil || !strings.Contains(err.Error(), "wanda: weight [1, 1] is +Inf") {
		t.Errorf("inf weight: %v", err)
	}
	if _, err := Wanda(w, 2, 6, make([]float64, 5), Pattern{Ratio: 0.5}); err == nil || !strings.Contains(err.Error(), "5 input norms for a weight of 6 inputs") {
		t.Errorf("norms: %v", err)
	}
	if _, err := SparseGPT(w, 2, 6, make([]float64, 30), Pattern{Ratio: 0.5}, SparseGPTOptions{}); err == nil || !strings.Contains(err.Error(), "Hessian holds 30 values, want 6 × 6") {
		t.Errorf("hessian size: %v", err)
	}
	neg := make([]float64, 36)
	for i := range 6 {
		neg[i*7] = -1
	}
	if _, err := SparseGPT(w, 2, 6, neg, Pattern{Ratio: 0.5}, SparseGPTOptions{}); err == nil || !strings.Contains(err.Error(), "not positive definite") {
		t.Errorf("indefinite: %v", err)
	}
	if _, err := SparseGPT(make([]float32, 8), 1, 8, make([]float64, 64), nm, SparseGPTOptions{BlockSize: 6}); err == nil || !strings.Contains(err.Error(), "multiple of 4") {
		t.Errorf("block size: %v", err)
	}
}
