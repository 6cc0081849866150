package slicegpt

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"lrmc/kernels/llama"
	"lrmc/kernels/safetensors"
)

// configKey is the safetensors metadata entry that holds the config in an
// encoded model: one buffer, so the cache stores a sliced model as one
// value.
const configKey = "slicegpt_config"

// Encode returns m as one safetensors buffer: the float32 tensors of Save's
// layout, with Save's config JSON in the metadata.
func Encode(m *Model) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	cfg, err := json.Marshal(m.fileConfig())
	if err != nil {
		return nil, fmt.Errorf("slicegpt: encode: %w", err)
	}
	var ts []safetensors.Tensor
	for _, t := range m.tensors() {
		ts = append(ts, safetensors.F32(t.name, t.shape, t.data))
	}
	return safetensors.Encode(ts, map[string]string{"format": Format, configKey: string(cfg)})
}

// Decode reads a buffer from Encode, checking every shape against the
// config before a tensor is copied.
func Decode(b []byte) (*Model, error) {
	f, err := safetensors.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("slicegpt: decode: %w", err)
	}
	cfg, ok := f.Metadata[configKey]
	if !ok {
		return nil, fmt.Errorf("slicegpt: decode: no %q metadata: not an encoded sliced model", configKey)
	}
	m, err := skeleton("encoded model", []byte(cfg))
	if err != nil {
		return nil, err
	}
	if err := m.fill("encoded model", f.Tensor, len(f.Names())); err != nil {
		return nil, err
	}
	return m, m.Validate()
}

// EncodeCov returns c as a safetensors buffer with one F64 tensor "cov"
// [Dim, Dim] and the row count in the metadata.
func EncodeCov(c *Cov) ([]byte, error) {
	data := make([]byte, 8*len(c.Sum))
	for i, v := range c.Sum {
		binary.LittleEndian.PutUint64(data[8*i:], math.Float64bits(v))
	}
	t := safetensors.Tensor{Name: "cov", DType: safetensors.DTypeF64, Shape: []int{c.Dim, c.Dim}, Data: data}
	return safetensors.Encode([]safetensors.Tensor{t}, map[string]string{"rows": strconv.FormatInt(c.Rows, 10)})
}

// DecodeCov reads a buffer from EncodeCov.
func DecodeCov(b []byte) (*Cov, error) {
	f, err := safetensors.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("slicegpt: covariance: %w", err)
	}
	t, ok := f.Tensor("cov")
	if !ok || t.DType != safetensors.DTypeF64 || len(t.Shape) != 2 || t.Shape[0] != t.Shape[1] ||
		t.Shape[0] < 1 || t.Shape[0] > llama.MaxDim {
		return nil, fmt.Errorf("slicegpt: covariance: want one square F64 tensor \"cov\" of width ≤ %d", llama.MaxDim)
	}
	rows, err := strconv.ParseInt(f.Metadata["rows"], 10, 64)
	if err != nil || rows < 0 {
		return nil, fmt.Errorf("slicegpt: covariance: bad row count %q", f.Metadata["rows"])
	}
	c := &Cov{Dim: t.Shape[0], Rows: rows, Sum: make([]float64, t.Shape[0]*t.Shape[1])}
	for i := range c.Sum {
		c.Sum[i] = math.Float64frombits(binary.LittleEndian.Uint64(t.Data[8*i:]))
	}
	return c, nil
}
