package train

import (
	"math"
	"testing"
)

// elemRef is one scalar of a named tensor.
type elemRef struct {
	name string
	i    int
}

// TestTaylorAgainstFiniteDifferences rebuilds scores from the float64
// reference loss alone: scaling a set of weights S by (1 ± ε) changes the
// loss by ±ε·Σ_S w·∂L/∂w to first order, so |L(1+ε) − L(1−ε)|/2ε is |Σ_S w·g|.
// Over each single weight that gives the element-wise score, over each
// vector (a row with its bias entry, or a column) the vector-wise one. Query
// head 1 of layer 0 (q rows and bias, o columns), kv head 0 (k and v rows
// and biases) and MLP channel 3 are checked, summed over two batches.
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
	scaled := func(b Batch, set []elemRef) float64 {
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
		scale(1 + eps)
		lp := refLoss(n, P, b, -1)
		scale(1 - eps)
		lm := refLoss(n, P, b, -1)
		scale(1)
		return math.Abs(lp-lm) / (2 * eps)
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
		for _, b := range batches {
			for _, v := range c.vectors {
				vect += scaled(b, v)
				for _, e := range v {
					elem += scaled(b, []elemRef{e})
				}
			}
		}
		if math.Abs(c.elem-elem) > 1e-4*elem || math.Abs(c.vect-vect) > 1e-4*vect {
			t.Errorf("%s: element-wise %.8g (finite differences %.8g), vector-wise %.8g (%.8g)", c.what, c.elem, elem, c.vect, vect)
		}
		if !(c.vect < c.elem) {
			t.Errorf("%s: vector-wise %g not below element-wise %g (|Σ| ≤ Σ||)", c.what, c.vect, c.elem)
		}
	}
	// The block's element-wise score covers every weight: more than its
	// groups alone, which leave out the norms.
	var groups float64
	for _, s := range [][]float64{tay.Element.Heads[0], tay.Element.KVHeads[0], tay.Element.Channels[0]} {
		for _, x := range s {
			groups += x
		}
	}
	if b := tay.Element.Blocks[0]; !(b > groups) {
		t.Errorf("block 0 score %g not above its groups' %g", b, groups)
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
