package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"lrmc/executor"
	"lrmc/kernels/calib"
	"lrmc/kernels/llama"
	"lrmc/kernels/safetensors"
	"lrmc/kernels/sft"
	"lrmc/kernels/train"
	"lrmc/kernels/train/optim"
	"lrmc/planner"
)

// Recovered is what recovery trained: LoRA adapters under PEFT's names, or
// every weight of a fully fine-tuned model, as one safetensors blob whose
// metadata holds the method, the configuration and the loss curve.
type Recovered struct {
	Method string
	Blob   []byte
	// Losses is the training loss of every optimizer step.
	Losses []float64
}

// attentionCacheBudget bounds the memory recovery spends on keeping
// attention probabilities between forward and backward.
const attentionCacheBudget = 256 << 20

// activationCacheBudget bounds the memory recovery spends on keeping every
// block's activations between forward and backward (1.4 GB for the
// Qwen3-0.6B shape at 1×512 tokens, which saves a quarter of a LoRA step).
const activationCacheBudget = 2 << 30

// recoverTrain trains the pruned model. Inputs: pruned model, SFTStream,
// and the dense teacher for distillation. Every CheckpointEvery steps the
// trainer's state (adapters or weights, AdamW's moments, the step) goes to
// the cache, so an interrupted run resumes there, bit for bit.
type recoverTrain struct{ recoveredCodec }

func (recoverTrain) Version() int { return 1 }

