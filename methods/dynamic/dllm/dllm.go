// Package dllm is D-LLM (Jiang et al. 2024): prune: {paradigm: "dynamic",
// method: "dllm", ratio: s} trains one Linear(d→2) router per block that
// decides, per token, whether the whole block runs (hard Gumbel-softmax,
// τ = 1, in training; argmax in evaluation), with its compute-ratio loss
// (α·|executed fraction of layers − (1−s)| per token, α = 1) pulling the
// executed fraction to 1−s; the first two blocks run unrouted, as its
// reference code has them (denseFirst). A token that skips a block has no
// key/value there (the paper's KV eviction), and the computation is
// skipped for real (kernels/dynamic).
package dllm

import (
	kdyn "lrmc/kernels/dynamic"
	"lrmc/methods/dynamic"
)

func init() {
	dynamic.Register(kdyn.DLLM, dynamic.Lambda(kdyn.DefaultDLLMAlpha), dynamic.DenseFirst(2))
}
