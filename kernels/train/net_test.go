package train

import (
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"lrmc/kernels/llama"
	"lrmc/kernels/train/optim"
)

// TestForwardMatchesLlama holds the training forward to the inference
// prefill: same products and rotary tables (llama3 scaling, both styles,
// explicit head size), and fresh LoRA adapters (B = 0) change nothing. The
// inference prefill runs attention flash style (kernels/attention), whose
// online softmax sums in another order than the training forward's
// per-query softmax, so the two agree to float32 rounding, not bit for bit.
func TestForwardMatchesLlama(t *testing.T) {
	for _, cs := range gradCases() {
		t.Run(cs.name, func(t *testing.T) {
			n, bt := cs.build(t)
			for _, a := range n.Adapters() {
				clear(a.B.Data)
			}
			m := n.Model()
			n.train = false
			n.forward(bt.Tokens)
			h := m.Embed(bt.Tokens, nil)
			for j, v := range h {
				if math.Float32bits(v) != math.Float32bits(n.ckpt[0][j]) {
					t.Fatalf("embedding [%d]: train %g, llama %g", j, n.ckpt[0][j], v)
				}
			}
			for i := range m.Layers {
				// Compare each block on the training forward's own input, so
				// differences do not compound.
				h = m.Block(i, n.ckpt[i], cs.b, cs.t)
				var scale float64
				for _, v := range h {
					scale = math.Max(scale, math.Abs(float64(v)))
				}
				for j, v := range h {
					if d := math.Abs(float64(v) - float64(n.ckpt[i+1][j])); d > 2e-6*scale {
						t.Fatalf("block %d output [%d]: train %g, llama %g (%.2g of the scale)", i, j, n.ckpt[i+1][j], v, d/scale)
					}
				}
			}
			// The loss from llama's logits, in float64.
			logits := m.Forward(bt.Tokens, cs.b, cs.t)
			var ce float64
			var count int
			for r, tg := range bt.Targets {
				if tg < 0 {
					continue
				}
				mx, lse := logSumExp(logits[r*cs.cfg.Vocab : (r+1)*cs.cfg.Vocab])
				ce += lse - float64(logits[r*cs.cfg.Vocab+int(tg)]-mx)
				count++
			}
			got, err := n.Loss(bt)
			if err != nil {
				t.Fatal(err)
			}
			if got.Tokens != count || math.Abs(got.CE-ce/float64(count)) > 1e-5*math.Abs(got.CE) {
				t.Fatalf("loss %v over %d tokens, from llama's logits %v over %d", got.CE, got.Tokens, ce/float64(count), count)
			}
		})
	}
}

// TestGradientsThreadIndependent checks that gradients are bit-identical
// for GOMAXPROCS 1, 2 and 5, on a shape big enough for the products to
// split, with the per-row steps split row by row. (At GOMAXPROCS 1 every
// split runs as one loop in row order: the serial code, bit for bit.)
func TestGradientsThreadIndependent(t *testing.T) {
	cfg := llama.Config{Dim: 64, HiddenDim: 96, Layers: 2, Heads: 4, KVHeads: 2, Vocab: 300, SeqLen: 32,
		NormEps: 1e-5, RopeTheta: 10000}
	cs := gradCase{cfg: cfg, b: 2, t: 32, noisy: true, opts: []Option{FullFineTune(),
		WithLoRA(LoRAConfig{Rank: 4, Alpha: 8, Dropout: 0.1, Targets: []string{QProj, DownProj}, Seed: 3})}}
	for _, gemmOn := range []bool{false, true} {
		if gemmOn {
			cs.opts = append(cs.opts, WithGEMM())
		}
		threadIndependent(t, cs)
	}
	// LoRA alone (frozen norms: their backward splits rows too), with q/k
	// norms and the GEMM products.
	cfg.QKNorm = true
	threadIndependent(t, gradCase{cfg: cfg, b: 2, t: 32, noisy: true, opts: []Option{WithGEMM(),
		WithLoRA(LoRAConfig{Rank: 4, Alpha: 8, Dropout: 0.1, Targets: []string{QProj, VProj, UpProj}, Seed: 3})}})
}

func threadIndependent(t *testing.T, cs gradCase) {
	// Split the element-wise steps and the positions' losses down to
	// single rows, so that these small shapes exercise the splits.
	defer func(g int) { rowsGrain = g }(rowsGrain)
	rowsGrain = 1
	var ref [][]float32
	var refLoss Loss
	for _, procs := range []int{1, 2, 5} {
		old := runtime.GOMAXPROCS(procs)
		n, bt := cs.build(t)
		loss, err := n.ForwardBackward(bt, 1)
		runtime.GOMAXPROCS(old)
		if err != nil {
			t.Fatal(err)
		}
		if procs == 1 {
			refLoss = loss
		} else if !reflect.DeepEqual(loss, refLoss) {
			t.Fatalf("GOMAXPROCS=%d: loss %+v, GOMAXPROCS=1 gives %+v", procs, loss, refLoss)
		}
		for i, p := range n.Params() {
			if ref == nil || len(ref) <= i {
				ref = append(ref, p.Grad)
				continue
			}
			for j := range p.Grad {
				if math.Float32bits(p.Grad[j]) != math.Float32bits(ref[i][j]) {
					t.Fatalf("GOMAXPROCS=%d: %s grad[%d] = %g, GOMAXPROCS=1 gives %g", procs, p.Name, j, p.Grad[j], ref[i][j])
				}
			}
		}
	}
}

