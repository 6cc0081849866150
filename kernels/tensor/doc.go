// Package tensor holds the small float32 kernels the model runtimes are built
// from: matrix products against [out,in] weight matrices, RMSNorm, softmax and
// the SwiGLU activation. They are plain loops over []float32 in the style of
// llama2.c and llm.c: no hidden graph, no allocation, callers own the buffers.
//
// Reductions run in a fixed, documented order so that results do not depend on
// how many goroutines share the work, and every product is rounded to float32
// before it is added (an explicit conversion, which forbids the compiler from
// fusing it into an FMA). With that, single-token results match llama2.c's
// run.c compiled without FMA contraction.
package tensor
