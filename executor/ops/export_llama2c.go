package ops

import (
	"bytes"
	"context"

	"lrmc/executor"
	"lrmc/kernels/llama2c"
)

// exportLlama2c writes a model as a llama2.c checkpoint. Input: model.
type exportLlama2c struct{ rawBytes }

func (exportLlama2c) Version() int { return 1 }

func (exportLlama2c) Run(ctx context.Context, c *executor.Call) (any, error) {
	m, err := llamaInput(c, 0)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := llama2c.Write(&buf, m.LM); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// rawBytes stores a []byte result as is.
type rawBytes struct{}

func (rawBytes) Encode(v any) ([]byte, error) { return v.([]byte), nil }
func (rawBytes) Decode(b []byte) (any, error) { return b, nil }
