package dynamic

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"lrmc/executor"
	kdyn "lrmc/kernels/dynamic"
	"lrmc/kernels/train"
)

// Trained is what a training stage yields: stage 1's routers, and the loss
// of every optimizer step of each stage run so far (stage 2 carries stage
// 1's routers and losses along, so one node reports both).
type Trained struct {
	Routers    *kdyn.Routers
	RouterLoss []float64
	// Stage 2 only: the adapters (a safetensors blob in PEFT's names, its
	// configuration in the metadata) and their losses.
	LoRA     []byte
	LoRALoss []float64
}

// Metrics are what a dynamic run adds to its metrics: the method, the
// target ratio, the KV rule and the training curves ("dynamic").
func (t Trained) Metrics() map[string]any {
	d := map[string]any{"method": string(t.Routers.Method), "ratio": t.Routers.Skip, "kvRule": t.Routers.Method.KVRule().String()}
	if n := len(t.RouterLoss); n > 0 {
		d["routerLoss"] = map[string]any{"first": t.RouterLoss[0], "last": t.RouterLoss[n-1], "steps": n, "losses": t.RouterLoss}
	}
	if n := len(t.LoRALoss); n > 0 {
		d["loraLoss"] = map[string]any{"first": t.LoRALoss[0], "last": t.LoRALoss[n-1], "steps": n, "losses": t.LoRALoss}
	}
	return map[string]any{"dynamic": d}
}

// Metadata keys a Trained adds to the routers file's header.
const (
	metaRouterLoss = "lrmc.dynamic.router_loss"
	metaLoRALoss   = "lrmc.dynamic.lora_loss"
)

// trainedCodec stores a Trained as the length of the routers' safetensors
// file (8 bytes, little-endian), that file (the losses in its header) and
// the stage-2 adapters' blob.
type trainedCodec struct{}

func (trainedCodec) Encode(v any) ([]byte, error) {
	t, ok := v.(Trained)
	if !ok {
		return nil, fmt.Errorf("result is %T, want dynamic.Trained", v)
	}
	rl, _ := json.Marshal(t.RouterLoss)
	meta := map[string]string{metaRouterLoss: string(rl)}
	if t.LoRA != nil {
		ll, _ := json.Marshal(t.LoRALoss)
		meta[metaLoRALoss] = string(ll)
	}
	b, err := kdyn.Encode(t.Routers, meta)
	if err != nil {
		return nil, err
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(b)))
	return append(append(out, b...), t.LoRA...), nil
}

func (trainedCodec) Decode(b []byte) (any, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("dynamic: %d bytes hold no routers", len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > uint64(len(b)-8) {
		return nil, fmt.Errorf("dynamic: a routers file of %d bytes in %d", n, len(b)-8)
	}
	rs, meta, err := kdyn.Decode(b[8 : 8+n])
	if err != nil {
		return nil, err
	}
	t := Trained{Routers: rs}
	if err := json.Unmarshal([]byte(meta[metaRouterLoss]), &t.RouterLoss); err != nil {
		return nil, fmt.Errorf("dynamic: router losses: %w", err)
	}
	if rest := b[8+n:]; len(rest) > 0 {
		t.LoRA = append([]byte(nil), rest...)
		if err := json.Unmarshal([]byte(meta[metaLoRALoss]), &t.LoRALoss); err != nil {
			return nil, fmt.Errorf("dynamic: LoRA losses: %w", err)
		}
	}
	return t, nil
}

// trainRouters is stage 1: the routers trained on the calibration windows
// with the base model frozen. Inputs: model, calibration windows. Every
// CheckpointEvery steps the trainer's state goes to the cache, so an
// interrupted training resumes there, bit for bit.
type trainRouters struct{ trainedCodec }

func (trainRouters) Version() int { return 1 }

func (trainRouters) Run(ctx context.Context, c *executor.Call) (any, error) {
	var p RoutersParams
	if err := c.Params(&p); err != nil {
		return nil, err
	}
	lm, w, err := stageInputs(c, p.Samples, p.SeqLen)
	if err != nil {
		return nil, err
	}
	// The base stays frozen (no LoRA, no full fine-tuning): only the
	// gate's router parameters reach the optimizer.
	g, err := kdyn.NewTraining(kdyn.TrainConfig{Method: kdyn.Method(p.Method), Skip: p.Skip, Seed: uint64(p.Seed), Lambda: p.Lambda, DenseFirst: p.DenseFirst},
		lm.Config.Layers, lm.Config.Dim)
	if err != nil {
		return nil, err
	}
	net, err := train.New(lm, p.Batch, p.SeqLen, train.WithGEMM(), train.WithGate(g))
	if err != nil {
		return nil, err
	}
	losses, err := stage{net: net, g: g, windows: w, batch: p.Batch, steps: p.Steps, every: p.CheckpointEvery, seed: int(p.Seed), lr: p.LR}.run(ctx, c)
	if err != nil {
		return nil, err
	}
	return Trained{Routers: g.Routers(), RouterLoss: losses}, nil
}
