package safetensors

import (
	"fmt"
	"path/filepath"
	"testing"
)

// benchTensor is 16 Mi elements: 64 MiB as F32, 32 MiB as F16 or BF16.
func benchTensor(b *testing.B, dt DType) Tensor {
	v := make([]float32, 16<<20)
	for i := range v {
		v[i] = float32(i%1000) * 0.001
	}
	t, err := FromFloat32("w", dt, []int{4096, 4096}, v)
	if err != nil {
		b.Fatal(err)
	}
	return t
}

func BenchmarkFloat32(b *testing.B) {
	for _, dt := range []DType{DTypeF32, DTypeF16, DTypeBF16} {
		t := benchTensor(b, dt)
		b.Run(string(dt), func(b *testing.B) {
			b.SetBytes(int64(len(t.Data)))
			for b.Loop() {
				if _, err := t.Float32(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpen measures opening a checkpoint of 1000 tensors: header
// parsing and validation, with the data mapped but not touched.
func BenchmarkOpen(b *testing.B) {
	ts := make([]Tensor, 1000)
	for i := range ts {
		ts[i] = F32(fmt.Sprintf("model.layers.%d.mlp.weight", i), []int{16, 16}, make([]float32, 256))
	}
	path := filepath.Join(b.TempDir(), "m.safetensors")
	if err := WriteFile(path, ts, map[string]string{"format": "pt"}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		f, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

func BenchmarkWriteFile(b *testing.B) {
	t := benchTensor(b, DTypeF32)
	path := filepath.Join(b.TempDir(), "w.safetensors")
	b.SetBytes(int64(len(t.Data)))
	for b.Loop() {
		if err := WriteFile(path, []Tensor{t}, nil); err != nil {
			b.Fatal(err)
		}
	}
}