func TestNewAndBatchErrors(t *testing.T) {
	cfg := gradCases()[0].cfg
	m := randModel(cfg, 1)
	for _, c := range []struct {
		opts []Option
		want string
	}{
		{[]Option{WithLoRA(LoRAConfig{Rank: 2, Targets: []string{"qkv"}})}, `train: lora target "qkv" is not one of`},
		{[]Option{WithLoRA(LoRAConfig{Rank: 0, Targets: []string{QProj}})}, "train: lora rank is 0, must be positive"},
		{[]Option{WithLoRA(LoRAConfig{Rank: 1, Dropout: 1, Targets: []string{QProj}})}, "train: lora dropout is 1, must be in [0, 1)"},
		{[]Option{WithObjective(Objective{CE: 1, Temperature: -1})}, "train: temperature is -1, must be positive"},
		{[]Option{WithLogitRows(0)}, "train: logit rows is 0, must be positive"},
	} {
		if _, err := New(m, 1, 4, c.opts...); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("New: error %v, want prefix %q", err, c.want)
		}
	}
	bf, err := m.WithDType(llama.BFloat16)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(bf, 1, 4); err == nil || err.Error() != "train: the model's weights are bfloat16; training needs float32 weights (widen it with Model.Float32 first)" {
		t.Errorf("New on a bf16 model: error %v", err)
	}
	if _, err := New(bf.Float32(), 1, 4); err != nil {
		t.Errorf("New on a widened bf16 model: %v", err)
	}
	if err := MergeLoRA(bf, nil); err == nil || err.Error() != "train: merge: the model's weights are bfloat16; merging needs float32 weights (widen it with Model.Float32 first)" {
		t.Errorf("MergeLoRA on a bf16 model: error %v", err)
	}
	n, err := New(m, 1, 3, WithObjective(Objective{KL: 1}))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		bt   Batch
		want string
	}{
		{Batch{Tokens: []int32{1, 2}, Targets: []int32{1, 2}}, "train: batch has 2 tokens and 2 targets, the net takes 1×3 = 3"},
		{Batch{Tokens: []int32{1, 2, 19}, Targets: []int32{1, 2, 3}}, "train: token 19 at position 2 is outside the vocabulary [0, 19)"},
		{Batch{Tokens: []int32{1, 2, 3}, Targets: []int32{1, 2, 3}}, "train: the objective distills but the batch has no teacher logits"},
		{Batch{Tokens: []int32{1, 2, 3}, Targets: []int32{1, 2, 3}, Teacher: &TeacherLogits{K: 2, Index: []int32{0, 1, 2, 3, 4, 40}, Logits: make([]float32, 6)}},
			"train: teacher top-k id 40 at entry 5 outside the vocabulary [0, 19)"},
	} {
		if _, err := n.ForwardBackward(c.bt, 1); err == nil || err.Error() != c.want {
			t.Errorf("ForwardBackward: error %v, want %q", err, c.want)
		}
	}
}

// router stands in for an extra trainable module.
type router struct{ w optim.Param }

func (r *router) Params() []*optim.Param { return []*optim.Param{&r.w} }

// TestModulesJoinTraining checks that an extra module's parameters are
// trained, clipped and checkpointed with the rest, and that a malformed one
// is refused.
func TestModulesJoinTraining(t *testing.T) {
	r := &router{optim.Param{Name: "router.0.weight", Data: []float32{1, 2}, Grad: make([]float32, 2)}}
	n, err := New(randModel(smallCfg, 1), 1, 4, WithModules(r))
	if err != nil {
		t.Fatal(err)
	}
	if ps := n.Params(); len(ps) != 1 || ps[0] != &r.w {
		t.Fatalf("params %v", ps)
	}
	tr, err := NewTrainer(n, TrainerConfig{Schedule: optim.Cosine{PeakLR: 0.1, Total: 1}})
	if err != nil {
		t.Fatal(err)
	}
	bt := microBatch(0, 1, 4, smallCfg.Vocab)
	// The module's own backward would fill its gradient; here the test does,
	// between the Net's backward and the optimizer step.
	if _, err := n.ForwardBackward(bt, 1); err != nil {
		t.Fatal(err)
	}
	r.w.Grad[0], r.w.Grad[1] = 1, -1
	tr.Opt.Step(0.1)
	if r.w.Data[0] >= 1 || r.w.Data[1] <= 2 {
		t.Fatalf("module not updated: %v", r.w.Data)
	}
	state, _ := tr.MarshalBinary()
	if !strings.Contains(string(state), "router.0.weight") {
		t.Fatal("module missing from the checkpoint")
	}
	bad := &router{optim.Param{Name: "router.1.weight", Data: []float32{1}}}
	if _, err := New(randModel(smallCfg, 1), 1, 4, WithModules(bad)); err == nil || err.Error() !=
		`train: module 0: parameter "router.1.weight" has 1 values and 0 gradients; it needs a name and one gradient per value` {
		t.Fatalf("malformed module: %v", err)
	}
}

