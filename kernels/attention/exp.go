package attention

import "math"

// Constants of tensor.FastExp32, which expShift follows step for step:
// Cody–Waite's split of ln 2 and Cephes' expf polynomial for e^r − 1 − r on
// |r| ≤ ln2/2.
const (
	log2e   = 1.44269504088896341
	ln2Hi   = 0.693359375
	ln2Lo   = -2.12194440e-4
	roundTo = 12582912 // 1.5·2²³: adding it rounds a float32 below 2²² to an integer
	expP0   = 1.9875691500e-4
	expP1   = 1.3981999507e-3
	expP2   = 8.3334519073e-3
	expP3   = 4.1665795894e-2
	expP4   = 1.6666665459e-1
	expP5   = 5.0000001201e-1
	// clampLo bounds the argument below so 2ⁿ is always a normal float32
	// and no lane needs tensor.FastExp32's subnormal path. e^−87 ≈ 1.6e−38
	// instead of a smaller (or zero) weight changes a softmax whose largest
	// weight is 1 by less than 2e−38.
	clampLo = -87
)

// expShiftSum sets x[i] = e^max(x[i]−shift, −87), for x[i]−shift ≤ 0 as in
// a softmax shifted by its maximum, and returns the sum of the results.
// Above −87 each result is tensor.FastExp32(x[i]−shift) bit for bit (within
// 2 ulps of e^x); below, e^−87. The sum is taken in eight lanes (element i
// in lane i mod 8, in index order) reduced pairwise, then the elements past
// the last multiple of eight in order. On amd64 with AVX2 the eight lanes
// are vector lanes in assembly that performs the same IEEE operations in the
// same order (no FMA), so every implementation gives the same bits.
func expShiftSum(x []float32, shift float32) float32 {
	n := len(x) &^ 7
	var lanes [8]float32
	if useAVX2 && n > 0 {
		expShiftAVX2(&x[0], n, shift, &lanes)
	} else {
		expShiftGo(x[:n], shift)
		for i, e := range x[:n] {
			lanes[i%8] += e
		}
	}
	tail := x[n:]
	expShiftGo(tail, shift)
	sum := ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]))
	for _, e := range tail {
		sum += e
	}
	return sum
}

// rowMax is the largest of init and the (finite) elements of x.
func rowMax(x []float32, init float32) float32 {
	n := 0
	if useAVX2 && len(x) >= 8 {
		n = len(x) &^ 7
		init = maxAVX2(&x[0], n, init)
	}
	for _, v := range x[n:] {
		if v > init {
			init = v
		}
	}
	return init
}

// rescaleAdd sets o[i] = o[i]·a + x[i]: after every key tile it runs over
// as many elements as the P·V product writes, so it is vectorized too.
func rescaleAdd(o, x []float32, a float32) {
	x = x[:len(o)]
	n := 0
	if useAVX2 {
		n = len(o) &^ 7
		if n > 0 {
			rescaleAddAVX2(&o[0], &x[0], n, a)
		}
	}
	for i := n; i < len(o); i++ {
		o[i] = float32(o[i]*a) + x[i] // no FMA, as in the assembly
	}
}

// expShiftGo is expShift in Go. Every product is converted to float32 before
// it is added, which forbids FMA fusion.
func expShiftGo(x []float32, shift float32) {
	for i, v := range x {
		v -= shift
		if v < clampLo {
			v = clampLo
		}
		t := float32(v*log2e) + roundTo
		fn := t - roundTo
		n := int32(math.Float32bits(t)) - int32(math.Float32bits(roundTo))
		r := float32(v-float32(fn*ln2Hi)) - float32(fn*ln2Lo)
		p := float32(expP0*r) + expP1
		p = float32(p*r) + expP2
		p = float32(p*r) + expP3
		p = float32(p*r) + expP4
		p = float32(p*r) + expP5
		p = float32(float32(p*float32(r*r))+r) + 1
		x[i] = p * math.Float32frombits(uint32(n+127)<<23)
	}
}
