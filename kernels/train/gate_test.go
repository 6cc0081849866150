package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"lrmc/kernels/train/optim"
)

// sigmoidGate is a smooth test gate: part p of layer l is gated by
// g = σ(w·x + b), one [Dim+1] parameter (bias last) per (layer, part), with
// a fixed key mask (keys(li, r)) on attention and the auxiliary loss
// λ·(mean g − target)² over every gate of the pass. Being smooth, its
// gradients can be checked by finite differences; it exercises the hook
// exactly as a router does (dg in, parameter and router-input gradients
// out, an auxiliary loss over all layers).
type sigmoidGate struct {
	d      int
	params []*optim.Param
	keys   func(li, r int) bool // nil: no key mask
	lambda float64
	target float64
	ones   bool // g = 1 and no key mask everywhere

	pass    GatePass
	g       [][]float32 // per layer·2+part
	mask    [][]bool
	dAux    float32
	begun   int
	calls   []string
	backs   []string
	recheck map[string][]float32 // the first Gate call's values, to compare the recompute with
}

func newSigmoidGate(layers, d int, seed uint64) *sigmoidGate {
	r := rand.New(rand.NewPCG(seed, 1))
	sg := &sigmoidGate{d: d, lambda: 0.7, target: 0.3, recheck: map[string][]float32{}}
	for l := range layers {
		for _, p := range []GatePart{GateAttn, GateMLP} {
			w := make([]float32, d+1)
			for i := range w {
				w[i] = float32(0.4 * r.NormFloat64())
			}
			sg.params = append(sg.params, &optim.Param{Name: fmt.Sprintf("gate.%d.%s", l, p), Data: w, Grad: make([]float32, d+1)})
		}
	}
	sg.g = make([][]float32, 2*layers)
	sg.mask = make([][]bool, layers)
	return sg
}

func (sg *sigmoidGate) Params() []*optim.Param { return sg.params }

func (sg *sigmoidGate) Begin(p GatePass) {
	sg.pass, sg.begun = p, sg.begun+1
	clear(sg.recheck)
}

func (sg *sigmoidGate) Gate(li int, part GatePart, x, g []float32) []bool {
	sg.calls = append(sg.calls, fmt.Sprintf("%d%s", li, part))
	rows := len(g)
	if sg.ones {
		for r := range g {
			g[r] = 1
		}
		return nil
	}
	w := sg.params[2*li+int(part)].Data
	for r := range rows {
		z := float64(w[sg.d])
		for j, v := range x[r*sg.d : (r+1)*sg.d] {
			z += float64(w[j]) * float64(v)
		}
		g[r] = float32(1 / (1 + math.Exp(-z)))
	}
	key := fmt.Sprintf("%d%s", li, part)
	if prev, ok := sg.recheck[key]; ok && !reflect.DeepEqual(prev, g) {
		panic("recomputed gate differs from the forward pass's")
	}
	sg.recheck[key] = append([]float32(nil), g...)
	sg.g[2*li+int(part)] = append(sg.g[2*li+int(part)][:0], g...)
	if part != GateAttn || sg.keys == nil {
		return nil
	}
	m := sg.mask[li][:0]
	for r := range rows {
		m = append(m, sg.keys(li, r))
	}
	sg.mask[li] = m
	return m
}

func (sg *sigmoidGate) Aux(gradScale float32, backward bool) []AuxLoss {
	if sg.ones {
		return nil
	}
	var sum float64
	var cnt int
	for _, g := range sg.g {
		for _, v := range g {
			sum += float64(v)
			cnt++
		}
	}
	mean := sum / float64(cnt)
	sg.dAux = float32(float64(gradScale) * 2 * sg.lambda * (mean - sg.target) / float64(cnt))
	return []AuxLoss{{Name: "ratio", Value: sg.lambda * (mean - sg.target) * (mean - sg.target)}}
}

func (sg *sigmoidGate) GateBackward(li int, part GatePart, x, dg, dx []float32) {
	sg.backs = append(sg.backs, fmt.Sprintf("%d%s", li, part))
	if sg.ones {
		return
	}
	p := sg.params[2*li+int(part)]
	g := sg.g[2*li+int(part)]
	for r, d := range dg {
		dz := (d + sg.dAux) * g[r] * (1 - g[r])
		xr := x[r*sg.d : (r+1)*sg.d]
		for j, v := range xr {
			p.Grad[j] += dz * v
			dx[r*sg.d+j] += dz * p.Data[j]
		}
		p.Grad[sg.d] += dz
	}
}

