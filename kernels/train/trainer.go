package train

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"lrmc/kernels/train/optim"
)

// TrainerConfig is the optimization recipe.
type TrainerConfig struct {
	Schedule     optim.Schedule // e.g. optim.Cosine{peak learning rate, total steps, warmup ratio}
	WeightDecay  float64        // AdamW's decoupled decay (not applied to norms and biases)
	MaxGradNorm  float64        // clip the global gradient norm to this; 0 disables
	Accumulation int            // micro-batches per optimizer step; 0 means 1
}

// Trainer drives a Net with AdamW: gradient accumulation, clipping, the
// learning-rate schedule, and a checkpointable state.
type Trainer struct {
	Net *Net
	Opt *optim.AdamW
	cfg TrainerConfig
}

// StepStats describes one optimizer step.
type StepStats struct {
	Loss     float64 // mean of the micro-batches' Loss.Total
	GradNorm float64 // global norm before clipping
	LR       float64
}

// NewTrainer builds a trainer over n's parameters.
func NewTrainer(n *Net, cfg TrainerConfig) (*Trainer, error) {
	if cfg.Accumulation == 0 {
		cfg.Accumulation = 1
	}
	if cfg.Schedule == nil {
		return nil, fmt.Errorf("train: trainer needs a learning-rate schedule")
	}
	if cfg.Accumulation < 0 || cfg.Schedule.Steps() <= 0 || !(cfg.Schedule.Peak() > 0) {
		return nil, fmt.Errorf("train: trainer needs positive accumulation, total steps and learning rate, got %d, %d, %g",
			cfg.Accumulation, cfg.Schedule.Steps(), cfg.Schedule.Peak())
	}
	if len(n.Params()) == 0 {
		return nil, fmt.Errorf("train: nothing to train: enable full fine-tuning, LoRA or extra modules")
	}
	return &Trainer{Net: n, Opt: optim.NewAdamW(n.Params(), cfg.WeightDecay), cfg: cfg}, nil
}

// Step takes one optimizer step over exactly Accumulation micro-batches:
// each contributes its gradient divided by their number (Hugging Face's
// accumulation), then the gradients are clipped and AdamW applies the
// scheduled learning rate of this step.
func (tr *Trainer) Step(micro []Batch) (StepStats, error) {
	if len(micro) != tr.cfg.Accumulation {
		return StepStats{}, fmt.Errorf("train: step got %d micro-batches, accumulation is %d", len(micro), tr.cfg.Accumulation)
	}
	ps := tr.Net.Params()
	optim.ZeroGrads(ps)
	var st StepStats
	scale := 1 / float32(len(micro))
	for i, b := range micro {
		l, err := tr.Net.ForwardBackward(b, scale)
		if err != nil {
			return StepStats{}, fmt.Errorf("train: micro-batch %d: %w", i, err)
		}
		st.Loss += l.Total / float64(len(micro))
	}
	st.GradNorm = optim.ClipGlobalNorm(ps, tr.cfg.MaxGradNorm)
	st.LR = tr.cfg.Schedule.LR(int(tr.Opt.Steps()))
	tr.Opt.Step(st.LR)
	return st, nil
}

// trainerMagic starts a serialized Trainer; the digit is the format version.
const trainerMagic = "LRMCTRN1"

// MarshalBinary serializes the state a resumed run needs: the micro-step
// counter (it selects the dropout masks) and the optimizer's state, which
// holds the trainable values themselves. The frozen base weights are not
// included: a resumed run starts from the same base model.
func (tr *Trainer) MarshalBinary() ([]byte, error) {
	opt, err := tr.Opt.MarshalBinary()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(trainerMagic)
	binary.Write(&b, binary.LittleEndian, tr.Net.MicroSteps())
	b.Write(opt)
	return b.Bytes(), nil
}

// UnmarshalBinary restores a state written by MarshalBinary into a trainer
// built the same way.
func (tr *Trainer) UnmarshalBinary(data []byte) error {
	if len(data) < len(trainerMagic)+8 || string(data[:len(trainerMagic)]) != trainerMagic {
		return fmt.Errorf("train: trainer state does not start with %q", trainerMagic)
	}
	micro := binary.LittleEndian.Uint64(data[len(trainerMagic):])
	if err := tr.Opt.UnmarshalBinary(data[len(trainerMagic)+8:]); err != nil {
		return fmt.Errorf("train: trainer state: %w", err)
	}
	tr.Net.SetMicroSteps(micro)
	return nil
}
