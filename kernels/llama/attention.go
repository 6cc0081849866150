package llama

import "lrmc/kernels/tensor"

// Attend computes one query head's attention output over n cached positions:
// out = Σ_t softmax_t(q·k_t/√hd)·v_t. Key and value rows sit stride floats
// apart in k and v, which start at this head's offset within row 0. scores
// must hold n floats; it is the only per-query memory, O(n). The order of
// operations is run.c's, and both the prefill and the Decoder use this
// function, which keeps their logits identical (kernels/slicegpt's decoder
// too).
func Attend(out, q, k, v []float32, n, stride int, scores []float32) {
	hd := len(q)
	scale := tensor.Sqrt32(float32(hd))
	scores = scores[:n]
	for t := range scores {
		scores[t] = tensor.Dot(q, k[t*stride:t*stride+hd]) / scale
	}
	tensor.Softmax(scores)
	out = out[:hd]
	clear(out)
	for t, a := range scores {
		vt := v[t*stride : t*stride+hd]
		for i := range out {
			out[i] += float32(a * vt[i])
		}
	}
}