// TestCachesBitIdentical checks that keeping the attention probabilities,
// the blocks' activations, or both, changes no bit of the losses or of any
// gradient over two micro-steps (different batches and dropout masks), on
// a shape of several attention blocks, under full fine-tuning and LoRA
// alone; that the activation cache holds one block's activations per
// block, where the Net otherwise shares one set; and that the caches are
// refused without WithGEMM, and the activation cache with a gate.
func TestCachesBitIdentical(t *testing.T) {
	cfg := llama.Config{Dim: 32, HiddenDim: 48, Layers: 3, Heads: 4, KVHeads: 2, Vocab: 50, SeqLen: 160,
		NormEps: 1e-5, RopeTheta: 10000, QKNorm: true}
	lora := WithLoRA(LoRAConfig{Rank: 2, Alpha: 4, Dropout: 0.1, Targets: []string{QProj, VProj, DownProj}, Seed: 5})
	for _, base := range [][]Option{{WithGEMM(), FullFineTune(), lora}, {WithGEMM(), lora}} {
		var ref []*optim.Param
		var refLoss []Loss
		var refBytes int64
		for _, caches := range [][]Option{nil, {WithAttentionCache()}, {WithActivationCache()}, {WithAttentionCache(), WithActivationCache()}} {
			n, err := New(randModel(cfg, 4), 1, 150, append(append([]Option(nil), base...), caches...)...)
			if err != nil {
				t.Fatal(err)
			}
			var losses []Loss
			for i := range 2 {
				loss, err := n.ForwardBackward(microBatch(i, 1, 150, cfg.Vocab), 0.5)
				if err != nil {
					t.Fatal(err)
				}
				losses = append(losses, loss)
			}
			if caches == nil {
				ref, refLoss, refBytes = n.Params(), losses, n.Bytes()
				continue
			}
			if !reflect.DeepEqual(losses, refLoss) {
				t.Fatalf("%d caches: losses %+v, without %+v", len(caches), losses, refLoss)
			}
			for i, p := range n.Params() {
				for j := range p.Grad {
					if math.Float32bits(p.Grad[j]) != math.Float32bits(ref[i].Grad[j]) {
						t.Fatalf("%d caches: %s grad[%d]: cached %g, recomputed %g", len(caches), p.Name, j, p.Grad[j], ref[i].Grad[j])
					}
				}
			}
			if len(caches) == 1 && n.o.actsCache {
				// Per block: xa, h1, xf [n, d]; q, qRaw, att [n, qd]; k, kRaw,
				// v [n, kvd]; g, u, a, σ [n, hidden]; u of q, v and down [n, r].
				rows, qd, kvd := 150, cfg.Dim, cfg.KVHeads*cfg.Dim/cfg.Heads
				block := int64(rows * (3*cfg.Dim + 3*qd + 3*kvd + 4*cfg.HiddenDim + 3*2))
				if extra := n.Bytes() - refBytes; extra != 4*block*int64(cfg.Layers-1) {
					t.Fatalf("the activation cache adds %d bytes, want %d (one more block's activations per block)", extra, 4*block*int64(cfg.Layers-1))
				}
			}
		}
	}
	if _, err := New(randModel(cfg, 4), 1, 8, WithAttentionCache()); err == nil || err.Error() != "train: the attention cache needs WithGEMM" {
		t.Fatalf("attention cache without gemm: %v", err)
	}
	if _, err := New(randModel(cfg, 4), 1, 8, WithActivationCache()); err == nil || err.Error() != "train: the activation cache needs WithGEMM" {
		t.Fatalf("activation cache without gemm: %v", err)
	}
	gate := WithGate(newSigmoidGate(cfg.Layers, cfg.Dim, 1))
	if _, err := New(randModel(cfg, 4), 1, 8, WithGEMM(), gate, WithActivationCache()); err == nil || err.Error() != "train: the activation cache cannot be used with a gate" {
		t.Fatalf("activation cache with a gate: %v", err)
	}
}
