package train

import (
	"math"
	"testing"

	"lrmc/kernels/train/optim"
)

// elemRef is one scalar of a named tensor.
type elemRef struct {
	name string
	i    int
}

// TestTaylorAgainstFiniteDifferences rebuilds scores from the float64
// reference loss alone: scaling a set of weights S by (1 ± ε) changes the
// summed loss of the batches by ±ε·Σ_S w·G to first order, G the sum of the
// batches' gradients, so |Σ_b L_b(1+ε) − L_b(1−ε)|/2ε is |Σ_S w·G|: the
// signed salience summed over batches before the absolute value, as
// Shortened LLaMA accumulates it. Over each single weight that gives the
// element-wise score, over each vector (a row with its bias entry, or a
// column) the vector-wise one. Query head 1 of layer 0 (q rows and bias, o
// columns), kv head 0 (k and v rows and biases), MLP channel 3 and the
// whole of block 0 (its norms and projection weights, not its biases) are
// checked, over two batches.
func TestTaylorAgainstFiniteDifferences(t *testing.T) {
	cs := gradCases()[1] // GQA, biases, q/k norm
	n, bt := cs.build(t)
	bt2 := Batch{Tokens: randTokens(len(bt.Tokens), cs.cfg.Vocab, 9)}
	bt2.Targets = NextTokenTargets(bt2.Tokens, nil, cs.b, cs.t)
	batches := []Batch{bt, bt2}
	tay, err := NewTaylor(n)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		if err := tay.Add(b); err != nil {
			t.Fatal(err)
		}
	}
	P := refParams(n)
	c := n.c
	hd := c.HeadDim()
	l := n.layers[0]
	// scaled is |d/dε Σ_b L_b| at scale 1 of the weights in set.
	scaled := func(set []elemRef) float64 {
		const eps = 1e-5
		orig := make([]float64, len(set))
		for k, e := range set {
			orig[k] = P[e.name][e.i]
		}
		scale := func(f float64) {
			for k, e := range set {
				P[e.name][e.i] = orig[k] * f
			}
		}
		var d float64
		for _, b := range batches {
			scale(1 + eps)
			d += refLoss(n, P, b, -1)
			scale(1 - eps)
			d -= refLoss(n, P, b, -1)
		}
		scale(1)
		return math.Abs(d) / (2 * eps)
	}
	row := func(lin linear, o int) []elemRef {
		v := make([]elemRef, 0, lin.in+1)
		for i := range lin.in {
			v = append(v, elemRef{lin.w.Name, o*lin.in + i})
		}
		if lin.b != nil {
			v = append(v, elemRef{lin.b.Name, o})
		}
		return v
	}
	col := func(lin linear, i int) []elemRef {
		v := make([]elemRef, 0, lin.out)
		for o := range lin.out {
			v = append(v, elemRef{lin.w.Name, o*lin.in + i})
		}
		return v
	}
	var head, kv, channel [][]elemRef
	for o := hd; o < 2*hd; o++ {
		head = append(head, row(l.lin[modQ], o), col(l.lin[modO], o))
	}
	for o := range hd {
		kv = append(kv, row(l.lin[modK], o), row(l.lin[modV], o))
	}
	channel = [][]elemRef{row(l.lin[modGate], 3), row(l.lin[modUp], 3), col(l.lin[modDown], 3)}
	for _, c := range []struct {
		what       string
		vectors    [][]elemRef
		elem, vect float64
	}{
		{"query head 1", head, tay.Element.Heads[0][1], tay.Vector.Heads[0][1]},
		{"kv head 0", kv, tay.Element.KVHeads[0][0], tay.Vector.KVHeads[0][0]},
		{"mlp channel 3", channel, tay.Element.Channels[0][3], tay.Vector.Channels[0][3]},
	} {
		var elem, vect float64
		for _, v := range c.vectors {
			vect += scaled(v)
			for _, e := range v {
				elem += scaled([]elemRef{e})
			}
		}
		if math.Abs(c.elem-elem) > 1e-4*elem || math.Abs(c.vect-vect) > 1e-4*vect {
			t.Errorf("%s: element-wise %.8g (finite differences %.8g), vector-wise %.8g (%.8g)", c.what, c.elem, elem, c.vect, vect)
		}
		if !(c.vect < c.elem) {
			t.Errorf("%s: vector-wise %g not below element-wise %g (|Σ| ≤ Σ||)", c.what, c.vect, c.elem)
		}
	}
	// The block's element-wise score covers every weight of its norms and
	// projections, and no bias.
	var block float64
	weights := []*optim.Param{l.attnNorm, l.ffnNorm, l.qNorm, l.kNorm}
	for _, lin := range l.lin {
		weights = append(weights, lin.w)
	}
	for _, p := range weights {
		for i := range p.Data {
			block += scaled([]elemRef{{p.Name, i}})
		}
	}
	if b := tay.Element.Blocks[0]; math.Abs(b-block) > 1e-4*block {
		t.Errorf("block 0: element-wise %.8g, finite differences over its weights %.8g", b, block)
	}
	// Scoring each batch on its own and adding (|w·g₁| + |w·g₂|), which the
	// references do not do, scores higher wherever the batches' signs
	// differ: checked on Wq.
	var perBatch, summed float64
	q := l.lin[modQ].w
	for i := range q.Data {
		summed += scaled([]elemRef{{q.Name, i}})
		for _, b := range []Batch{bt, bt2} {
			batches = []Batch{b}
			perBatch += scaled([]elemRef{{q.Name, i}})
		}
		batches = []Batch{bt, bt2}
	}
	if !(perBatch > summed*(1+1e-3)) {
		t.Errorf("per-batch absolute scores %g not above the summed-gradient score %g", perBatch, summed)
	}
	if tay.Batches != 2 {
		t.Errorf("batches %d", tay.Batches)
	}
	plain, err := New(randModel(smallCfg, 1), 1, 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewTaylor(plain); err == nil ||
		err.Error() != "train: taylor importance needs the gradient of every weight; build the net with FullFineTune" {
		t.Errorf("NewTaylor without weight gradients: %v", err)
	}
}