// refSigmoid is sigmoidGate in float64, reading its weights from P.
type refSigmoid struct{ sg *sigmoidGate }

func (rg refSigmoid) gate(li int, part GatePart, x []float64, P map[string][]float64) ([]float64, []bool) {
	d := rg.sg.d
	w := P[rg.sg.params[2*li+int(part)].Name]
	rows := len(x) / d
	g := make([]float64, rows)
	var keys []bool
	for r := range rows {
		z := w[d]
		for j := range d {
			z += w[j] * x[r*d+j]
		}
		g[r] = 1 / (1 + math.Exp(-z))
		if part == GateAttn && rg.sg.keys != nil {
			keys = append(keys, rg.sg.keys(li, r))
		}
	}
	return g, keys
}

func (rg refSigmoid) aux(gs [][]float64) float64 {
	var sum float64
	var cnt int
	for _, g := range gs {
		for _, v := range g {
			sum += v
			cnt++
		}
	}
	m := sum/float64(cnt) - rg.sg.target
	return rg.sg.lambda * m * m
}

// gateKeys hides a third of the keys, a different third per layer.
func gateKeys(li, r int) bool { return (r+li)%3 != 1 }

// gatedCases are grad cases with a sigmoid gate and key mask, on the plain
// attention, WithGEMM's, and WithGEMM's with the attention cache.
func gatedCases() []gradCase {
	all := gradCases()
	var out []gradCase
	for _, i := range []int{0, 1, 2, 4} {
		cs := all[i]
		for _, v := range []struct {
			name string
			opts []Option
		}{{"", nil}, {"-gemm", []Option{WithGEMM()}}, {"-gemm-cache", []Option{WithGEMM(), WithAttentionCache()}}} {
			g := cs
			g.name += v.name
			g.opts = append(append([]Option(nil), cs.opts...), v.opts...)
			out = append(out, g)
		}
	}
	return out
}

func buildGated(t *testing.T, cs gradCase) (*Net, Batch, *sigmoidGate) {
	t.Helper()
	sg := newSigmoidGate(cs.cfg.Layers, cs.cfg.Dim, 17)
	sg.keys = gateKeys
	cs.opts = append(append([]Option(nil), cs.opts...), WithGate(sg))
	n, bt := cs.build(t)
	return n, bt, sg
}

// TestGateRefLoss holds the gated Net's loss (gates, key mask, auxiliary
// loss) to the float64 reference, in evaluation and in training passes.
func TestGateRefLoss(t *testing.T) {
	for _, cs := range gatedCases() {
		t.Run(cs.name, func(t *testing.T) {
			n, bt, _ := buildGated(t, cs)
			got, err := n.Loss(bt)
			if err != nil {
				t.Fatal(err)
			}
			want := refLossGated(n, refParams(n), bt, -1, refSigmoid{n.o.gate.(*sigmoidGate)})
			if math.Abs(got.Total-want) > 1e-5*math.Abs(want) {
				t.Fatalf("gated Net loss %.9g, float64 reference %.9g", got.Total, want)
			}
			obj := n.o.objective
			if len(got.Aux) != 1 || got.Aux[0].Name != "ratio" || got.Total != float64(obj.CE)*got.CE+float64(obj.KL)*got.KL+got.Aux[0].Value {
				t.Fatalf("loss %+v: want one aux term added to the total", got)
			}
		})
	}
}

