package gguf

import (
	"testing"

	"lrmc/internal/shareddata"
)

// BenchmarkOpenStories260K measures mapping and parsing a real file's header
// (23 keys, a 512-entry vocabulary, 48 tensor descriptions).
func BenchmarkOpenStories260K(b *testing.B) {
	path := shareddata.Path(b, "models", "stories260K", "stories260K.gguf")
	for b.Loop() {
		f, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

func BenchmarkFloat32(b *testing.B) {
	v := make([]float32, 16<<20) // 16 Mi elements
	for i := range v {
		v[i] = float32(i%1000) * 0.001
	}
	for _, typ := range []GGMLType{TypeF16, TypeBF16, TypeQ8_0} {
		t, err := FromFloat32("w", typ, []int{4096, 4096}, v)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(typ.String(), func(b *testing.B) {
			b.SetBytes(int64(len(t.Data)))
			for b.Loop() {
				if _, err := t.Float32(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
