package dynamic

import (
	"fmt"
	"maps"
	"strconv"
	"strings"

	"lrmc/kernels/safetensors"
)

// Encode returns rs as the bytes of a routers.safetensors file, with extra
// header metadata beside the file's own (a training run's losses, say);
// an extra key that is one of the file's own is an error.
func Encode(rs *Routers, extra map[string]string) ([]byte, error) {
	ts, meta := rs.Tensors()
	for k, v := range extra {
		if _, own := meta[k]; own {
			return nil, fmt.Errorf("dynamic: metadata key %s is the routers file's own", k)
		}
		meta[k] = v
	}
	return safetensors.Encode(ts, meta)
}

// Decode reads routers from the bytes of a routers.safetensors file, taking
// the model's layers from the header and its hidden size from the first
// router, and returns the header metadata too. Every tensor is copied out
// of b.
func Decode(b []byte) (*Routers, map[string]string, error) {
	f, err := safetensors.Decode(b)
	if err != nil {
		return nil, nil, err
	}
	layers, err := strconv.Atoi(f.Metadata[metaLayers])
	if err != nil || layers <= 0 {
		return nil, nil, fmt.Errorf("dynamic: header field %s is %q, want a positive layer count", metaLayers, f.Metadata[metaLayers])
	}
	dim := 0
	for _, n := range f.Names() {
		if t, _ := f.Tensor(n); strings.HasSuffix(n, ".weight") && len(t.Shape) == 2 {
			dim = t.Shape[1]
			break
		}
	}
	if dim == 0 {
		return nil, nil, fmt.Errorf("dynamic: the routers file holds no router weight")
	}
	rs, err := fromFile(f, layers, dim)
	if err != nil {
		return nil, nil, err
	}
	return rs, maps.Clone(f.Metadata), nil
}