func (recoverTrain) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.RecoverParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	model, err := denseInput(c, 0)
	if err != nil {
		return nil, err
	}
	data, err := input[SFTStream](c, 1)
	if err != nil {
		return nil, err
	}
	var teacher *Model
	if p.Loss == "kd" {
		if teacher, err = llamaInput(c, 2); err != nil {
			return nil, err
		}
	}
	tokens, mask, rows := sft.Pack([]sft.Example{{Tokens: data.IDs, Mask: data.Mask}}, p.SeqLen)
	if rows < p.Batch {
		return nil, fmt.Errorf("the training data gives %d sequences of %d tokens; a batch needs %d", rows, p.SeqLen, p.Batch)
	}

	// Training works on float32 weights: a 16-bit model is widened (a
	// copy), which full fine-tuning needs anyway.
	lm := model.LM.Float32()
	opts := []train.Option{train.WithGEMM()}
	// Keeping the attention probabilities for backward saves recomputing
	// them (the gradients are bit-identical either way); take it when it
	// costs little memory.
	c0 := lm.Config
	if probs := int64(c0.Layers) * int64(p.Batch) * int64(c0.Heads) * int64(p.SeqLen) * int64(p.SeqLen) * 4; probs <= attentionCacheBudget {
		opts = append(opts, train.WithAttentionCache())
	}
	switch p.Method {
	case "full":
		if lm == model.LM {
			lm = lm.Clone() // training updates the weights in place
		}
		opts = append(opts, train.FullFineTune())
	case "lora":
		targets := make([]string, len(p.Targets))
		for i, t := range p.Targets {
			targets[i] = t + "_proj" // recipes say "q", PEFT and kernels/train "q_proj"
		}
		opts = append(opts, train.WithLoRA(train.LoRAConfig{Rank: p.Rank, Alpha: p.Alpha, Dropout: p.Dropout, Targets: targets, Seed: uint64(p.Seed)}))
	default:
		return nil, fmt.Errorf("recovery method %q is not built", p.Method)
	}
	switch p.Loss {
	case "lm":
		opts = append(opts, train.WithObjective(train.Objective{CE: 1}))
	case "kd":
		opts = append(opts, train.WithObjective(train.Objective{KL: 1, Temperature: float32(p.Temperature)}))
	default:
		return nil, fmt.Errorf("recovery loss %q is not built", p.Loss)
	}
	// Keeping every block's activations saves recomputing the blocks
	// before their backward (bit-identical gradients, about a quarter of a
	// Qwen3-0.6B LoRA step): take it when what it adds stays within its
	// budget and fits the memory there is (see fits: --memory-limit or
	// GOMEMLIMIT, else half the available memory).
	plain := train.PeakBytes(lm.Config, p.Batch, p.SeqLen, opts...)
	if extra := train.PeakBytes(lm.Config, p.Batch, p.SeqLen, append(opts, train.WithActivationCache())...) - plain; extra <= activationCacheBudget {
		use, why := currentMemory().fits(plain + extra)
		if use {
			opts = append(opts, train.WithActivationCache())
		}
		c.Log.Info("activation cache", "use", use, "bytes", extra, "why", why)
	} else {
		c.Log.Info("activation cache", "use", false, "bytes", extra, "why", "over its budget")
	}
	net, err := train.New(lm, p.Batch, p.SeqLen, opts...)
	if err != nil {
		return nil, err
	}
	// The memory training takes beyond the weights, known from the shapes
	// before the first step: reported so a user can size batch and seqLen.
	peak := train.PeakBytes(lm.Config, p.Batch, p.SeqLen, opts...)
	c.Log.Info("recovery memory", "peak_bytes", peak, "method", p.Method, "batch", p.Batch, "seqLen", p.SeqLen)
	var sched optim.Schedule = optim.Cosine{PeakLR: p.LR, Total: p.Steps, WarmupRatio: p.Warmup}
	if p.Schedule == "constant" {
		sched = optim.Constant{PeakLR: p.LR, Total: p.Steps, WarmupRatio: p.Warmup}
	}
	tr, err := train.NewTrainer(net, train.TrainerConfig{Schedule: sched, WeightDecay: p.WeightDecay, MaxGradNorm: p.MaxGradNorm, Accumulation: p.Accumulation})
	if err != nil {
		return nil, err
	}

	var losses []float64
	start := 0
	if step, state, ok, err := c.Checkpoints.Load(); err != nil {
		return nil, err
	} else if ok {
		var ck Checkpoint
		if err := ck.Unmarshal(state); err != nil {
			return nil, fmt.Errorf("checkpoint at step %d: %w", step, err)
		}
		if err := tr.UnmarshalBinary(ck.Trainer); err != nil {
			return nil, fmt.Errorf("checkpoint at step %d: %w", step, err)
		}
		start, losses = int(step), ck.Losses
		c.Log.Info("resuming recovery", "step", start, "of", p.Steps)
	}
	every := p.CheckpointEvery
	if every <= 0 {
		every = max(1, p.Steps/10)
	}

	order := NewRowOrder(rows, uint64(p.Seed))
	vocab := lm.Config.Vocab
	tokensPerStep := float64(p.Batch * p.SeqLen * p.Accumulation)
	for step := start; step < p.Steps; step++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t0 := time.Now()
		micro := make([]train.Batch, p.Accumulation)
		for a := range micro {
			bt := make([]int32, 0, p.Batch*p.SeqLen)
			bm := make([]bool, 0, p.Batch*p.SeqLen)
			for e := range p.Batch {
				r := order.Row((step*p.Accumulation+a)*p.Batch + e)
				bt = append(bt, tokens[r*p.SeqLen:(r+1)*p.SeqLen]...)
				bm = append(bm, mask[r*p.SeqLen:(r+1)*p.SeqLen]...)
			}
			micro[a] = train.Batch{Tokens: bt, Targets: sft.Targets(bt, bm, p.Batch, p.SeqLen)}
			if teacher != nil {
				logits := teacher.LM.Forward(bt, p.Batch, p.SeqLen)
				if p.TopK > 0 {
					micro[a].Teacher = train.TopK(logits, p.Batch*p.SeqLen, vocab, p.TopK)
				} else {
					micro[a].Teacher = &train.TeacherLogits{Logits: logits}
				}
			}
		}
		st, err := tr.Step(micro)
		if err != nil {
			return nil, fmt.Errorf("step %d: %w", step, err)
		}
		losses = append(losses, st.Loss)
		c.Report(int64(step+1), int64(p.Steps), map[string]float64{
			"loss": st.Loss, "lr": st.LR, "grad_norm": st.GradNorm, "tokens_per_s": tokensPerStep / time.Since(t0).Seconds(),
			"peak_mib": float64(peak) / (1 << 20),
		})
		if (step+1)%every == 0 && step+1 < p.Steps {
			state, err := tr.MarshalBinary()
			if err != nil {
				return nil, err
			}
			ck := Checkpoint{Trainer: state, Losses: losses}
			if err := c.Checkpoints.Save(int64(step+1), ck.Marshal()); err != nil {
				return nil, err
			}
		}
	}

	if p.Method == "lora" {
		return LoRARecovered(net, losses)
	}
	js, _ := json.Marshal(lm.Config)
	var tensors []safetensors.Tensor
	for _, t := range lm.Tensors() {
		tensors = append(tensors, safetensors.F32(t.Name, t.Shape, t.Data))
	}
	return recovered(p.Method, tensors, map[string]string{"config": string(js)}, losses)
}

