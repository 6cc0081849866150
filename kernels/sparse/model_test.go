package sparse

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"lrmc/internal/shareddata"
	"lrmc/kernels/calibstats"
	"lrmc/kernels/llama"
	"lrmc/kernels/llama2c"
)

// gramError is ‖(W − Ŵ)Xᵀ‖² = Σ_r d_rᵀ G d_r for G = XᵀX.
func gramError(w, pruned []float32, g []float64, rows, cols int) float64 {
	var e float64
	d := make([]float64, cols)
	for r := range rows {
		for j := range cols {
			d[j] = float64(w[r*cols+j]) - float64(pruned[r*cols+j])
		}
		for i := range cols {
			for j := range cols {
				e += d[i] * g[i*cols+j] * d[j]
			}
		}
	}
	return e
}

// TestPruneStories260K prunes the real stories260K with each method on
// statistics of its dense prefix: every method reaches exactly 50% (and
// 2:4) over the seven projections of every block, embeddings and norms stay
// untouched, and on every projection SparseGPT's reconstruction error over
// the calibration tokens is below Wanda's and magnitude's.
func TestPruneStories260K(t *testing.T) {
	dense, err := llama2c.Load(shareddata.Path(t, "models", "stories260K", "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	c := dense.Config
	const samples, seqLen = 8, 64
	r := rand.New(rand.NewPCG(9, 9))
	toks := make([]int32, samples*seqLen)
	for i := range toks {
		toks[i] = int32(r.IntN(c.Vocab))
	}
	h := dense.Embed(toks, nil)
	stats := make([]*calibstats.Layer, c.Layers)
	for i := range c.Layers {
		if stats[i], err = calibstats.Collect(context.Background(), dense, i, h, samples, seqLen, calibstats.Options{Hessian: true}, nil); err != nil {
			t.Fatal(err)
		}
		h = dense.Block(i, h, samples, seqLen)
	}
	nm, _ := ParseNM("2:4")
	for _, p := range []Pattern{{Ratio: 0.5}, nm} {
		pruned := map[Method]*llama.Model{}
		for _, method := range []Method{MethodMagnitude, MethodWanda, MethodSparseGPT} {
			m := dense.Clone()
			res, err := Prune(m, method, p, stats, SparseGPTOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Sparsity() != 0.5 {
				t.Fatalf("%s %s: sparsity %d/%d", method, p, res.Pruned, res.Total)
			}
			if !slices.Equal(m.Embedding, dense.Embedding) || !slices.Equal(m.Layers[2].FFNNorm, dense.Layers[2].FFNNorm) {
				t.Fatalf("%s changed weights outside the projections", method)
			}
			pruned[method] = m
		}
		for i := range c.Layers {
			for k, pr := range Projections(dense, i) {
				site, _ := stats[i].Site(pr.Site)
				errOf := map[Method]float64{}
				for method, m := range pruned {
					errOf[method] = gramError(*pr.W, *Projections(m, i)[k].W, site.Gram, pr.Rows, pr.Cols)
				}
				if !(errOf[MethodSparseGPT] < errOf[MethodWanda] && errOf[MethodSparseGPT] < errOf[MethodMagnitude]) {
					t.Errorf("%s block %d %s: reconstruction error sparsegpt %.4g, wanda %.4g, magnitude %.4g",
						p, i, pr.Name, errOf[MethodSparseGPT], errOf[MethodWanda], errOf[MethodMagnitude])
				}
			}
		}
	}
	if _, err := Prune(dense.Clone(), MethodWanda, Pattern{Ratio: 0.5}, stats[:2], SparseGPTOptions{}); err == nil || !strings.Contains(err.Error(), "needs statistics of 5 blocks, got 2") {
		t.Fatalf("short statistics: %v", err)
	}
	noH := []*calibstats.Layer{}
	for i := range c.Layers {
		l := *stats[i]
		l.Sites = slices.Clone(l.Sites)
		for j := range l.Sites {
			l.Sites[j].Gram = nil
		}
		noH = append(noH, &l)
	}
	if _, err := Prune(dense.Clone(), MethodSparseGPT, Pattern{Ratio: 0.5}, noH, SparseGPTOptions{}); err == nil || !strings.Contains(err.Error(), "block 0 q: calibration statistics: attn_in: XᵀX was not gathered") {
		t.Fatalf("no Hessian: %v", err)
	}
	if _, err := Prune(dense.Clone(), "obs", Pattern{Ratio: 0.5}, nil, SparseGPTOptions{}); err == nil || !strings.Contains(err.Error(), `unknown method "obs"`) {
		t.Fatalf("unknown method: %v", err)
	}
}
