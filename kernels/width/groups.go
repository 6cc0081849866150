package width

import "lrmc/kernels/llama"

// groupParams is the number of weights one attention group and one MLP
// channel of block shape c hold: a kv head's rep query heads (Wq rows and Wo
// columns), its Wk and Wv rows, and the biases with them; gate and up rows
// and a down column.
func groupParams(c llama.Config) (attn, mlp int) {
	rep, hd, d := c.Heads/c.KVHeads, c.HeadDim(), c.Dim
	attn = (2*rep + 2) * hd * d
	if c.QKVBias {
		attn += (rep + 2) * hd
	}
	return attn, 3 * d
}

// headsToGroups adds per-query-head scores into their kv group: query head
// h reads kv head h/rep.
func headsToGroups(heads []float64, rep int) []float64 {
	g := make([]float64, len(heads)/rep)
	for h, s := range heads {
		g[h/rep] += s
	}
	return g
}

// columnSums returns, for each column j of w [out, in], Σ_i f(w[i, j]).
func columnSums(w []float32, in int, f func(x float32) float64) []float64 {
	s := make([]float64, in)
	for r := 0; r+in <= len(w); r += in {
		for j, x := range w[r : r+in] {
			s[j] += f(x)
		}
	}
	return s
}

// sumRuns adds consecutive runs of size values.
func sumRuns(v []float64, size int) []float64 {
	out := make([]float64, len(v)/size)
	for i, x := range v {
		out[i/size] += x
	}
	return out
}