// LoRARecovered is a LoRA-trained net's adapters (PEFT's names and
// configuration) and losses, as recovery stores them: modelRecovered
// merges them and exportPEFT writes them.
func LoRARecovered(net *train.Net, losses []float64) (Recovered, error) {
	cfg, err := net.PEFTConfig("")
	if err != nil {
		return Recovered{}, err
	}
	js, _ := json.Marshal(cfg)
	return recovered("lora", net.AdapterTensors(), map[string]string{"adapter_config": string(js)}, losses)
}

func recovered(method string, tensors []safetensors.Tensor, meta map[string]string, losses []float64) (Recovered, error) {
	meta["method"] = method
	ls, _ := json.Marshal(losses)
	meta["losses"] = string(ls)
	blob, err := safetensors.Encode(tensors, meta)
	if err != nil {
		return Recovered{}, err
	}
	return Recovered{Method: method, Blob: blob, Losses: losses}, nil
}

// RowOrder visits the training rows epoch after epoch, each epoch in a
// fresh seeded permutation (calib.Permutation: stable across machines and
// Go releases). Training ops share it.
type RowOrder struct {
	rows  int
	seed  uint64
	epoch int
	perm  []int
}

// NewRowOrder visits rows rows in the order seed gives.
func NewRowOrder(rows int, seed uint64) *RowOrder { return &RowOrder{rows: rows, seed: seed} }

// Row is the i-th row visited.
func (o *RowOrder) Row(i int) int {
	epoch, pos := i/o.rows, i%o.rows
	if o.perm == nil || epoch != o.epoch {
		o.epoch = epoch
		o.perm = calib.Permutation(o.rows, o.seed, 0x726563_0000+uint64(epoch))
	}
	return o.perm[pos]
}

// Checkpoint is a training op's saved state: the trainer and the losses
// so far.
type Checkpoint struct {
	Trainer []byte
	Losses  []float64
}

// Marshal encodes the checkpoint.
func (c Checkpoint) Marshal() []byte {
	ls, _ := json.Marshal(c.Losses)
	var b bytes.Buffer
	b.WriteString(strconv.Itoa(len(ls)))
	b.WriteByte('\n')
	b.Write(ls)
	b.Write(c.Trainer)
	return b.Bytes()
}

// Unmarshal decodes a checkpoint Marshal wrote.
func (c *Checkpoint) Unmarshal(b []byte) error {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return fmt.Errorf("malformed checkpoint")
	}
	n, err := strconv.Atoi(string(b[:i]))
	if err != nil || n < 0 || i+1+n > len(b) {
		return fmt.Errorf("malformed checkpoint")
	}
	if err := json.Unmarshal(b[i+1:i+1+n], &c.Losses); err != nil {
		return fmt.Errorf("malformed checkpoint: %w", err)
	}
	c.Trainer = b[i+1+n:]
	return nil
}

// recoveredCodec stores a Recovered as its safetensors blob.
type recoveredCodec struct{}

