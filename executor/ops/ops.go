// Package ops implements the planner's ops on the kernel runtime: one file
// per op, each decoding its parameters (planner's structs), calling kernels,
// and saying how its result is stored in the cache.
package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"lrmc/executor"
	"lrmc/kernels/llama"
	"lrmc/kernels/safetensors"
	"lrmc/planner"
)

// Registry returns every op by name: the core ops and those registered
// by methods (Register).
func Registry() map[string]executor.Op {
	ops := map[string]executor.Op{
		planner.OpModelLoad:      modelLoad{},
		planner.OpTokens:         dataTokens{},
		planner.OpCalibWindows:   calibWindows{},
		planner.OpEvalWindows:    evalWindows{},
		planner.OpPerplexity:     perplexityOp{},
		planner.OpMetrics:        metricsOp{},
		planner.OpMCItems:        mcItems{},
		planner.OpMCScore:        mcScore{},
		planner.OpMCAccuracy:     mcAccuracy{},
		planner.OpGenItems:       genItems{},
		planner.OpGenerate:       generateOp{},
		planner.OpGenScore:       genScore{},
		planner.OpGenMetrics:     genMetrics{},
		planner.OpResults:        resultsOp{},
		planner.OpExportLlama2c:  exportLlama2c{},
		planner.OpExportHF:       exportHF{},
		planner.OpExportGGUF:     exportGGUF{},
		planner.OpSFT:            dataSFT{},
		planner.OpRecover:        recoverTrain{},
		planner.OpModelRecovered: modelRecovered{},
		planner.OpExportPEFT:     exportPEFT{},
		planner.OpSpeed:          speedOp{},
	}
	regMu.RLock()
	defer regMu.RUnlock()
	for name, op := range registered {
		ops[name] = op
	}
	return ops
}

var (
	regMu      sync.RWMutex
	registered = map[string]executor.Op{}
)

// Register adds a method's op (lrmc/methods registers a unit's ops here
// and with the planner). A name registered twice panics.
func Register(name string, op executor.Op) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registered[name]; dup {
		panic("ops: op registered twice: " + name)
	}
	registered[name] = op
}

// Ephemeral is embedded by ops whose results are never cached (the
// planner is told so when the op is registered).
type Ephemeral struct{ ephemeral }

// IsEphemeral marks an op embedding Ephemeral.
func (Ephemeral) IsEphemeral() bool { return true }

// JSONCodec stores results of type T as JSON; ops embed it.
type JSONCodec[T any] struct{ jsonCodec[T] }

// RawBytes stores a []byte result as is (a file an output writes); ops
// embed it.
type RawBytes struct{ rawBytes }

// HiddenCodec stores Hidden results as safetensors; ops embed it.
type HiddenCodec struct{ hiddenCodec }

// Input returns inputs[i] of a call as a T, or an error naming what was
// expected.
func Input[T any](c *executor.Call, i int) (T, error) { return input[T](c, i) }

// CalibrationWindows returns input i of a call, the calibration windows,
// checked against the planned shape samples×seqLen.
func CalibrationWindows(c *executor.Call, i, samples, seqLen int) (Tokens, error) {
	w, err := input[Tokens](c, i)
	if err != nil {
		return w, err
	}
	if w.Rows != samples || w.Cols != seqLen {
		return w, fmt.Errorf("calibration windows are %d×%d, planned %d×%d", w.Rows, w.Cols, samples, seqLen)
	}
	return w, nil
}

// MeanNLL is the mean next-token negative log-likelihood of lm over rows
// windows of seqLen tokens (the perplexity protocol); done reports windows
// finished.
func MeanNLL(ctx context.Context, lm *llama.Model, ids []int32, rows, seqLen int, done func(int)) (mean float64, count int, err error) {
	return meanNLL(ctx, lm, lm.Config.Vocab, ids, rows, seqLen, done)
}

// ephemeral is embedded by ops whose results are never cached.
type ephemeral struct{}

func (ephemeral) Encode(any) ([]byte, error) {
	return nil, fmt.Errorf("ephemeral result is not encoded")
}
func (ephemeral) Decode([]byte) (any, error) {
	return nil, fmt.Errorf("ephemeral result is not decoded")
}

// jsonCodec stores results of type T as JSON.
type jsonCodec[T any] struct{}

func (jsonCodec[T]) Encode(v any) ([]byte, error) {
	t, ok := v.(T)
	if !ok {
		return nil, fmt.Errorf("result is %T, want %T", v, *new(T))
	}
	return json.MarshalIndent(t, "", "  ")
}

func (jsonCodec[T]) Decode(b []byte) (any, error) {
	var t T
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, err
	}
	return t, nil
}

// Tokens is a token tensor: Rows sequences of Cols tokens (one row for a stream).
type Tokens struct {
	IDs        []int32
	Rows, Cols int
}

// tokensCodec stores Tokens as a safetensors file with one I32 tensor.
type tokensCodec struct{}

func (tokensCodec) Encode(v any) ([]byte, error) {
	t, ok := v.(Tokens)
	if !ok {
		return nil, fmt.Errorf("result is %T, want Tokens", v)
	}
	return safetensors.Encode([]safetensors.Tensor{safetensors.I32("tokens", []int{t.Rows, t.Cols}, t.IDs)}, nil)
}

func (tokensCodec) Decode(b []byte) (any, error) {
	f, err := safetensors.Decode(b)
	if err != nil {
		return nil, err
	}
	t, ok := f.Tensor("tokens")
	if !ok || len(t.Shape) != 2 {
		return nil, fmt.Errorf("no 2-d tensor \"tokens\"")
	}
	ids, err := t.Int32()
	if err != nil {
		return nil, err
	}
	return Tokens{IDs: ids, Rows: t.Shape[0], Cols: t.Shape[1]}, nil
}

// Hidden is a batch of hidden states: Rows token positions of Dim floats.
type Hidden struct {
	Data      []float32
	Rows, Dim int
}

// hiddenCodec stores Hidden as a safetensors file with one F32 tensor.
type hiddenCodec struct{}

func (hiddenCodec) Encode(v any) ([]byte, error) {
	h, ok := v.(Hidden)
	if !ok {
		return nil, fmt.Errorf("result is %T, want Hidden", v)
	}
	return encodeHidden(h)
}

func (hiddenCodec) Decode(b []byte) (any, error) { return decodeHidden(b) }

// input returns inputs[i] as a T, or an error naming what was expected.
func input[T any](c *executor.Call, i int) (T, error) {
	var zero T
	if i >= len(c.Inputs) {
		return zero, fmt.Errorf("%s: missing input %d", c.Node.Op, i)
	}
	v, ok := c.Inputs[i].(T)
	if !ok {
		return zero, fmt.Errorf("%s: input %d is %T, want %T", c.Node.Op, i, c.Inputs[i], zero)
	}
	return v, nil
}
