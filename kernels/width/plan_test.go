package width

import (
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"lrmc/kernels/llama"
)

// FLAP's compensation adds W[:, removed]·mean[removed] to the output bias
// (checked against float64 per row), and since that bias minimizes
// Σ_t ‖W_R x_t,R − b‖² over the calibration tokens, the o and down
// projections' outputs on those tokens move strictly closer to the dense
// ones than without it.
func TestFLAPCompensation(t *testing.T) {
	m := testModel(t, shapes["qwen3"])
	c := m.Config
	const b, T = 2, 10
	o, down, oRows, downRows := collect(t, m, tokens(b*T, c.Vocab, 12), b, T)
	in := make([]FLAPInputs, c.Layers)
	for i := range in {
		in[i] = FLAPInputs{OMean: o[i].Mean(), OVar: o[i].Variance(), DownMean: down[i].Mean(), DownVar: down[i].Variance()}
	}
	p := randomPlan(c, 3)
	comp := FLAPCompensation(in)
	with, err := Prune(m, p, comp)
	if err != nil {
		t.Fatal(err)
	}
	without, err := Prune(m, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !with.Config.OutBias || without.Config.OutBias {
		t.Fatalf("OutBias: with %v, without %v", with.Config.OutBias, without.Config.OutBias)
	}
	hd, d := c.HeadDim(), c.Dim
	for i, lp := range p {
		rep := c.Heads / c.KVHeads
		var qRows []int
		for _, g := range lp.KVHeads {
			for h := g * rep; h < (g+1)*rep; h++ {
				for r := h * hd; r < (h+1)*hd; r++ {
					qRows = append(qRows, r)
				}
			}
		}
		for _, cs := range []struct {
			name       string
			w          []float32
			in         int
			keep       []int
			mean       []float64
			rows       []float32
			bias       []float32
			prunedW    []float32
			prunedBias []float32
		}{
			{"o_proj", m.Layers[i].Wo, c.QDim(), qRows, in[i].OMean, oRows[i], with.Layers[i].Bo, with.Layers[i].Wo, nil},
			{"down_proj", m.Layers[i].W2, c.HiddenDim, lp.Channels, in[i].DownMean, downRows[i], with.Layers[i].B2, with.Layers[i].W2, nil},
		} {
			kept := make([]bool, cs.in)
			for _, k := range cs.keep {
				kept[k] = true
			}
			for r := range d {
				var want float64
				for j := range cs.in {
					if !kept[j] {
						want += float64(cs.w[r*cs.in+j]) * cs.mean[j]
					}
				}
				if math.Abs(float64(cs.bias[r])-want) > 1e-6*math.Abs(want)+1e-7 {
					t.Fatalf("block %d %s bias[%d] = %g, closed form %g", i, cs.name, r, cs.bias[r], want)
				}
			}
			// Output error over the calibration tokens, with and without.
			var errWith, errWithout float64
			n := len(cs.rows) / cs.in
			for tk := range n {
				x := cs.rows[tk*cs.in : (tk+1)*cs.in]
				for r := range d {
					var dense, pruned float64
					for j := range cs.in {
						dense += float64(cs.w[r*cs.in+j]) * float64(x[j])
					}
					for jj, j := range cs.keep {
						pruned += float64(cs.prunedW[r*len(cs.keep)+jj]) * float64(x[j])
					}
					errWithout += (pruned - dense) * (pruned - dense)
					e := pruned + float64(cs.bias[r]) - dense
					errWith += e * e
				}
			}
			if len(cs.keep) < cs.in && !(errWith < errWithout) {
				t.Errorf("block %d %s: squared error with compensation %g, without %g", i, cs.name, errWith, errWithout)
			}
		}
	}
}

// Wanda-sp removes ⌊ratio·groups⌋ attention groups per block, the lowest,
// and as many MLP channels as make the removed parameters ratio of the
// block's projections (FLAP's cal_remove_neuron).
func TestWandaSPPlan(t *testing.T) {
	// Dim 16, 4 heads of 4: a group holds (2+2)·4·16 = 256 weights, a
	// channel 48; 1504 in all. At 0.4: ⌊1.6⌋ = 1 group, ⌊(601.6−256)/48⌋ =
	// 7 channels.
	c := llama.Config{Dim: 16, HiddenDim: 10, Layers: 2, Heads: 4, KVHeads: 4, Vocab: 10, SeqLen: 8, NormEps: 1e-5, RopeTheta: 1e4}
	attn := [][]float64{{3, 1, 4, 2}, {1, 2, 3, 4}}
	mlp := [][]float64{{9, 1, 8, 2, 7, 3, 6, 4, 5, 0}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}}
	p, err := WandaSPPlan(c, attn, mlp, 0.4)
	if err != nil {
		t.Fatal(err)
	}
	want := Plan{{KVHeads: []int{0, 2, 3}, Channels: []int{0, 2, 4}}, {KVHeads: []int{1, 2, 3}, Channels: []int{7, 8, 9}}}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("plan %+v, want %+v", p, want)
	}
}

