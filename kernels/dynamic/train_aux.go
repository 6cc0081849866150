package dynamic

import (
	"math"

	"lrmc/kernels/train"
)

// Aux returns the method's auxiliary loss over every routed part of the
// pass and keeps its gradients (see TrainConfig):
//
//   - SkipGPT: λ·|(1−s) − m|, m the mean over routed parts of the
//     fraction of rows executing it, as SkipGPT's trainer computes it
//     (the mean of the hard gates, whose gradient is the soft
//     probabilities', per the straight-through estimator);
//   - D-LLM: its active loss (Jiang et al., NeurIPS 2024; ActiveLoss in
//     Jyk-122/D-LLM llama/model_train.py), α·mean_t |a_t − (1−s)|, a_t the
//     fraction of the model's layers token t executes (a dense layer
//     counting as executed), its gradient through the hard decisions'
//     soft probabilities; unlike the reference, every row counts (it
//     leaves out the first 2 tokens, which its routers always execute);
//   - MoD: the predictors' binary cross-entropy against the top-k
//     membership, averaged over routed parts and rows, times
//     PredictorWeight.
//
// A frozen gate has none.
func (g *Gate) Aux(gradScale float32, backward bool) []train.AuxLoss {
	if g.frozen {
		return nil
	}
	parts := g.routedParts()
	if len(parts) == 0 {
		return nil
	}
	n := float64(len(parts) * g.rows)
	target := 1 - g.cfg.Skip
	switch g.rs.Method {
	case MoD:
		var bce float64
		w := g.cfg.PredictorWeight
		for _, st := range parts {
			for r, z := range st.pred[:g.rows] {
				y := 0.0
				if st.sel[r] {
					y = 1
				}
				zf := float64(z)
				bce += math.Max(zf, 0) - zf*y + math.Log1p(math.Exp(-math.Abs(zf)))
				st.dPred[r] = float32(float64(gradScale) * w * (1/(1+math.Exp(-zf)) - y) / n)
			}
		}
		g.aux = []train.AuxLoss{{Name: "mod_predictor_bce", Value: w * bce / n}}
	case SkipGPT:
		m := g.ExecuteFraction()
		grad := float64(gradScale) * g.cfg.Lambda * sign(m-target) / n
		for _, st := range parts {
			for r := range st.dAux {
				st.dAux[r] = grad
			}
		}
		g.aux = []train.AuxLoss{{Name: "skipgpt_ratio", Value: g.cfg.Lambda * math.Abs(target-m)}}
	case DLLM:
		// Per token, the mean over every layer (a dense one counts as
		// executed) of its execution, against the target, in L1.
		layers := float64(len(g.st))
		var value float64
		for r := range g.rows {
			a := 0.0
			for i := range g.st {
				if st := &g.st[i][Attn]; !st.routed || st.exec[r] {
					a++
				}
			}
			a /= layers
			value += math.Abs(a - target)
			grad := float64(gradScale) * g.cfg.Lambda * sign(a-target) / (layers * float64(g.rows))
			for _, st := range parts {
				st.dAux[r] = grad
			}
		}
		g.aux = []train.AuxLoss{{Name: "dllm_active", Value: g.cfg.Lambda * value / float64(g.rows)}}
	}
	return g.aux
}

func sign(x float64) float64 {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

// routedParts are the parts a router decides, D-LLM's blocks counted once.
func (g *Gate) routedParts() []*partState {
	var out []*partState
	for i := range g.st {
		for p := range g.st[i] {
			if g.rs.Method.Whole() && Part(p) == MLP {
				continue
			}
			if st := &g.st[i][p]; st.routed {
				out = append(out, st)
			}
		}
	}
	return out
}

// Fractions are, per layer, the fraction of the last pass's rows that
// executed its attention and its MLP (1 for a dense part).
func (g *Gate) Fractions() [][2]float64 {
	out := make([][2]float64, len(g.st))
	for i := range g.st {
		for p := range g.st[i] {
			out[i][p] = g.st[i][p].fraction(g.rows)
		}
	}
	return out
}

func (st *partState) fraction(rows int) float64 {
	if !st.routed || rows == 0 {
		return 1
	}
	n := 0
	for _, e := range st.exec[:rows] {
		if e {
			n++
		}
	}
	return float64(n) / float64(rows)
}

// ExecuteFraction is the mean, over the routed parts of the last pass (a
// D-LLM block counted once), of the fraction of rows that executed them:
// the realised execute fraction the ratio losses drive toward 1 − s.
func (g *Gate) ExecuteFraction() float64 {
	parts := g.routedParts()
	if len(parts) == 0 {
		return 1
	}
	var s float64
	for _, st := range parts {
		s += st.fraction(g.rows)
	}
	return s / float64(len(parts))
}

// PredictorAgreement is, for MoD in an evaluation pass of a trainable gate,
// the fraction of routed rows on which the causal predictors' decision
// (logit > 0) agrees with the top-k selection they are trained to predict;
// 0 otherwise.
func (g *Gate) PredictorAgreement() float64 {
	if g.rs.Method != MoD || g.frozen || g.pass.Train {
		return 0
	}
	parts := g.routedParts()
	var agree, n int
	for _, st := range parts {
		for r, e := range st.exec[:g.rows] {
			if e == st.sel[r] {
				agree++
			}
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return float64(agree) / float64(n)
}
