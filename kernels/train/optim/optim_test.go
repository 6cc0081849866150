package optim

import (
	"math"
	"strings"
	"testing"
)

// TestAdamWTwoSteps follows two AdamW steps by hand in float64 (β1 = 0.9,
// β2 = 0.999, ε = 1e-8, λ = 0.1, lr 0.01 then 0.005) for one decayed and one
// exempt parameter.
func TestAdamWTwoSteps(t *testing.T) {
	w := &Param{Name: "w", Data: []float32{0.5, -1.5}, Grad: make([]float32, 2)}
	b := &Param{Name: "b", Data: []float32{2}, Grad: make([]float32, 1), NoDecay: true}
	o := NewAdamW([]*Param{w, b}, 0.1)
	grads := [2][]float64{{0.2, -0.4, 1.0}, {-0.1, 0.3, 0.5}}
	lrs := []float64{0.01, 0.005}
	p := []float64{0.5, -1.5, 2}
	decay := []bool{true, true, false}
	m, v := make([]float64, 3), make([]float64, 3)
	for s, g := range grads {
		w.Grad[0], w.Grad[1], b.Grad[0] = float32(g[0]), float32(g[1]), float32(g[2])
		o.Step(lrs[s])
		lr, step := lrs[s], float64(s+1)
		for i := range p {
			if decay[i] {
				p[i] *= 1 - lr*0.1
			}
			m[i] = 0.9*m[i] + 0.1*g[i]
			v[i] = 0.999*v[i] + 0.001*g[i]*g[i]
			mh, vh := m[i]/(1-math.Pow(0.9, step)), v[i]/(1-math.Pow(0.999, step))
			p[i] -= lr * mh / (math.Sqrt(vh) + 1e-8)
		}
	}
	got := []float32{w.Data[0], w.Data[1], b.Data[0]}
	for i := range p {
		if math.Abs(float64(got[i])-p[i]) > 2e-7 {
			t.Errorf("param %d = %.9g, hand-computed %.9g", i, got[i], p[i])
		}
	}
	// Worked by hand: step 1 decays and then moves every weight by
	// lr·sign(g) (m̂/√v̂ = ±1); step 2 decays and moves by lr·m̂/√v̂, e.g. for
	// w[0]: m̂ = 0.008/0.19, v̂ = 4.996e-5/0.001999, 0.4895·0.9995 − 0.005·0.266337.
	for i, want := range []float64{0.48792357, -1.48730912, 1.98533910} {
		if math.Abs(p[i]-want) > 2e-8 {
			t.Errorf("float64 loop gives param %d = %.9g, by hand %.9g", i, p[i], want)
		}
	}
	if o.Steps() != 2 {
		t.Errorf("steps %d, want 2", o.Steps())
	}
}

func TestClipGlobalNorm(t *testing.T) {
	a := &Param{Name: "a", Grad: []float32{3, 0}}
	b := &Param{Name: "b", Grad: []float32{4}}
	if n := ClipGlobalNorm([]*Param{a, b}, 1); n != 5 {
		t.Fatalf("norm %g, want 5", n)
	}
	c := float32(1 / (5 + 1e-6))
	if a.Grad[0] != 3*c || b.Grad[0] != 4*c {
		t.Fatalf("clipped grads %v %v", a.Grad, b.Grad)
	}
	// Below the limit nothing changes.
	if n := ClipGlobalNorm([]*Param{a, b}, 2); math.Abs(n-1) > 1e-6 || b.Grad[0] != 4*c {
		t.Fatalf("norm %g, grads %v", n, b.Grad)
	}
}

func TestCosine(t *testing.T) {
	c := Cosine{PeakLR: 1e-3, Total: 10, WarmupRatio: 0.25} // ⌈2.5⌉ = 3 warmup steps
	want := []float64{0, 1e-3 / 3, 2e-3 / 3, 1e-3}
	for s, w := range want {
		if got := c.LR(s); math.Abs(got-w) > 1e-15 {
			t.Errorf("LR(%d) = %g, want %g", s, got, w)
		}
	}
	// Halfway through the decay (step 3 + 3.5) the multiplier is 1/2.
	if got := (Cosine{PeakLR: 2, Total: 10, WarmupRatio: 0.3}).LR(3); got != 2 {
		t.Errorf("LR at end of warmup %g", got)
	}
	if got := c.LR(10); math.Abs(got) > 1e-18 {
		t.Errorf("LR at the end %g, want 0", got)
	}
	if got, w := (Cosine{PeakLR: 1, Total: 9, WarmupRatio: 0.2}).LR(5), 0.5*(1+math.Cos(math.Pi*3/7)); math.Abs(got-w) > 1e-15 {
		t.Errorf("LR(5) = %g, want %g", got, w)
	}
}

func TestStateRoundTripAndErrors(t *testing.T) {
	mk := func(name string, n int) *Param {
		return &Param{Name: name, Data: make([]float32, n), Grad: make([]float32, n)}
	}
	a, b := mk("a", 3), mk("b", 2)
	o := NewAdamW([]*Param{a, b}, 0.01)
	for i := range a.Grad {
		a.Grad[i] = float32(i) - 1
	}
	b.Grad[1] = 7
	o.Step(0.1)
	data, _ := o.MarshalBinary()

	a2, b2 := mk("a", 3), mk("b", 2)
	o2 := NewAdamW([]*Param{a2, b2}, 0)
	if err := o2.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	again, _ := o2.MarshalBinary()
	if string(again) != string(data) || o2.WeightDecay != 0.01 || o2.Steps() != 1 || a2.Data[0] != a.Data[0] {
		t.Fatal("round trip changed the state")
	}
	for _, c := range []struct {
		ps   []*Param
		data []byte
		want string
	}{
		{[]*Param{mk("a", 3)}, data, "optim: AdamW state holds 2 parameters, optimizer has 1"},
		{[]*Param{mk("a", 3), mk("c", 2)}, data, `optim: AdamW state: parameter 1 is "b", optimizer has "c"`},
		{[]*Param{mk("a", 4), mk("b", 2)}, data, "optim: AdamW state: a has 3 values, parameter has 4"},
		{[]*Param{mk("a", 3), mk("b", 2)}, data[:len(data)-3], "optim: AdamW state: reading b second moment: unexpected EOF"},
		{[]*Param{mk("a", 3), mk("b", 2)}, append(append([]byte(nil), data...), 0), "optim: AdamW state has 1 trailing bytes"},
		{[]*Param{mk("a", 3), mk("b", 2)}, []byte("nope"), `optim: AdamW state does not start with "LRMCADW1"`},
	} {
		err := NewAdamW(c.ps, 0).UnmarshalBinary(c.data)
		if err == nil || err.Error() != c.want {
			t.Errorf("error %v, want %q", err, c.want)
		}
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), `"a" appears twice`) {
			t.Errorf("duplicate names: panic %v", r)
		}
	}()
	NewAdamW([]*Param{mk("a", 1), mk("a", 1)}, 0)
}

func TestConstantSchedule(t *testing.T) {
	c := Constant{PeakLR: 1e-3, Total: 10, WarmupRatio: 0.2}
	for s, want := range []float64{0, 5e-4, 1e-3, 1e-3, 1e-3} {
		if got := c.LR(s); math.Abs(got-want) > 1e-18 {
			t.Errorf("step %d: lr %g, want %g", s, got, want)
		}
	}
	if c.LR(9) != 1e-3 || c.Steps() != 10 || c.Peak() != 1e-3 {
		t.Errorf("after warmup: %g, steps %d, peak %g", c.LR(9), c.Steps(), c.Peak())
	}
}