// TestGateGradientsFiniteDifference checks every trainable tensor's
// gradient — the model's (through the gated residuals and the key mask),
// LoRA's and the gate's own (through dg, the auxiliary loss and the router
// input gradient the gate adds into the residual stream) — against central
// differences of the float64 reference, as TestGradientsFiniteDifference
// does.
func TestGateGradientsFiniteDifference(t *testing.T) {
	for _, cs := range gatedCases() {
		t.Run(cs.name, func(t *testing.T) {
			n, bt, sg := buildGated(t, cs)
			if _, err := n.ForwardBackward(bt, 1); err != nil {
				t.Fatal(err)
			}
			L := len(n.layers)
			var want []string
			for i := range L {
				want = append(want, fmt.Sprintf("%dattn", i), fmt.Sprintf("%dmlp", i))
			}
			for i := L - 2; i >= 0; i-- { // backward recomputes every block but the last
				want = append(want, fmt.Sprintf("%dattn", i), fmt.Sprintf("%dmlp", i))
			}
			if got := strings.Join(sg.calls, " "); got != strings.Join(want, " ") {
				t.Fatalf("Gate calls %s, want %s", got, strings.Join(want, " "))
			}
			if sg.begun != 1 || !sg.pass.Train || sg.pass.Step != 0 || sg.pass.B != cs.b || sg.pass.T != cs.t {
				t.Fatalf("Begin called %d times, last with %+v", sg.begun, sg.pass)
			}
			ref := refSigmoid{sg}
			checkFD(t, n, 4, func(P map[string][]float64) float64 { return refLossGated(n, P, bt, 0, ref) })
		})
	}
}

// TestGateOnesBitIdentical: a gate that executes everything (g = 1, no key
// mask) and one whose key mask shows every key leave the loss and every
// gradient bit for bit those of the plain Net, on both attention paths and
// with the cache.
func TestGateOnesBitIdentical(t *testing.T) {
	for _, cs := range gatedCases() {
		t.Run(cs.name, func(t *testing.T) {
			plain, bt := cs.build(t)
			want, err := plain.ForwardBackward(bt, 0.5)
			if err != nil {
				t.Fatal(err)
			}
			for _, mode := range []string{"ones", "all-keys"} {
				sg := newSigmoidGate(cs.cfg.Layers, cs.cfg.Dim, 3)
				sg.ones = true
				if mode == "all-keys" {
					sg.ones = false
					for _, p := range sg.params { // σ(100) rounds to 1 in float32
						clear(p.Data)
						p.Data[sg.d] = 100
					}
					sg.keys = func(int, int) bool { return true }
					sg.lambda = 0
				}
				g := cs
				g.opts = append(append([]Option(nil), cs.opts...), WithGate(sg))
				n, _ := g.build(t)
				got, err := n.ForwardBackward(bt, 0.5)
				if err != nil {
					t.Fatal(err)
				}
				got.Aux = nil
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: loss %+v, plain %+v", mode, got, want)
				}
				for i, p := range plain.Params() {
					q := n.Params()[i]
					for j := range p.Grad {
						if math.Float32bits(p.Grad[j]) != math.Float32bits(q.Grad[j]) {
							t.Fatalf("%s: %s grad[%d] = %g, plain %g", mode, p.Name, j, q.Grad[j], p.Grad[j])
						}
					}
				}
			}
		})
	}
}

// TestGateKeyMaskGEMMMatchesPlain: the key mask means the same on both
// attention paths (to float32 rounding: they sum in other orders).
func TestGateKeyMaskGEMMMatchesPlain(t *testing.T) {
	cs := gradCases()[1]
	var losses []float64
	for _, opts := range [][]Option{nil, {WithGEMM()}} {
		g := cs
		g.opts = append(append([]Option(nil), cs.opts...), opts...)
		n, bt, _ := buildGated(t, g)
		l, err := n.Loss(bt)
		if err != nil {
			t.Fatal(err)
		}
		losses = append(losses, l.Total)
	}
	if math.Abs(losses[0]-losses[1]) > 1e-5*math.Abs(losses[0]) {
		t.Fatalf("masked loss: plain %.9g, gemm %.9g", losses[0], losses[1])
	}
}

func TestGateErrors(t *testing.T) {
	m := randModel(gradCases()[0].cfg, 1)
	a, b := newSigmoidGate(2, 16, 1), newSigmoidGate(2, 16, 2)
	if _, err := New(m, 1, 4, WithGate(a), WithGate(b)); err == nil || err.Error() != "train: 2 gates given, a Net takes at most one" {
		t.Errorf("two gates: %v", err)
	}
	if _, err := New(m, 1, 4, WithGate(nil)); err == nil || err.Error() != "train: the gate is nil" {
		t.Errorf("nil gate: %v", err)
	}
}