func (recoveredCodec) Encode(v any) ([]byte, error) {
	r, ok := v.(Recovered)
	if !ok {
		return nil, fmt.Errorf("result is %T, want Recovered", v)
	}
	return r.Blob, nil
}

func (recoveredCodec) Decode(b []byte) (any, error) {
	f, err := safetensors.Decode(b)
	if err != nil {
		return nil, err
	}
	r := Recovered{Method: f.Metadata["method"], Blob: b}
	if err := json.Unmarshal([]byte(f.Metadata["losses"]), &r.Losses); err != nil {
		return nil, fmt.Errorf("losses: %w", err)
	}
	return r, nil
}

// modelRecovered applies recovery to the pruned model: LoRA adapters merged
// into a copy of its weights (PEFT's merge_and_unload), or the fine-tuned
// weights. Inputs: pruned model, Recovered. Not cached: cheap.
type modelRecovered struct{ ephemeral }

func (modelRecovered) Version() int { return 1 }

func (modelRecovered) Run(ctx context.Context, c *executor.Call) (any, error) {
	base, err := llamaInput(c, 0)
	if err != nil {
		return nil, err
	}
	r, err := input[Recovered](c, 1)
	if err != nil {
		return nil, err
	}
	f, err := safetensors.Decode(r.Blob)
	if err != nil {
		return nil, err
	}
	switch r.Method {
	case "lora":
		var cfg train.AdapterConfig
		if err := json.Unmarshal([]byte(f.Metadata["adapter_config"]), &cfg); err != nil {
			return nil, fmt.Errorf("adapter config: %w", err)
		}
		wide := base.LM.Float32()
		net, err := train.New(wide, 1, 1, train.WithLoRA(train.LoRAConfig{Rank: cfg.R, Alpha: cfg.LoraAlpha, Dropout: cfg.LoraDropout, Targets: cfg.TargetModules}))
		if err != nil {
			return nil, err
		}
		if err := net.LoadAdapter(f); err != nil {
			return nil, err
		}
		merged := wide
		if merged == base.LM {
			merged = wide.Clone()
		}
		if err := train.MergeLoRA(merged, net.Adapters()); err != nil {
			return nil, err
		}
		return &Model{LM: merged, HF: base.HF, GGUF: base.GGUF}, nil
	case "full":
		var cfg llama.Config
		if err := json.Unmarshal([]byte(f.Metadata["config"]), &cfg); err != nil {
			return nil, fmt.Errorf("model config: %w", err)
		}
		lm, err := llama.FromTensors(cfg, func(name string) ([]float32, bool) {
			t, ok := f.Tensor(name)
			if !ok {
				return nil, false
			}
			d, err := t.Float32()
			return d, err == nil
		})
		if err != nil {
			return nil, err
		}
		return &Model{LM: lm, HF: base.HF, GGUF: base.GGUF}, nil
	}
	return nil, fmt.Errorf("recovery method %q is not built", r.Method)
}

// exportPEFT writes a LoRA adapter as PEFT loads it: adapter_config.json
// and adapter_model.safetensors. Input: Recovered.
type exportPEFT struct{ rawBytes }

func (exportPEFT) Version() int { return 1 }

func (exportPEFT) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p planner.PEFTParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	r, err := input[Recovered](c, 0)
	if err != nil {
		return nil, err
	}
	f, err := safetensors.Decode(r.Blob)
	if err != nil {
		return nil, err
	}
	var cfg train.AdapterConfig
	if err := json.Unmarshal([]byte(f.Metadata["adapter_config"]), &cfg); err != nil {
		return nil, fmt.Errorf("adapter config: %w", err)
	}
	cfg.BaseModelNameOrPath = p.Base
	tmp, err := os.MkdirTemp("", "lrmc-export-peft-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	js, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, "adapter_config.json"), append(js, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := safetensors.WriteFile(filepath.Join(tmp, "adapter_model.safetensors"), f.Tensors(), map[string]string{"format": "pt"}); err != nil {
		return nil, err
	}
	return executor.PackDir(tmp)
}