// FLAP's global plan: kept groups are exactly those ranked above a single
// threshold of standardized scores (attention by group mean), the kept
// parameter weight is within one group of (1−ratio) of the total, and the
// plan is the same on every call.
func TestFLAPPlanProperties(t *testing.T) {
	c := llama.Config{Dim: 16, HiddenDim: 12, Layers: 3, Heads: 4, KVHeads: 2, Vocab: 10, SeqLen: 8, NormEps: 1e-5, RopeTheta: 1e4}
	r := rand.New(rand.NewPCG(1, 2))
	attn, mlp := make([][]float64, c.Layers), make([][]float64, c.Layers)
	for i := range attn {
		attn[i], mlp[i] = make([]float64, c.QDim()), make([]float64, c.HiddenDim)
		for j := range attn[i] {
			attn[i][j] = math.Exp(r.NormFloat64())
		}
		for j := range mlp[i] {
			mlp[i][j] = math.Exp(2 * r.NormFloat64())
		}
	}
	for _, ratio := range []float64{0.2, 0.4} {
		p, err := FLAPPlan(c, attn, mlp, ratio)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := FLAPPlan(c, attn, mlp, ratio)
		if !reflect.DeepEqual(p, again) {
			t.Fatal("FLAP plan differs between calls")
		}
		az, mz := standardize(attn), standardize(mlp)
		ga, gm := groupParams(c)
		wa := float64(ga) / float64(gm)
		size := c.QDim() / c.KVHeads
		minKept, maxRemoved := math.Inf(1), math.Inf(-1)
		var kept, total float64
		for i := range c.Layers {
			for g, s := range sumRuns(az[i], size) {
				s /= float64(size)
				total += wa
				if slices.Contains(p[i].KVHeads, g) {
					kept += wa
					minKept = math.Min(minKept, s)
				} else {
					maxRemoved = math.Max(maxRemoved, s)
				}
			}
			for j, s := range mz[i] {
				total++
				if slices.Contains(p[i].Channels, j) {
					kept++
					minKept = math.Min(minKept, s)
				} else {
					maxRemoved = math.Max(maxRemoved, s)
				}
			}
		}
		if !(minKept > maxRemoved) {
			t.Errorf("ratio %g: a kept group scores %g, a removed one %g", ratio, minKept, maxRemoved)
		}
		if math.Abs(kept-(1-ratio)*total) > wa {
			t.Errorf("ratio %g: kept weight %g of %g, want about %g", ratio, kept, total, (1-ratio)*total)
		}
	}
}

// The whole FLAP pipeline (statistics, scores, global plan, compensated
// pruning) run twice gives bit-identical models.
func TestDeterministic(t *testing.T) {
	run := func() *llama.Model {
		m := testModel(t, shapes["qwen3"])
		c := m.Config
		o, down, _, _ := collect(t, m, tokens(16, c.Vocab, 3), 2, 8)
		attn, mlp := make([][]float64, c.Layers), make([][]float64, c.Layers)
		in := make([]FLAPInputs, c.Layers)
		for i := range in {
			in[i] = FLAPInputs{OMean: o[i].Mean(), OVar: o[i].Variance(), DownMean: down[i].Mean(), DownVar: down[i].Variance()}
			var err error
			if attn[i], mlp[i], err = FLAPScores(c, i, &m.Layers[i], in[i]); err != nil {
				t.Fatal(err)
			}
		}
		p, err := FLAPPlan(c, attn, mlp, 0.3)
		if err != nil {
			t.Fatal(err)
		}
		pm, err := Prune(m, p, FLAPCompensation(in))
		if err != nil {
			t.Fatal(err)
		}
		return pm
	}
	a, b := run(), run()
	if !reflect.DeepEqual(a.Config, b.Config) {
		t.Fatalf("configs differ: %+v vs %+v", a.Config, b.Config)
	}
	ta, tb := a.Tensors(), b.Tensors()
	for i := range ta {
		for j := range ta[i].Data {
			if math.Float32bits(ta[i].Data[j]) != math.Float32bits(tb[i].Data[j]) {
				t.Fatalf("%s[%d] differs between runs", ta[i].Name, j)
			}
		}
	}
}

// FLAP standardizes each block's scores on their own (axis=1 of its
// [blocks, channels] stack), with torch.std's n−1.
func TestStandardizePerBlock(t *testing.T) {
	got := standardize([][]float64{{1, 2, 3}, {10, 10}, {0, 4}, {7}})
	r := 1 / math.Sqrt(2)
	want := [][]float64{{-1, 0, 1}, {0, 0}, {-r, r}, {0}}
	for i := range want {
		for j := range want[i] {
			if math.Abs(got[i][j]-want[i][j]) > 1e-15 {
				t.Fatalf("standardize: %v, want %v", got, want)
			}
		}
	}
}
