// Package skipgpt is SkipGPT (Zhao et al. 2025): prune: {paradigm:
// "dynamic", method: "skipgpt", ratio: s} trains separate attention and MLP
// routers Linear(d→2) per block (hard Gumbel-softmax in training, argmax in
// evaluation) with the loss LM + λ·|(1−s) − mean execute probability|
// (λ = 20), stage 1 with the base frozen (lr 2e-3), then optionally LoRA
// with the routers frozen (stage 2, lr 2e-4: loraSteps). A token that
// skips attention still leaves its key/value (projected from its block
// input) for later tokens; only its query, attention and output
// projection are skipped, for real (kernels/dynamic).
package skipgpt

import (
	kdyn "lrmc/kernels/dynamic"
	"lrmc/methods/dynamic"
)

func init() {
	dynamic.Register(kdyn.SkipGPT, dynamic.Lambda(kdyn.DefaultSkipGPTLambda), dynamic.DenseFirst(0))
}
