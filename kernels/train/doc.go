// Package train runs training on lrmc's CPU kernels: a forward pass that
// keeps what backward needs, hand-written backward passes for every op of a
// llama.Model (embedding, RMSNorm, linear with optional bias, both RoPE
// styles, causal grouped-query attention, Qwen3's per-head q/k RMSNorm,
// SwiGLU, residuals, final norm, shared or separate classifier), next-token
// cross-entropy with a loss mask and logit distillation, LoRA adapters,
// first-order Taylor importance, and a Trainer that drives optim.AdamW.
//
// A Gate (WithGate) gates each block per row — h1 = h + g_a ⊙ Attn(h),
// out = h1 + g_m ⊙ MLP(h1) — and may hide the keys of skipped rows from the
// others' attention: dynamic pruning's routers (kernels/dynamic) train and
// run through it, its auxiliary losses joining the objective. Without a
// gate every result is bit for bit what it is without the hook.
//
// As in llm.c there is no autograd graph: forward and backward are plain
// functions over buffers allocated once by New. Memory is bounded by
// checkpointing at block boundaries: the forward pass keeps only each
// block's input, and the backward pass recomputes one block's activations at
// a time just before differentiating it, so the peak is the checkpoints plus
// a single block's activations (see PeakBytes). Every reduction runs in a
// fixed order, so results are bit-identical for any GOMAXPROCS and reruns.
package train
