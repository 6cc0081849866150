package attention

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// CausalAt with every position queried is Causal bit for bit; with chosen
// positions each query's row is Causal's row at its position (to rounding:
// its tile stacks other queries); the thread count changes no bit.
func TestCausalAtMatchesCausal(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	p := newProblem(r, 2, 300, 4, 2, 16, 3) // three key tiles per sequence
	qd := p.heads * p.hd
	want := p.causal()

	qoff := []int{0, p.t, 2 * p.t}
	var qpos []int32
	for range p.b {
		for pos := range p.t {
			qpos = append(qpos, int32(pos))
		}
	}
	got := make([]float32, len(want))
	CausalAt(got, p.q, p.k, p.v, p.b, p.t, qoff, qpos, p.heads, p.kvHeads, p.hd)
	if !slices.Equal(got, want) {
		t.Fatal("every position queried: CausalAt differs from Causal")
	}

	// About 40% of the positions of sequence 0, none of sequence 1's
	// first 200, then every third.
	qoff, qpos = []int{0}, nil
	var rows []int
	for s := range p.b {
		for pos := range p.t {
			if (s == 0 && r.Float64() < 0.4) || (s == 1 && pos >= 200 && pos%3 == 0) {
				qpos = append(qpos, int32(pos))
				rows = append(rows, s*p.t+pos)
			}
		}
		qoff = append(qoff, len(qpos))
	}
	q := make([]float32, len(rows)*qd)
	for j, row := range rows {
		copy(q[j*qd:(j+1)*qd], p.q[row*qd:(row+1)*qd])
	}
	sub := make([]float32, len(rows)*qd)
	CausalAt(sub, q, p.k, p.v, p.b, p.t, qoff, qpos, p.heads, p.kvHeads, p.hd)
	var worst float64
	for j, row := range rows {
		for e := range qd {
			worst = math.Max(worst, math.Abs(float64(sub[j*qd+e]-want[row*qd+e])))
		}
	}
	if worst > 1e-5 {
		t.Fatalf("chosen positions differ from Causal's rows by %.3g", worst)
	}
	prev := runtime.GOMAXPROCS(1)
	one := make([]float32, len(sub))
	CausalAt(one, q, p.k, p.v, p.b, p.t, qoff, qpos, p.heads, p.kvHeads, p.hd)
	runtime.GOMAXPROCS(prev)
	if !slices.Equal(one, sub) {
		t.Error("one thread gives other bits")
	}
}

func TestCausalAtRejectsUnorderedPositions(t *testing.T) {
	defer func() {
		if r, _ := recover().(string); !strings.Contains(r, "positions must increase") {
			t.Fatalf("panic %v, want one about increasing positions", r)
		}
	}()
	k := make([]float32, 4*8)
	q := make([]float32, 2*8)
	CausalAt(make([]float32, 2*8), q, k, k, 1, 4, []int{0, 2}, []int32{2, 1}, 1, 1, 8)
}
